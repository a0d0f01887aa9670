//! Faults against real processes (the README's "Reliability" rows): a failing
//! control plane, a full disk, processes killed outright, signals in every
//! state, failing storage.

use crate::common::spec;
use serde_json::{json, Value};

mod control_plane;
mod disk;
mod kill;
mod signals;
mod storage;

/// A spec with `dbs` databases (slow enough to be caught applying).
pub fn many(dbs: usize) -> Value {
    let roles: Vec<Value> = (0..4)
        .map(|i| json!({"name": format!("role {i}"), "encrypted_password": null}))
        .collect();
    let databases: Vec<Value> = (0..dbs)
        .map(|i| json!({"name": format!("db {i}"), "owner": format!("role {}", i % 4)}))
        .collect();
    spec(json!(roles), json!(databases))
}
