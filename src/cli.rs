//! The command line, and turning it into the driver's parameters.

use crate::driver::Params;
use crate::pgbin::PgBin;
use crate::pgdata;
use crate::process::RunAs;
use crate::spec::{ComputeConfig, ComputeSpec};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// compute_ctl: starts, configures and supervises a PostgreSQL compute node.
#[derive(Debug, Parser)]
#[command(name = "compute_ctl", version, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Something other than running a compute.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Data directory; wiped and recreated at every start.
    #[arg(short = 'D', long, required = true, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,

    /// How compute_ctl connects to its postgres, e.g.
    /// postgresql://cloud_admin@127.0.0.1:55432/postgres. Its user is the
    /// superuser; its port is the port postgres listens on.
    #[arg(short = 'C', long, required = true, value_name = "URL")]
    pub connstr: Option<String>,

    /// The postgres binary; initdb and the other tools are taken from the same
    /// directory. Default: postgres on PATH, then pg_config --bindir, then the
    /// newest /usr/lib/postgresql/*/bin.
    #[arg(short = 'b', long, env = "POSTGRES_PATH", value_name = "PATH")]
    pub pgbin: Option<PathBuf>,

    /// A ComputeSpec JSON file.
    #[arg(short = 'S', long, value_name = "FILE", conflicts_with = "config")]
    pub spec_path: Option<PathBuf>,

    /// A ComputeConfig JSON file: {"spec": ..., "compute_ctl_config": {...}}.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Port of the control-plane HTTP API (all interfaces).
    #[arg(long, alias = "http-port", default_value_t = 3080, value_name = "PORT")]
    pub external_http_port: u16,

    /// Port of the HTTP API for local helpers.
    #[arg(long, default_value_t = 3081, value_name = "PORT")]
    pub internal_http_port: u16,

    /// Address the internal HTTP API binds to (loopback by default).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub internal_http_address: std::net::IpAddr,

    /// Id of this compute, for the control plane and JWT checks.
    #[arg(short = 'i', long, value_name = "ID")]
    pub compute_id: Option<String>,

    /// Control plane to pull the spec from (with --compute-id); the bearer
    /// token is taken from NEON_CONTROL_PLANE_TOKEN.
    #[arg(short = 'p', long, value_name = "URL", requires = "compute_id", conflicts_with_all = ["spec_path", "config"])]
    pub control_plane_uri: Option<String>,

    /// A file holding the control plane's bearer token, read at every use (a
    /// rotated file is picked up); instead of NEON_CONTROL_PLANE_TOKEN.
    #[arg(long, env = "NEON_CONTROL_PLANE_TOKEN_FILE", value_name = "FILE")]
    pub control_plane_token_file: Option<PathBuf>,

    /// When run as root: the unprivileged user postgres runs as.
    #[arg(long, default_value = "postgres", value_name = "USER")]
    pub pg_user: String,

    /// Where pristine initdb templates are cached.
    /// Default: /var/cache/compute_ctl as root, else ~/.cache/compute_ctl.
    #[arg(long, env = "COMPUTE_CTL_TEMPLATE_CACHE", value_name = "DIR")]
    pub template_cache: Option<PathBuf>,

    /// After a failure with postgres down, keep answering `/status` (and accept
    /// a new spec) for this many seconds, then exit with code 1.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub failure_exit_delay: u64,

    /// Attempts at each storage step (safekeeper sync, basebackup) before the
    /// start fails; pauses double from 100 ms up to 5 s.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub storage_attempts: u32,

    /// How long postgres may take to accept connections after it is started
    /// (crash recovery or a standby catching up included).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub start_timeout: u64,

    /// Directory of postgres' Unix socket (the spec's settings may override it).
    #[arg(long, default_value = "/tmp", value_name = "DIR")]
    pub socket_dir: PathBuf,

    /// After a `POST /terminate`, keep answering the API (201 to a repeated
    /// terminate) for this many seconds (fractions allowed) before exiting 0.
    /// Default as the reference: 30 after a fast termination, 0.3 after an
    /// immediate one. A signal during the linger exits at once.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub terminate_linger: Option<std::time::Duration>,

    /// The reference's launch flags (Neon's compute_ctl).
    #[command(flatten)]
    pub reference: ReferenceFlags,
}

