//! The command line, and turning it into the driver's parameters.

use crate::driver::Params;
pub use crate::logging::LogFormat;
use crate::pgbin::PgBin;
use crate::pgdata;
use crate::process::RunAs;
use crate::spec::{ComputeConfig, ValidSpec};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// compute_ctl: starts, configures and supervises a PostgreSQL compute node.
///
/// Every flag can also be set by the environment variable named after it
/// (`COMPUTE_CTL_<FLAG>`, shown with each flag); `COMPUTE_CTL_<FLAG>_FILE`
/// reads the value from a file instead (secrets mounted as files).
#[derive(Debug, Parser)]
#[command(name = "compute_ctl", version, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Something other than running a compute.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Data directory; wiped and recreated at every start.
    #[arg(
        short = 'D',
        long,
        env = "COMPUTE_CTL_PGDATA",
        required = true,
        value_name = "DIR"
    )]
    pub pgdata: Option<PathBuf>,

    /// How compute_ctl connects to its postgres, e.g.
    /// postgresql://cloud_admin@127.0.0.1:55432/postgres. Its user is the
    /// superuser; its port is the port postgres listens on.
    #[arg(
        short = 'C',
        long,
        env = "COMPUTE_CTL_CONNSTR",
        required = true,
        value_name = "URL"
    )]
    pub connstr: Option<String>,

    /// The postgres binary; initdb and the other tools are taken from the same
    /// directory. Default: postgres on PATH, then pg_config --bindir, then the
    /// newest /usr/lib/postgresql/*/bin.
    #[arg(short = 'b', long, env = "COMPUTE_CTL_PGBIN", value_name = "PATH")]
    pub pgbin: Option<PathBuf>,

    /// A ComputeSpec JSON file.
    #[arg(short = 'S', long, env = "COMPUTE_CTL_SPEC_PATH", value_name = "FILE")]
    pub spec_path: Option<PathBuf>,

    /// A ComputeConfig JSON file: {"spec": ..., "compute_ctl_config": {...}}.
    /// With `-S` too, its spec must be null (e.g. the spec in a ConfigMap,
    /// the JWKS in a Secret).
    #[arg(short = 'c', long, env = "COMPUTE_CTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Port of the control-plane HTTP API (all interfaces).
    #[arg(
        long,
        alias = "http-port",
        env = "COMPUTE_CTL_EXTERNAL_HTTP_PORT",
        default_value_t = 3080,
        value_name = "PORT"
    )]
    pub external_http_port: u16,

    /// Port of the HTTP API for local helpers.
    #[arg(
        long,
        env = "COMPUTE_CTL_INTERNAL_HTTP_PORT",
        default_value_t = 3081,
        value_name = "PORT"
    )]
    pub internal_http_port: u16,

    /// Address the internal HTTP API binds to (loopback by default).
    #[arg(
        long,
        env = "COMPUTE_CTL_INTERNAL_HTTP_ADDRESS",
        default_value = "127.0.0.1",
        value_name = "ADDR"
    )]
    pub internal_http_address: std::net::IpAddr,

    /// On either HTTP port, how long a client may take to send a request's
    /// line and headers, counted from when the connection is ready for them
    /// (so also how long an idle keep-alive connection stays open); then
    /// the connection is closed. Fractions allowed.
    #[arg(
        long,
        env = "COMPUTE_CTL_HTTP_HEADER_TIMEOUT",
        default_value = "10",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub http_header_timeout: std::time::Duration,

    /// On either HTTP port, how long a response may wait for a client that
    /// reads none of it, or a request body send nothing, before the
    /// connection is closed (a /database_schema dump is then stopped).
    #[arg(
        long,
        env = "COMPUTE_CTL_HTTP_IDLE_TIMEOUT",
        default_value = "30",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub http_idle_timeout: std::time::Duration,

    /// Connections each HTTP port holds at most (lowered to fit the open
    /// files limit); at the cap a new connection replaces the longest idle one.
    #[arg(
        long,
        env = "COMPUTE_CTL_HTTP_MAX_CONNECTIONS",
        default_value_t = 128,
        value_name = "N"
    )]
    pub http_max_connections: usize,

    /// Id of this compute, for the control plane and JWT checks.
    #[arg(short = 'i', long, env = "COMPUTE_CTL_COMPUTE_ID", value_name = "ID")]
    pub compute_id: Option<String>,

    /// Control plane to pull the spec from (with --compute-id); the bearer
    /// token is taken from NEON_CONTROL_PLANE_TOKEN.
    #[arg(short = 'p', long, env = "COMPUTE_CTL_CONTROL_PLANE_URI", value_name = "URL", requires = "compute_id", conflicts_with_all = ["spec_path", "config"])]
    pub control_plane_uri: Option<String>,

    /// A file holding the control plane's bearer token, read at every use (a
    /// rotated file is picked up); instead of NEON_CONTROL_PLANE_TOKEN.
    #[arg(long, env = "NEON_CONTROL_PLANE_TOKEN_FILE", value_name = "FILE")]
    pub control_plane_token_file: Option<PathBuf>,

    /// How long one request to the control plane may take (connect, answer
    /// and body) before the attempt fails and is retried.
    #[arg(
        long,
        env = "COMPUTE_CTL_CONTROL_PLANE_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub control_plane_timeout: u64,

    /// When run as root: the unprivileged user postgres runs as.
    #[arg(
        long,
        env = "COMPUTE_CTL_PG_USER",
        default_value = "postgres",
        value_name = "USER"
    )]
    pub pg_user: String,

    /// Where initdb templates (finished: see README) are cached, with what
    /// each postgres binary says of itself (its version and settings).
    /// Default: /var/cache/compute_ctl as root, else ~/.cache/compute_ctl.
    #[arg(long, env = "COMPUTE_CTL_TEMPLATE_CACHE", value_name = "DIR")]
    pub template_cache: Option<PathBuf>,

    /// Do not keep a spare copy of the template ready in the template cache.
    /// By default, after each local start a copy is made in the background
    /// (while postgres starts), and the next local start renames it into
    /// place instead of copying the template while it waits.
    #[arg(long, env = "COMPUTE_CTL_NO_SPARE_PGDATA",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_spare_pgdata: bool,

    /// After a failure with postgres down, keep answering `/status` (and accept
    /// a new spec) for this many seconds, then exit with code 1.
    #[arg(
        long,
        env = "COMPUTE_CTL_FAILURE_EXIT_DELAY",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub failure_exit_delay: u64,

    /// Attempts at each storage step (safekeeper sync, basebackup) before the
    /// start fails; pauses double from 100 ms up to 5 s.
    #[arg(
        long,
        env = "COMPUTE_CTL_STORAGE_ATTEMPTS",
        default_value_t = 10,
        value_name = "N"
    )]
    pub storage_attempts: u32,

    /// A basebackup attempt whose pageserver sends nothing for this long in
    /// the middle of the stream (a stall) fails and is retried. Before the
    /// stream starts, the pageserver may wait for WAL up to 330 s.
    #[arg(
        long,
        env = "COMPUTE_CTL_STORAGE_STALL_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub storage_stall_timeout: u64,

    /// How long postgres may take to accept connections after it is started
    /// (crash recovery or a standby catching up included).
    #[arg(
        long,
        env = "COMPUTE_CTL_START_TIMEOUT",
        default_value_t = 600,
        value_name = "SECONDS"
    )]
    pub start_timeout: u64,

    /// Directory of postgres' Unix socket, through which compute_ctl (and
    /// only who can enter it) connects as the superuser. Made if missing:
    /// owned by postgres' user, mode 0700 (0750 with --socket-group).
    /// Default: /run/compute_ctl as root, else /tmp/compute_ctl-UID.
    #[arg(long, env = "COMPUTE_CTL_SOCKET_DIR", value_name = "DIR")]
    pub socket_dir: Option<PathBuf>,

    /// A group whose members may enter the socket directory, and so connect
    /// as the superuser (helpers such as a sidecar): name or gid.
    #[arg(long, env = "COMPUTE_CTL_SOCKET_GROUP", value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// After a `POST /terminate`, keep answering the API (201 to a repeated
    /// terminate) for this many seconds (fractions allowed) before exiting 0.
    /// Default as the reference: 30 after a fast termination, 0.3 after an
    /// immediate one. A signal during the linger exits at once.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub terminate_linger: Option<std::time::Duration>,

    /// Shutdown budget: a termination stops postgres fast (or as asked), and
    /// at this deadline escalates to an immediate shutdown. Keep it below the
    /// orchestrator's grace period (Kubernetes: 30 s).
    #[arg(
        long,
        env = "COMPUTE_CTL_STOP_TIMEOUT",
        default_value_t = 25,
        value_name = "SECONDS"
    )]
    pub stop_timeout: u64,

    /// How long `POST /promote` waits for the replica to replay the old
    /// primary's WAL up to `wal_flush_lsn` before it answers 408 (the
    /// replica stays a replica).
    #[arg(
        long,
        env = "COMPUTE_CTL_PROMOTE_TIMEOUT",
        default_value_t = 20,
        value_name = "SECONDS"
    )]
    pub promote_timeout: u64,

    /// Scale to zero without a control plane: when the compute has been idle
    /// for the spec's `suspend_timeout_seconds` (-1 or absent: never), it
    /// terminates itself (fast, the LSN recorded as for `/terminate`) and
    /// exits 0. Off by default, so a control plane keeps the decision.
    #[arg(long, env = "COMPUTE_CTL_SUSPEND_WHEN_IDLE")]
    pub suspend_when_idle: bool,

    /// Log format on stderr: `text` for people, `json` (one object per line,
    /// postgres' lines included) for log pipelines.
    #[arg(long, env = "COMPUTE_CTL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long one download from the extension store (`-r`) may take, all
    /// its attempts included (a 503 or a store out of reach is tried again,
    /// pauses doubling from 100 ms up to 2 s); a second request for an
    /// archive being downloaded waits as long, and 5 s more. Fractions allowed.
    #[arg(
        long,
        env = "COMPUTE_CTL_REMOTE_EXT_TIMEOUT",
        default_value = "50",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub remote_ext_timeout: std::time::Duration,

    /// Largest archive accepted from the extension store, compressed; it may
    /// unpack to 8 times as much.
    #[arg(
        long,
        env = "COMPUTE_CTL_REMOTE_EXT_MAX_BYTES",
        default_value_t = 256 * 1024 * 1024,
        value_name = "BYTES"
    )]
    pub remote_ext_max_bytes: u64,

    /// The reference's launch flags (Neon's compute_ctl).
    #[command(flatten)]
    pub reference: ReferenceFlags,

    /// pgbouncer.
    #[command(flatten)]
    pub edge: edge::EdgeFlags,
}

