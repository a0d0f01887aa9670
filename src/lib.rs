//! compute_ctl: the supervisor of a PostgreSQL compute node.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; the pure
//! lifecycle machine lives in the `compute_states` crate.

#![warn(missing_docs)]

pub mod catalog;
pub mod cli;
pub mod collector;
pub mod config;
pub mod control_plane;
pub mod driver;
pub mod http;
mod launch;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod options;
pub mod pgbin;
pub mod pgdata;
pub mod postgres;
pub mod process;
pub mod replication;
pub mod secret;
pub mod signals;
pub mod spec;
pub mod storage;

pub use launch::main;
