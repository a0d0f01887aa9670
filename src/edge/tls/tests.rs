use super::*;
use std::process::Command;

/// A self-signed pair made by the openssl CLI in `dir`: (cert, key).
fn pair(dir: &Path, name: &str, newkey: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "3",
            "-subj",
            "/CN=localhost",
        ])
        .args(newkey)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn raw(cert: &Path, key: &Path) -> (Vec<u8>, Vec<u8>) {
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

#[test]
fn rsa_and_ecdsa_pairs_are_taken_and_expire_when_the_certificate_says() {
    let dir = tempfile::tempdir().unwrap();
    let kinds: [(&str, &[&str]); 3] = [
        ("rsa", &["-newkey", "rsa:2048"]),
        (
            "p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        (
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
    ];
    for (name, newkey) in kinds {
        let (cert, key) = pair(dir.path(), name, newkey);
        let checked = Pair::check(raw(&cert, &key)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let days = (checked.not_after - Utc::now()).num_hours();
        assert!((71..=72).contains(&days), "{name}: {days} hours left");
        assert!(!format!("{checked:?}").contains("PRIVATE"), "{checked:?}");
    }
}

#[test]
fn a_key_of_another_certificate_or_no_pem_at_all_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a_cert, _) = pair(dir.path(), "a", &["-newkey", "rsa:2048"]);
    let (_, b_key) = pair(dir.path(), "b", &["-newkey", "rsa:2048"]);
    let err = Pair::check(raw(&a_cert, &b_key)).unwrap_err();
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    let err = Pair::check((b"junk".to_vec(), std::fs::read(&b_key).unwrap())).unwrap_err();
    assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
    let err = Pair::check((std::fs::read(&a_cert).unwrap(), b"junk".to_vec())).unwrap_err();
    assert!(format!("{err:#}").contains("no PEM private key"), "{err:#}");
}

#[test]
fn the_config_takes_absolute_paths_and_null_is_none() {
    let none = TlsConfig::from_compute_ctl_config(Some(&serde_json::json!({"tls": null})));
    assert_eq!(none.unwrap(), None);
    assert_eq!(TlsConfig::from_compute_ctl_config(None).unwrap(), None);
    let some = TlsConfig::from_compute_ctl_config(Some(&serde_json::json!(
        {"tls": {"key_path": "/k", "cert_path": "/c"}}
    )));
    assert_eq!(some.unwrap().unwrap().cert_path, PathBuf::from("/c"));
    let relative = TlsConfig::from_compute_ctl_config(Some(&serde_json::json!(
        {"tls": {"key_path": "k", "cert_path": "/c"}}
    )));
    assert!(format!("{:#}", relative.unwrap_err()).contains("tls.key_path"));
    let missing = TlsConfig::from_compute_ctl_config(Some(&serde_json::json!({"tls": {}})));
    assert!(missing.is_err());
}

#[test]
fn as_root_a_file_another_user_could_move_is_not_read() {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("tls.crt"), "x").unwrap();
    // Another user's directory: they could swap the file for a link to
    // root's secrets.
    std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
    let err = read_source(&theirs.join("tls.crt")).unwrap_err();
    assert!(format!("{err:#}").contains("owned by uid 65534"), "{err:#}");
    // Through a symlink into a root-only directory: read (Kubernetes
    // secrets are links into a timestamped directory).
    let ours = dir.path().join("..data");
    std::fs::create_dir(&ours).unwrap();
    std::fs::write(ours.join("tls.crt"), "pem").unwrap();
    std::os::unix::fs::symlink(ours.join("tls.crt"), dir.path().join("tls.crt")).unwrap();
    assert_eq!(read_source(&dir.path().join("tls.crt")).unwrap(), b"pem");
}

#[test]
fn postgresql_conf_serves_tls_only_with_the_feature_and_after_the_spec() {
    let edge = crate::edge::Edge::from_compute_ctl_config(Some(&serde_json::json!(
        {"tls": {"key_path": "/k", "cert_path": "/c"}}
    )))
    .unwrap();
    let conf = |features: serde_json::Value| {
        let spec = crate::spec::ValidSpec::from_json(
            &serde_json::json!({
                "format_version": 1.0, "features": features,
                "cluster": {"settings": [{"name": "ssl", "value": "off", "vartype": "bool"}]}
            })
            .to_string(),
        )
        .unwrap();
        let p = crate::config::ConfigParams {
            port: 5432,
            superuser: "cloud_admin",
            socket_dir: Path::new("/run/x"),
            privileged_role: None,
            edge: Some(&edge),
            extension_server_port: None,
            hold_subscribers: false,
        };
        crate::config::postgresql_conf(&spec, &p)
    };
    let on = conf(serde_json::json!(["tls_experimental"]));
    let lines = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
    let at = on.find(lines).unwrap_or_else(|| panic!("{on}"));
    assert!(
        on.find("ssl = off").unwrap() < at,
        "the spec's ssl = off must not win:\n{on}"
    );
    assert!(!conf(serde_json::json!([])).contains("ssl = on"));
}