/// The command line's definition (flags, environment variables, defaults,
/// help, subcommands), for the generated flag reference.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Environment variables whose value may instead be read from the file named
/// by the same name with `_FILE` appended (secrets mounted as files).
const FILE_VARS_PREFIX: &str = "COMPUTE_CTL_";

/// For every `COMPUTE_CTL_<NAME>_FILE` in `vars` whose `<NAME>` variable is
/// not set, the `(NAME, file content)` pair to set; one trailing newline of
/// the file is dropped. An unreadable file is an error naming the variable.
pub fn vars_from_files(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>> {
    let vars: Vec<(String, std::ffi::OsString)> = vars
        .into_iter()
        .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
        .collect();
    let mut out = Vec::new();
    for (name, path) in &vars {
        let Some(base) = name.strip_suffix("_FILE") else {
            continue;
        };
        // NEON_CONTROL_PLANE_TOKEN_FILE is --control-plane-token-file's own
        // variable (the file is read at each use).
        if !base.starts_with(FILE_VARS_PREFIX) || vars.iter().any(|(k, _)| k == base) {
            continue;
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{name}: reading {}", PathBuf::from(path).display()))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        out.push((base.to_string(), text.to_string()));
    }
    Ok(out)
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
        #[arg(short = 'C', long, env = "COMPUTE_CTL_CONNSTR", value_name = "URL")]
        connstr: String,
        /// The ComputeSpec JSON file.
        #[arg(short = 'S', long, env = "COMPUTE_CTL_SPEC_PATH", value_name = "FILE")]
        spec_path: PathBuf,
        /// The privileged role the compute runs with.
        #[arg(long, env = "COMPUTE_CTL_PRIVILEGED_ROLE_NAME",
              default_value = crate::catalog::DEFAULT_PRIVILEGED_ROLE, value_name = "NAME",
              value_parser = parse_privileged_role)]
        privileged_role_name: String,
    },
    /// Makes the initdb template for this postgres, superuser (`-C`) and
    /// privileged role in the template cache, finished (the privileged
    /// role, the migrations), and exits: an image built with it copies the
    /// template at its first start instead of running initdb.
    Template,
    /// Health check for a container (no curl needed): GET a probe of the
    /// local external API; exit 0 on a 2xx answer, 1 otherwise.
    Probe {
        /// A path on this compute's external port (`/healthz`, `/readyz`,
        /// `/startupz`, with a query if needed) or a full `http://` URL.
        #[arg(default_value = "/healthz", value_name = "URL")]
        url: String,
        /// The external port the path is asked on.
        #[arg(
            long,
            env = "COMPUTE_CTL_EXTERNAL_HTTP_PORT",
            default_value_t = 3080,
            value_name = "PORT"
        )]
        port: u16,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        timeout: u64,
    },
}

