//! compute_ctl: the supervisor of a PostgreSQL compute node.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; the pure
//! lifecycle machine lives in the `compute_states` crate.

#![warn(missing_docs)]

pub mod catalog;
pub mod spec;
