//! The seams the integration tests (`tests/`) and benches (`benches/`) drive
//! below the binary's entry point.
//!
//! Every other module of the library is private, so the compiler reports
//! dead code again; this file lists, under the paths the modules have inside
//! the crate, exactly what the tests and benches reach. It is not an API for
//! other crates (hidden from the docs, no stability promised); an item joins
//! it only when a test or bench needs it.

/// The catalog: reading, planning and applying roles and databases.
pub mod catalog {
    pub use crate::catalog::{dry_run, reconcile, start, stored_password, Concurrency, Origin};
    /// compute_ctl's own SQL migrations.
    pub mod migrations {
        pub use crate::catalog::migrations::MIGRATIONS;
    }
}

/// Maintenance connections to the compute's postgres.
pub mod connect {
    pub use crate::connect::Connector;
}

/// The driver's status names.
pub mod driver {
    pub use crate::driver::ComputeStatus;
}

/// The HTTP API's route table and probes.
pub mod http {
    /// The internal port's `/grants` and `/extensions` request bodies.
    pub mod catalog {
        pub use crate::http::catalog::{ExtensionRequest, GrantRequest};
    }
    /// Which route is served on which port.
    pub mod table {
        pub use crate::http::table::{markdown, Ports, States, ROUTES};
    }
    /// The probe paths.
    pub mod probes {
        pub use crate::http::probes::PATHS;
    }
}

/// Finding the postgres binaries.
pub mod pgbin {
    pub use crate::pgbin::PgBin;
}

/// The local template.
pub mod pgdata {
    pub use crate::pgdata::{copy_template, ensure_template, unfinished};
}

/// Child processes and the PID-1 reaper.
pub mod process {
    pub use crate::process::{alive, forget, reap_orphans, spawn, RunAs};
}

/// Secrets that never print.
pub mod secret {
    pub use crate::secret::Secret;
}

/// The spec's two forms.
pub mod spec {
    pub use crate::spec::{ComputeConfig, ComputeSpec, ValidSpec};
}

/// Neon storage: basebackup, safekeepers, pg_basebackup.
pub mod storage {
    pub use crate::storage::{
        basebackup, create_standby_signal, pg_basebackup, sync_safekeepers, Backoff,
        BasebackupRequest,
    };
}

/// The command line's definition, for the generated flag reference.
pub mod cli {
    pub use crate::cli::command;
}

/// The metrics, for the generated metric reference.
pub mod metrics {
    pub use crate::metrics::{documented, MetricDoc};
}
