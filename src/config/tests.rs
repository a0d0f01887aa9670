//! What `postgresql.conf` and `pg_hba.conf` say: the contract's order,
//! each mode, and whom the socket trusts.

use super::*;

fn spec(json: serde_json::Value) -> ValidSpec {
    ValidSpec::from_json(&json.to_string()).unwrap()
}

/// Also the storage tests' (`tests_storage.rs`).
pub(super) fn params() -> ConfigParams<'static> {
    ConfigParams {
        port: 55432,
        superuser: "cloud_admin",
        socket_dir: Path::new("/tmp"),
        privileged_role: None,
        edge: None,
        extension_server_port: None,
        hold_subscribers: false,
    }
}

#[test]
fn conf_has_the_contract_order() {
    let s = spec(serde_json::json!({
        "format_version": 1.0,
        "mode": "Replica",
        "primary_connstring": "host=primary",
        "cluster": {
            "postgresql_conf": "shared_buffers = 1MB",
            "settings": [
                {"name": "work_mem", "value": "4MB", "vartype": "integer"},
                {"name": "search_path", "value": "it's \\ here", "vartype": "string"}
            ]
        }
    }));
    let conf = postgresql_conf(&s, &params());
    let pos = |needle: &str| {
        conf.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing:\n{conf}"))
    };
    assert!(pos(END_MARKER) < pos("unix_socket_directories = '/tmp'"));
    assert!(pos("shared_buffers = 1MB") < pos("hot_standby = on"));
    assert!(pos("hot_standby = on") < pos("port = 55432"));
    assert!(pos("port = 55432") < pos(BEGIN_MARKER));
    assert!(pos(BEGIN_MARKER) < pos("work_mem = 4MB"));
    assert!(pos("search_path = 'it''s \\\\ here'") < pos(END_MARKER));
    assert!(conf.ends_with("include_if_exists = 'compute_ctl_temp_override.conf'\n"));
}

#[test]
fn every_mode_is_written_and_static_stops_at_its_lsn() {
    let conf = |mode: serde_json::Value, neon: bool| {
        let mut v = serde_json::json!({"format_version": 1.0, "mode": mode, "cluster": {}});
        if neon {
            v["pageserver_connstring"] = "postgresql://ps:6400".into();
            v["tenant_id"] = "0123456789abcdef0123456789abcdef".into();
            v["timeline_id"] = "0123456789abcdef0123456789abcdef".into();
            v["safekeeper_connstrings"] = serde_json::json!(["sk:5454"]);
        }
        postgresql_conf(&spec(v), &params())
    };
    let primary = conf("Primary".into(), true);
    assert!(primary.contains("neon.compute_mode = 'primary'\n"));
    assert!(!primary.contains("hot_standby") && !primary.contains("recovery_target"));
    for lc in ["lc_messages", "lc_monetary", "lc_numeric", "lc_time"] {
        assert!(
            primary.contains(&format!("{lc} = 'C.UTF-8'\n")),
            "{primary}"
        );
    }
    let replica = conf("Replica".into(), true);
    assert!(replica.contains("neon.compute_mode = 'replica'\nhot_standby = on\n"));
    let stat = conf(serde_json::json!({"Static": "0/16B3748"}), true);
    assert!(
        stat.contains(
            "neon.compute_mode = 'static'\nhot_standby = on\nrecovery_target_lsn = '0/16B3748'\n"
        ),
        "{stat}"
    );
    // Local storage keeps postgres' own locales.
    let local = conf("Primary".into(), false);
    assert!(local.contains("neon.compute_mode = 'primary'"));
    assert!(!local.contains("lc_messages"));
}

#[test]
fn hba_trusts_only_the_superuser() {
    let hba = pg_hba_conf(&params());
    let trusted: Vec<&str> = hba.lines().filter(|l| l.ends_with("trust")).collect();
    assert_eq!(trusted.len(), 2, "{hba}");
    for line in trusted {
        // On the socket only: TCP, loopback included, is any local uid's.
        assert!(line.starts_with("local "), "{line}");
        assert!(line.contains("\"cloud_admin\""), "{line}");
    }
    assert!(
        !hba.contains("127.0.0.1") && !hba.contains("::1/128"),
        "{hba}"
    );
    assert!(hba.contains("host    all          all   0.0.0.0/0     md5"));
}
