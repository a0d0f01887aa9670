//! The storage lines of postgresql.conf, and the rollback that keeps them.

use super::tests::params;
use super::*;
use serde_json::json;

fn spec(pageservers: serde_json::Value) -> ValidSpec {
    let mut v = json!({
        "format_version": 1.0,
        "cluster": {"settings": [{"name": "work_mem", "value": "4MB", "vartype": "integer"}]},
        "tenant_id": "0123456789abcdef0123456789abcdef",
        "timeline_id": "fedcba9876543210fedcba9876543210",
        "project_id": "proj-1",
        "branch_id": "br-'1'",
        "endpoint_id": "ep-1",
        "safekeeper_connstrings": ["sk-1:5454", "sk-2:5454"],
        "safekeepers_generation": 3,
    });
    v["pageserver_connection_info"] = pageservers;
    ValidSpec::from_json(&v.to_string()).unwrap()
}

fn two_shards(a: &str, b: &str) -> serde_json::Value {
    json!({
        "shard_count": 2,
        "stripe_size": 2048,
        "shards": {
            "0002": {"pageservers": [{"libpq_url": a}]},
            "0102": {"pageservers": [{"libpq_url": b}]}
        }
    })
}

#[test]
fn storage_lines_are_in_the_reference_order() {
    let conf = postgresql_conf(
        &spec(two_shards("postgresql://a:6400", "postgresql://b:6400")),
        &params(),
    );
    let expected = "neon.stripe_size = 2048\n\
        neon.pageserver_connstring = 'postgresql://a:6400,postgresql://b:6400'\n\
        neon.safekeepers = 'g#3:sk-1:5454,sk-2:5454'\n\
        neon.tenant_id = '0123456789abcdef0123456789abcdef'\n\
        neon.timeline_id = 'fedcba9876543210fedcba9876543210'\n\
        neon.project_id = 'proj-1'\n\
        neon.branch_id = 'br-''1'''\n\
        neon.endpoint_id = 'ep-1'\n";
    assert!(conf.contains(expected), "{conf}");
}

#[test]
fn an_unsharded_spec_writes_no_stripe_and_no_generation_without_one() {
    let v = json!({
        "format_version": 1.0,
        "cluster": {},
        "tenant_id": "0123456789abcdef0123456789abcdef",
        "timeline_id": "fedcba9876543210fedcba9876543210",
        "safekeeper_connstrings": ["sk-1:5454"],
        "pageserver_connstring": "postgresql://ps:6400",
    });
    let conf = postgresql_conf(&ValidSpec::from_json(&v.to_string()).unwrap(), &params());
    assert!(!conf.contains("neon.stripe_size"), "{conf}");
    assert!(conf.contains("neon.safekeepers = 'sk-1:5454'\n"), "{conf}");
    assert!(!conf.contains("neon.project_id"), "{conf}");
}

#[test]
fn a_rollback_keeps_the_storage_the_new_spec_moved_to() {
    let old = spec(two_shards("postgresql://a:6400", "postgresql://b:6400"));
    let new = spec(two_shards("postgresql://c:6400", "postgresql://d:6400"));
    let previous = postgresql_conf(&old, &params())
        // A storage line the raw postgresql_conf or the settings repeat goes too.
        .replace(
            BEGIN_MARKER,
            &format!("{BEGIN_MARKER}\n  NEON.PAGESERVER_CONNSTRING='postgresql://a:6400'"),
        );
    let restored = keeping_storage_of(&previous, &new);
    assert!(!restored.contains("://a:"), "{restored}");
    assert!(!restored.contains("://b:"), "{restored}");
    let tail = "neon.pageserver_connstring = 'postgresql://c:6400,postgresql://d:6400'\n\
        neon.safekeepers = 'g#3:sk-1:5454,sk-2:5454'\n\
        include_if_exists = 'compute_ctl_temp_override.conf'\n";
    assert!(restored.ends_with(tail), "{restored}");
    assert!(
        restored.contains("neon.stripe_size = 2048\nneon.pageserver_connstring = 'postgresql://c")
    );
    // Everything else is the previous file's, line for line.
    let others = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                !STORAGE_SETTINGS
                    .iter()
                    .any(|s| l.trim().to_lowercase().starts_with(s))
            })
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    assert_eq!(others(&restored), others(&previous));
}

#[test]
fn a_rollback_that_moved_nothing_is_the_previous_file_to_the_byte() {
    let spec = spec(two_shards("postgresql://a:6400", "postgresql://b:6400"));
    let previous = postgresql_conf(&spec, &params());
    assert_eq!(keeping_storage_of(&previous, &spec), previous);
    let local = ValidSpec::from_json(r#"{"format_version": 1.0, "cluster": {}}"#).unwrap();
    let previous = postgresql_conf(&local, &params());
    assert_eq!(keeping_storage_of(&previous, &local), previous);
}

#[test]
fn the_spec_cannot_move_the_superusers_socket() {
    let v = json!({
        "format_version": 1.0,
        "cluster": {"postgresql_conf": "unix_socket_directories = '/run/compute_ctl, /tmp'\n"}
    });
    let conf = postgresql_conf(&ValidSpec::from_json(&v.to_string()).unwrap(), &params());
    // Postgres takes the last occurrence: compute_ctl's, after the spec's.
    let last = conf
        .lines()
        .rfind(|l| l.trim_start().starts_with("unix_socket_directories"))
        .unwrap();
    assert_eq!(last, "unix_socket_directories = '/tmp'", "{conf}");
    assert!(conf.find(last).unwrap() > conf.find("/run/compute_ctl, /tmp").unwrap());
}