/// Flags of Neon's compute_ctl, so that its launchers can start us. Those
/// without an implementation here are accepted with a warning naming them.
#[derive(Debug, clap::Args)]
pub struct ReferenceFlags {
    /// The role the spec's roles are made members of, with the reference's
    /// privileges (not a superuser): lowercase letters, digits and `_`.
    #[arg(long, default_value = crate::catalog::DEFAULT_PRIVILEGED_ROLE, value_name = "NAME",
          value_parser = parse_privileged_role)]
    pub privileged_role_name: String,

    /// How often the `compute_installed_extensions` metric is refreshed.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub installed_extensions_collection_interval: u64,

    /// Not supported (the reference's development mode).
    #[arg(long)]
    pub dev: bool,

    /// Not supported (the reference's remote extension storage).
    #[arg(short = 'r', long, value_name = "URL", alias = "remote-ext-config")]
    pub remote_ext_base_url: Option<String>,

    /// Not supported (the reference's cgroup for postgres, in VMs).
    #[arg(long, value_name = "NAME")]
    pub cgroup: Option<String>,

    /// Not supported (the reference's VM monitor file cache connection).
    #[arg(long, value_name = "CONNSTR")]
    pub filecache_connstr: Option<String>,

    /// Not supported (the reference's VM monitor address).
    #[arg(long, value_name = "ADDR")]
    pub vm_monitor_addr: Option<String>,

    /// Not supported (the reference resizes swap when a VM is bound).
    #[arg(long)]
    pub resize_swap_on_bind: bool,

    /// Not supported (the reference sets a disk quota on this filesystem).
    #[arg(long, value_name = "MOUNTPOINT")]
    pub set_disk_quota_for_fs: Option<String>,
}

impl ReferenceFlags {
    /// The flags given that compute_ctl accepts but does not implement.
    pub fn unsupported(&self) -> Vec<&'static str> {
        [
            ("--dev", self.dev),
            ("--remote-ext-base-url", self.remote_ext_base_url.is_some()),
            ("--cgroup", self.cgroup.is_some()),
            ("--filecache-connstr", self.filecache_connstr.is_some()),
            ("--vm-monitor-addr", self.vm_monitor_addr.is_some()),
            ("--resize-swap-on-bind", self.resize_swap_on_bind),
            (
                "--set-disk-quota-for-fs",
                self.set_disk_quota_for_fs.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

fn parse_privileged_role(name: &str) -> Result<String, String> {
    crate::catalog::check_privileged_role_name(name).map(|()| name.to_string())
}

/// A non-negative number of seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is not a non-negative number of seconds"))
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the state diagram (mermaid stateDiagram-v2) generated from the machine.
    Diagram,
    /// Dry run: print the SQL that applying SPEC to a running postgres would
    /// execute (passwords redacted), without changing anything.
    Plan {
        /// The postgres to compare with (its user is the superuser).
        #[arg(short = 'C', long, value_name = "URL")]
        connstr: String,
        /// The ComputeSpec JSON file.
        #[arg(short = 'S', long, value_name = "FILE")]
        spec_path: PathBuf,
        /// The privileged role the compute runs with.
        #[arg(long, default_value = crate::catalog::DEFAULT_PRIVILEGED_ROLE, value_name = "NAME",
              value_parser = parse_privileged_role)]
        privileged_role_name: String,
    },
}

/// `compute_ctl plan`: prints the plan and returns how many statements it has.
pub async fn print_plan(
    connstr: &str,
    spec_path: &std::path::Path,
    privileged_role: &str,
) -> Result<usize> {
    let text = std::fs::read_to_string(spec_path)
        .with_context(|| format!("reading spec file {}", spec_path.display()))?;
    let spec =
        ComputeSpec::from_json(&text).with_context(|| format!("in {}", spec_path.display()))?;
    let config: tokio_postgres::Config = connstr
        .parse()
        .with_context(|| format!("--connstr {connstr:?} is not a valid connection string"))?;
    let connector = crate::catalog::Connector::new(config).with_privileged_role(privileged_role);
    let plan = crate::catalog::dry_run(&connector, &spec).await?;
    if plan.is_empty() {
        eprintln!("-- the catalog matches the spec: nothing to do");
    } else {
        print!("{plan}");
    }
    Ok(plan.len())
}

