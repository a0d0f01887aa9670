//! The edge's flags: pgbouncer (where its ini is, and whether compute_ctl
//! runs it).

use crate::edge::pgbouncer::{PgbouncerConfig, Supervised};
use clap::Args;
use std::path::PathBuf;

/// pgbouncer's flags.
#[derive(Args, Debug, Clone)]
pub struct EdgeFlags {
    /// Run pgbouncer beside postgres, as postgres' user, supervised (restarted
    /// on exit with a backoff, stopped at termination), from an ini written
    /// at `--pgbouncer-ini` from `--pgbouncer-defaults` and the spec. Off by
    /// default: the deployment runs pgbouncer, and compute_ctl only tunes it.
    #[arg(long, env = "COMPUTE_CTL_PGBOUNCER")]
    pub pgbouncer: bool,

    /// The pgbouncer ini file the spec's `pgbouncer_settings` are written
    /// into (its `[pgbouncer]` section; comments and order kept). Default:
    /// the reference's pod path, or `/etc/pgbouncer.ini` when `AUTOSCALING`
    /// is set (a VM).
    #[arg(long, env = "COMPUTE_CTL_PGBOUNCER_INI", value_name = "PATH")]
    pub pgbouncer_ini: Option<PathBuf>,

    /// With `--pgbouncer`: the image's defaults the ini is written from.
    #[arg(
        long,
        env = "COMPUTE_CTL_PGBOUNCER_DEFAULTS",
        value_name = "PATH",
        default_value = "/etc/compute_ctl/pgbouncer.ini"
    )]
    pub pgbouncer_defaults: PathBuf,

    /// With `--pgbouncer`: the pgbouncer program.
    #[arg(
        long,
        env = "COMPUTE_CTL_PGBOUNCER_BIN",
        value_name = "PATH",
        default_value = "/usr/sbin/pgbouncer"
    )]
    pub pgbouncer_bin: PathBuf,
}

impl EdgeFlags {
    /// pgbouncer's configuration, for a compute with `params`.
    pub fn pgbouncer(&self, params: &crate::driver::Params) -> PgbouncerConfig {
        PgbouncerConfig {
            ini: self.ini(),
            supervised: self.pgbouncer.then(|| Supervised {
                defaults: self.pgbouncer_defaults.clone(),
                bin: self.pgbouncer_bin.clone(),
                run_as: params.run_as.clone(),
                socket_dir: params.socket_dir.clone(),
                port: params.port,
                superuser: params.superuser.clone(),
            }),
            // The reference's variable; never logged.
            admin_password: std::env::var("PGBOUNCER_PASSWORD")
                .ok()
                .map(crate::secret::Secret::new),
        }
    }

    /// The ini file: the flag, else the reference's paths.
    pub fn ini(&self) -> PathBuf {
        self.pgbouncer_ini
            .clone()
            .unwrap_or_else(|| match std::env::var_os("AUTOSCALING") {
                Some(_) => PathBuf::from("/etc/pgbouncer.ini"),
                None => PathBuf::from("/var/db/postgres/pgbouncer/pgbouncer.ini"),
            })
    }
}
