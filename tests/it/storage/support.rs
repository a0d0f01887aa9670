//! What the storage tests and the bounded-memory test (tests/bounded_memory.rs,
//! which includes this file) share: the ids, the owner, a quick backoff, a
//! basebackup request.

use compute_ctl::testing::process::RunAs;
use compute_ctl::testing::secret::Secret;
use compute_ctl::testing::storage::{Backoff, BasebackupRequest};
use compute_states::Lsn;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

pub const TENANT: &str = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";
pub const TIMELINE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A temporary directory the postgres user can traverse.
pub fn test_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cc-storage-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub fn owner() -> Option<RunAs> {
    RunAs::detect("postgres").unwrap()
}

pub fn quick(attempts: u32) -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        attempts,
        ..Backoff::default()
    }
}

pub fn request<'a>(ps: &'a str, token: Option<&'a str>, lsn: Option<Lsn>) -> BasebackupRequest<'a> {
    BasebackupRequest {
        pageserver_connstring: Secret::new(ps),
        auth_token: token.map(Secret::new),
        tenant_id: TENANT,
        timeline_id: TIMELINE,
        lsn,
        replica: false,
    }
}
