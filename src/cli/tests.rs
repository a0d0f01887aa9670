//! Tests of the command line: flags, environment variables, files.
use super::*;

#[test]
fn cli_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn file_variables_fill_unset_variables() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let vars = |pairs: &[(&str, &std::path::Path)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.as_os_str().to_owned()))
            .collect::<Vec<_>>()
    };
    let set = vars_from_files(vars(&[
        ("COMPUTE_CTL_CONNSTR_FILE", &secret),
        ("NEON_CONTROL_PLANE_TOKEN_FILE", &secret),
        ("COMPUTE_CTL_SPEC_PATH", std::path::Path::new("s.json")),
        ("OTHER_FILE", &secret),
    ]))
    .unwrap();
    assert_eq!(
        set,
        [("COMPUTE_CTL_CONNSTR".to_string(), "s3cret".to_string())]
    );
    // A variable set directly wins over its file.
    let set = vars_from_files(vars(&[
        ("COMPUTE_CTL_CONNSTR_FILE", &secret),
        ("COMPUTE_CTL_CONNSTR", std::path::Path::new("x")),
    ]))
    .unwrap();
    assert!(set.is_empty());
    let missing = dir.path().join("missing");
    let err = vars_from_files(vars(&[("COMPUTE_CTL_PGDATA_FILE", &missing)])).unwrap_err();
    assert!(
        format!("{err:#}").contains("COMPUTE_CTL_PGDATA_FILE"),
        "{err:#}"
    );
}

#[test]
fn the_spec_and_the_config_can_come_from_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let spec = r#"{"format_version": 1.0, "cluster": {"roles": [], "databases": []}}"#;
    let jwks = r#""compute_ctl_config": {"jwks": {"keys": []}}"#;
    let files = [
        ("spec.json", spec.to_string()),
        ("keys.json", format!(r#"{{"spec": null, {jwks}}}"#)),
        ("both.json", format!(r#"{{"spec": {spec}, {jwks}}}"#)),
    ];
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let parse = |config: &str| {
        let (s, c) = (dir.path().join("spec.json"), dir.path().join(config));
        let args = ["compute_ctl", "-D", "/d", "-C", "postgresql://a@h:1/p"];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["-S".into(), s.display().to_string()]);
        args.extend(["-c".into(), c.display().to_string()]);
        Cli::try_parse_from(args).unwrap().load_spec()
    };
    let (spec, config) = parse("keys.json").unwrap();
    assert!(spec.is_some());
    assert!(config.unwrap()["jwks"].is_object());
    let err = parse("both.json").unwrap_err();
    assert!(format!("{err:#}").contains("both -S"), "{err:#}");
}

#[test]
fn http_port_is_an_alias_and_diagram_needs_nothing() {
    let cli = Cli::try_parse_from([
        "compute_ctl",
        "-D",
        "/d",
        "-C",
        "postgresql://a@h:1/p",
        "--http-port",
        "9",
    ])
    .unwrap();
    assert_eq!(cli.external_http_port, 9);
    let cli = Cli::try_parse_from(["compute_ctl", "diagram"]).unwrap();
    assert!(matches!(cli.command, Some(Command::Diagram)));
    assert!(Cli::try_parse_from(["compute_ctl", "-D", "/d"]).is_err());
}

fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
    let mut args = vec!["compute_ctl", "-D", "/d", "-C", "postgresql://a@h:1/p"];
    args.extend_from_slice(extra);
    Cli::try_parse_from(args)
}

#[test]
fn neon_scenario_28_privileged_role_name_is_validated() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.reference.privileged_role_name, "neon_superuser");
    let cli = parse(&["--privileged-role-name", "my_superuser"]).unwrap();
    assert_eq!(cli.reference.privileged_role_name, "my_superuser");
    for bad in [
        "NeonSuperuser",
        "$'neon_superuser",
        "",
        "\"\"",
        "pg_monitor",
        "a b",
    ] {
        assert!(
            parse(&["--privileged-role-name", bad]).is_err(),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn the_reference_launch_flags_are_accepted() {
    let cli = parse(&[
        "--dev",
        "-r",
        "http://ext",
        "--cgroup",
        "neon-postgres",
        "--filecache-connstr",
        "host=localhost",
        "--vm-monitor-addr",
        "0.0.0.0:10301",
        "--resize-swap-on-bind",
        "--set-disk-quota-for-fs",
        "/disk",
        "--installed-extensions-collection-interval",
        "5",
    ])
    .unwrap();
    assert_eq!(cli.reference.installed_extensions_collection_interval, 5);
    assert_eq!(
        cli.reference.unsupported(),
        [
            "--dev",
            "--cgroup",
            "--filecache-connstr",
            "--vm-monitor-addr",
            "--resize-swap-on-bind",
            "--set-disk-quota-for-fs"
        ]
    );
    assert!(parse(&[]).unwrap().reference.unsupported().is_empty());
    // -r is implemented: taken as the reference takes it.
    assert_eq!(
        cli.reference.remote_ext_base_url.map(|u| u.to_string()),
        Some("http://ext/".to_string())
    );
}

#[test]
fn the_extension_store_url_is_validated_as_the_reference_does() {
    let url = |text: &str| {
        parse(&["-r", text]).map(|c| c.reference.remote_ext_base_url.unwrap().to_string())
    };
    assert_eq!(url("http://gw//").unwrap(), "http://gw/");
    assert_eq!(url("https://gw/a/b").unwrap(), "https://gw/a/b/");
    let e = url("http://gw/?x=1").unwrap_err().to_string();
    assert!(
        e.contains("parameters detected in remote extensions base URL"),
        "{e}"
    );
    assert!(url("not a url").is_err());
    assert!(url("file:///etc").is_err());
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.remote_ext_timeout, std::time::Duration::from_secs(50));
    assert_eq!(cli.remote_ext_max_bytes, 256 * 1024 * 1024);
}

#[test]
fn promote_timeout_and_suspend_when_idle() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.promote_timeout, 20);
    assert!(
        !cli.suspend_when_idle,
        "off by default: the control plane decides"
    );
    let cli = parse(&["--promote-timeout", "3", "--suspend-when-idle"]).unwrap();
    assert_eq!(cli.promote_timeout, 3);
    assert!(cli.suspend_when_idle);
    // Like every flag, both can come from the environment.
    let help = <Cli as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    assert!(help.contains("COMPUTE_CTL_SUSPEND_WHEN_IDLE"), "{help}");
    assert!(help.contains("COMPUTE_CTL_PROMOTE_TIMEOUT"), "{help}");
}