impl Cli {
    /// The spec given with `-S` or `-c`, parsed and validated, and the
    /// `compute_ctl_config` of a `-c` file.
    pub fn load_spec(&self) -> Result<(Option<ComputeSpec>, Option<serde_json::Value>)> {
        if let Some(path) = &self.spec_path {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading spec file {}", path.display()))?;
            let spec =
                ComputeSpec::from_json(&text).with_context(|| format!("in {}", path.display()))?;
            return Ok((Some(spec), None));
        }
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let config = ComputeConfig::from_json(&text)
                .with_context(|| format!("in {}", path.display()))?;
            return Ok((config.spec, config.compute_ctl_config));
        }
        // With -p, the spec is pulled once the API is up (see control_plane).
        Ok((None, None))
    }

    /// Where `/refresh_configuration` reads the spec again: the control plane
    /// (`-p`), or the `-S`/`-c` file.
    pub fn spec_source(&self) -> Option<crate::control_plane::SpecSource> {
        use crate::control_plane::{SpecSource, TokenSource};
        if let (Some(uri), Some(id)) = (&self.control_plane_uri, &self.compute_id) {
            return Some(SpecSource::ControlPlane {
                uri: uri.clone(),
                id: id.clone(),
                token: TokenSource {
                    file: self.control_plane_token_file.clone(),
                },
            });
        }
        if let Some(path) = &self.spec_path {
            return Some(SpecSource::SpecFile(path.clone()));
        }
        self.config.clone().map(SpecSource::ConfigFile)
    }

    /// Resolves everything the driver needs: binaries, user, ports.
    pub async fn params(&self) -> Result<Params> {
        let pgdata = self.pgdata.clone().context("--pgdata is required")?;
        let connstr_text = self.connstr.as_deref().context("--connstr is required")?;
        let connstr: tokio_postgres::Config = connstr_text.parse().with_context(|| {
            format!("--connstr {connstr_text:?} is not a valid connection string")
        })?;
        let superuser = connstr
            .get_user()
            .context("--connstr must name a user: the superuser, e.g. postgresql://cloud_admin@127.0.0.1:55432/postgres")?
            .to_string();
        if superuser.is_empty()
            || superuser
                .chars()
                .any(|c| c == '"' || c.is_whitespace() || c.is_control())
        {
            bail!("the superuser name {superuser:?} in --connstr must not contain quotes, spaces or control characters");
        }
        let port = connstr.get_ports().first().copied().unwrap_or(5432);
        let pgbin = PgBin::resolve(self.pgbin.as_deref()).await?;
        let run_as = RunAs::detect(&self.pg_user)?;
        for flag in self.reference.unsupported() {
            tracing::warn!("{flag} is not supported by this compute_ctl; ignored");
        }
        let template_cache = self
            .template_cache
            .clone()
            .unwrap_or_else(pgdata::default_cache_dir);
        Ok(Params {
            pgdata,
            connstr,
            superuser,
            port,
            pgbin,
            run_as,
            template_cache,
            socket_dir: self.socket_dir.clone(),
            failure_exit_delay: std::time::Duration::from_secs(self.failure_exit_delay),
            terminate_linger: self.terminate_linger,
            start_timeout: std::time::Duration::from_secs(self.start_timeout.max(1)),
            privileged_role: self.reference.privileged_role_name.clone(),
            installed_extensions_interval: std::time::Duration::from_secs(
                self.reference
                    .installed_extensions_collection_interval
                    .max(1),
            ),
            storage_backoff: crate::storage::Backoff {
                attempts: self.storage_attempts.max(1),
                ..crate::storage::Backoff::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
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
                "--remote-ext-base-url",
                "--cgroup",
                "--filecache-connstr",
                "--vm-monitor-addr",
                "--resize-swap-on-bind",
                "--set-disk-quota-for-fs"
            ]
        );
        assert!(parse(&[]).unwrap().reference.unsupported().is_empty());
    }
}