/// `compute_ctl template`: the template's directory.
pub async fn make_template(cli: &Cli) -> Result<PathBuf> {
    let p = cli.params().await?;
    crate::driver::template::ensure(&p).await
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
        ValidSpec::from_json(&text).with_context(|| format!("in {}", spec_path.display()))?;
    let config: tokio_postgres::Config = connstr
        .parse()
        .with_context(|| format!("--connstr {connstr:?} is not a valid connection string"))?;
    let connector = crate::connect::Connector::new(config).with_privileged_role(privileged_role);
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
    pub fn load_spec(&self) -> Result<(Option<ValidSpec>, Option<serde_json::Value>)> {
        let (mut spec, compute_ctl_config) = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let config = ComputeConfig::from_json(&text)
                    .with_context(|| format!("in {}", path.display()))?;
                (config.spec, config.compute_ctl_config)
            }
            // With -p, the spec is pulled once the API is up (see control_plane).
            None => (None, None),
        };
        if let Some(path) = &self.spec_path {
            if spec.is_some() {
                bail!(
                    "both -S {} and the config file give a spec; set the config's \"spec\" to null",
                    path.display()
                );
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading spec file {}", path.display()))?;
            spec = Some(
                ValidSpec::from_json(&text).with_context(|| format!("in {}", path.display()))?,
            );
        }
        Ok((spec, compute_ctl_config))
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
                timeout: std::time::Duration::from_secs(self.control_plane_timeout),
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
        // POSTGRES_PATH: the reference's name for the same thing.
        let pgbin_flag = self
            .pgbin
            .clone()
            .or_else(|| std::env::var_os("POSTGRES_PATH").map(PathBuf::from));
        let template_cache = self
            .template_cache
            .clone()
            .unwrap_or_else(pgdata::default_cache_dir);
        let pgbin = PgBin::resolve_cached(pgbin_flag.as_deref(), &template_cache).await?;
        let run_as = RunAs::detect(&self.pg_user)?;
        for flag in self.reference.unsupported() {
            tracing::warn!("{flag} is not supported by this compute_ctl; ignored");
        }
        let socket_dir = self.socket_dir.clone().unwrap_or_else(socket::default_dir);
        // compute_ctl's own sessions go through the socket, where the
        // superuser is trusted; the connstr gives the user, database and port.
        let connstr = crate::connect::Connector::socket_config(&connstr, &socket_dir, port);
        let remote_extensions = Arc::new(crate::extensions::Store::new(
            self.reference.remote_ext_base_url.clone(),
            &pgbin,
            crate::metrics::BUILD_TAG,
            crate::extensions::Limits {
                timeout: self.remote_ext_timeout,
                max_bytes: self.remote_ext_max_bytes,
                attempts: 10,
                first_pause: std::time::Duration::from_millis(100),
            },
        )?);
        Ok(Params {
            pgdata,
            connstr,
            superuser,
            port,
            pgbin,
            run_as,
            template_cache,
            spare_pgdata: !self.no_spare_pgdata,
            socket_dir,
            failure_exit_delay: std::time::Duration::from_secs(self.failure_exit_delay),
            terminate_linger: self.terminate_linger,
            start_timeout: std::time::Duration::from_secs(self.start_timeout.max(1)),
            stop_timeout: std::time::Duration::from_secs(self.stop_timeout),
            promote_timeout: std::time::Duration::from_secs(self.promote_timeout),
            internal_http_port: self.internal_http_port,
            privileged_role: self.reference.privileged_role_name.clone(),
            installed_extensions_interval: std::time::Duration::from_secs(
                self.reference
                    .installed_extensions_collection_interval
                    .max(1),
            ),
            remote_extensions,
            storage_backoff: crate::storage::Backoff {
                attempts: self.storage_attempts.max(1),
                stall_timeout: std::time::Duration::from_secs(self.storage_stall_timeout.max(1)),
                ..crate::storage::Backoff::default()
            },
            // Set by the launch from compute_ctl_config.
            edge: Default::default(),
            // Set by the launch, beside the gate the keys go to.
            refresh: None,
        })
    }
}

pub mod edge;
mod reference;
pub mod socket;

use reference::parse_privileged_role;
pub use reference::ReferenceFlags;
#[cfg(test)]
mod tests;
