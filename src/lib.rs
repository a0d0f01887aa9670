//! compute_ctl: the supervisor of a PostgreSQL compute node.
//!
//! The binary (`src/main.rs`) is one line over [`main`]; the pure lifecycle
//! machine lives in the `compute_states` crate (`states/`). Every module is
//! private, so the compiler reports any item that nothing reaches; `testing`
//! re-exports the few seams the integration tests and benches drive.
//!
//! The map, from the launch down to the leaves (a module imports only
//! modules below it; the driver and the HTTP API meet through requests and
//! snapshots, never calls). `ARCHITECTURE.md` tells how they work together.
//!
//! What the crate does for those who run it is in the repository's `docs/`:
//! `docs/operations.md` (every flag and environment variable, signals, exit
//! codes, logs, ports), `docs/deploy.md` (image, Kubernetes, compose,
//! systemd), `docs/metrics.md`, `docs/api.md` (the HTTP API),
//! `docs/start.md` (what a start does), `docs/extensions.md` (remote extensions), `docs/neon.md` (compatibility with
//! Neon's compute_ctl, whose formats are `CONTRACT.md`), `docs/reliability.md`
//! and `docs/benchmarks.md`. The flag and metric tables there are generated
//! from `cli` and `metrics`.
//!
//! | layer | modules |
//! |---|---|
//! | launch | `launch` (the start sequence `main` runs), `cli` (flags and environment), `control_plane` (pulling the spec) |
//! | faces | `http` (the API: reads snapshots, sends requests), `metrics`, `monitor` (last activity), `collector` (installed extensions), `signals`, `edge` (TLS for clients: its `tls` checks and copies are what `config` calls; its `watch` asks the driver for a connection to reload) |
//! | owner of the machine | `driver` (advances the typed states of `compute_states`) |
//! | what the driver drives | `config` (postgresql.conf, pg_hba.conf), `extensions` (remote extensions: the store, the archives), `pgdata` (the data directory and template), `storage` (safekeepers, basebackup, LSN leases), `postgres` (the postmaster), `catalog` (roles and databases: read, plan, apply), `replication` |
//! | leaves | `spec` (raw JSON and `ValidSpec`), `options` (the option grammar), `pgbin`, `connect` (maintenance connections to the compute's postgres), `auth` (JWT keys and the gate), `process` (owned children, the PID-1 reaper), `dump` (pg_dump --schema-only, streamed), `installed_extensions` (installed extensions counted), `safe_fs` (files root writes where others can write), `secret`, `logging` |

#![warn(missing_docs)]

mod auth;
mod catalog;
mod cli;
mod collector;
mod config;
mod connect;
mod control_plane;
mod driver;
mod dump;
mod edge;
mod extensions;
mod http;
mod installed_extensions;
mod launch;
mod logging;
mod metrics;
mod monitor;
mod options;
mod pgbin;
mod pgdata;
mod postgres;
mod process;
mod replication;
mod safe_fs;
mod secret;
mod signals;
mod spec;
mod storage;

pub use launch::main;

#[doc(hidden)]
pub mod testing;