#[test]
fn http_bounds_have_defaults_and_take_fractions() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.http_header_timeout, std::time::Duration::from_secs(10));
    assert_eq!(cli.http_idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(cli.http_max_connections, 128);
    let cli = parse(&[
        "--http-header-timeout",
        "0.5",
        "--http-idle-timeout",
        "2",
        "--http-max-connections",
        "16",
    ])
    .unwrap();
    assert_eq!(
        cli.http_header_timeout,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(cli.http_idle_timeout, std::time::Duration::from_secs(2));
    assert_eq!(cli.http_max_connections, 16);
    assert!(parse(&["--http-idle-timeout", "-1"]).is_err());
}

mod socket_dir {
    use super::super::socket::ensure;
    use crate::process::RunAs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn postgres() -> Option<RunAs> {
        RunAs::detect("postgres").expect("the postgres user exists on test machines")
    }

    fn parent() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn a_missing_directory_is_made_private_to_postgres() {
        let parent = parent();
        let dir = parent.path().join("sock");
        let run_as = postgres();
        ensure(&dir, run_as.as_ref(), None).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o7777, 0o700);
        let uid = run_as.map_or(nix::unistd::Uid::effective().as_raw(), |u| u.uid);
        assert_eq!(meta.uid(), uid);
        // Again, on the directory it made: accepted, and made 0750 for a group.
        ensure(&dir, postgres().as_ref(), Some(0)).unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o750, 0));
    }

    #[test]
    fn shared_foreign_or_linked_directories_are_refused() {
        let parent = parent();
        let refused = |path: &std::path::Path, why: &str| {
            let e = ensure(path, postgres().as_ref(), None).unwrap_err();
            assert!(format!("{e:#}").contains(why), "{path:?}: {e:#}");
        };
        let sticky = parent.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        refused(&sticky, "shared directory");
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(&sticky, &link).unwrap();
        refused(&link, "not a symlink");
        refused(std::path::Path::new("relative/sock"), "absolute");
        if nix::unistd::Uid::effective().is_root() {
            // Another user's directory, and a root one with something in it.
            let foreign = parent.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            refused(&foreign, "belongs to uid 65534");
            let full = parent.path().join("full");
            std::fs::create_dir(&full).unwrap();
            std::fs::write(full.join("x"), "").unwrap();
            refused(&full, "belongs to uid 0");
            // A parent anyone may write (not sticky): refused as root.
            let open = parent.path().join("open");
            std::fs::create_dir(&open).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
            refused(&open.join("sock"), "may be written by other users");
        }
    }
}
