//! Spec parsing and validation: every error names its field.

use super::*;
use crate::options::{GenericOption, VarType};
use crate::secret::Secret;
use compute_states::Lsn;
use std::collections::HashSet;

fn minimal() -> serde_json::Value {
    serde_json::json!({"format_version": 1.0, "cluster": {"roles": [], "databases": []}})
}

fn parse(v: serde_json::Value) -> Result<ValidSpec, SpecError> {
    ValidSpec::from_json(&v.to_string())
}

#[test]
fn minimal_spec_has_defaults() {
    let spec = parse(minimal()).unwrap();
    assert_eq!(spec.mode, ComputeMode::Primary);
    assert_eq!(spec.reconfigure_concurrency, 1);
    assert!(!spec.skip_pg_catalog_updates);
    assert!(spec.settings().is_empty());
}

#[test]
fn unknown_fields_are_ignored_and_modes_parse() {
    let mut v = minimal();
    v["something_new"] = serde_json::json!({"x": 1});
    v["features"] = serde_json::json!(["activity_monitor_experimental", "unheard_of"]);
    v["mode"] = serde_json::json!({"Static": "0/16B3748"});
    v["primary_connstring"] = serde_json::json!("host=p");
    // A static compute reads from a pageserver, not from a primary.
    assert_eq!(parse(v.clone()).unwrap_err().field, "primary_connstring");
    v["primary_connstring"] = serde_json::Value::Null;
    v["pageserver_connstring"] = serde_json::json!("postgresql://ps:6400");
    v["tenant_id"] = serde_json::json!("0123456789abcdef0123456789abcdef");
    v["timeline_id"] = serde_json::json!("0123456789abcdef0123456789abcdef");
    let spec = parse(v).unwrap();
    assert_eq!(spec.mode, ComputeMode::Static(Lsn(0x16B3748)));
    let mut v = minimal();
    v["mode"] = serde_json::json!("Replica");
    v["primary_connstring"] = serde_json::json!("host=p");
    assert_eq!(parse(v).unwrap().mode, ComputeMode::Replica);
}

#[test]
fn a_read_only_compute_without_a_source_is_refused() {
    for mode in [
        serde_json::json!("Replica"),
        serde_json::json!({"Static": "0/1"}),
    ] {
        let mut v = minimal();
        v["mode"] = mode.clone();
        let e = parse(v).unwrap_err();
        assert_eq!(e.field, "mode", "{mode}: {e}");
        assert!(e.reason.contains("pageserver_connstring"), "{e}");
    }
}

#[test]
fn a_running_compute_keeps_its_tenant_timeline_and_mode() {
    let neon = |tenant: &str, timeline: &str, mode: serde_json::Value, ps: &str| {
        let mut v = minimal();
        v["pageserver_connstring"] = serde_json::json!(ps);
        v["tenant_id"] = serde_json::json!(tenant);
        v["timeline_id"] = serde_json::json!(timeline);
        v["mode"] = mode;
        v["safekeeper_connstrings"] = serde_json::json!(["sk:1"]);
        parse(v).unwrap()
    };
    let (a, b) = (
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
    );
    let running = neon(a, a, "Primary".into(), "postgresql://ps:1");
    // The pageserver (and the safekeepers) may change.
    let moved = neon(a, a, "Primary".into(), "postgresql://ps:2");
    assert_eq!(moved.check_change_from(&running), Ok(()));
    for (new, field) in [
        (
            neon(b, a, "Primary".into(), "postgresql://ps:1"),
            "tenant_id",
        ),
        (
            neon(a, b, "Primary".into(), "postgresql://ps:1"),
            "timeline_id",
        ),
        (neon(a, a, "Replica".into(), "postgresql://ps:1"), "mode"),
    ] {
        let e = new.check_change_from(&running).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.reason.contains("running compute"), "{e}");
    }
}

#[test]
fn type_errors_name_the_field() {
    let mut v = minimal();
    v["cluster"]["roles"] = serde_json::json!([{"name": "a"}, {"name": 5}]);
    let e = parse(v).unwrap_err();
    assert_eq!(e.field, "cluster.roles[1].name");
    let e = ValidSpec::from_json("{\"format_version\": 1.0").unwrap_err();
    assert!(e.to_string().contains("EOF"), "{e}");
    let e = ValidSpec::from_json("{\"format_version\": 1.0}").unwrap_err();
    assert!(e.reason.contains("cluster"), "{e}");
}

#[test]
fn rejects_bad_names_and_duplicates() {
    let mut v = minimal();
    v["cluster"]["roles"] = serde_json::json!([{"name": "x".repeat(64)}]);
    assert_eq!(parse(v).unwrap_err().field, "cluster.roles[0].name");
    let mut v = minimal();
    v["cluster"]["roles"] = serde_json::json!([{"name": "a"}, {"name": "a"}]);
    assert!(parse(v).unwrap_err().reason.contains("duplicate"));
    let mut v = minimal();
    v["cluster"]["databases"] = serde_json::json!([{"name": "", "owner": "a"}]);
    assert_eq!(parse(v).unwrap_err().field, "cluster.databases[0].name");
    let mut v = minimal();
    v["delta_operations"] = serde_json::json!([{"action": "rename_db", "name": "a"}]);
    assert_eq!(parse(v).unwrap_err().field, "delta_operations[0].new_name");
    let mut v = minimal();
    v["delta_operations"] = serde_json::json!([{"action": "explode", "name": "a"}]);
    assert_eq!(parse(v).unwrap_err().field, "delta_operations[0].action");
}

#[test]
fn rejects_null_and_unsafe_settings() {
    let mut v = minimal();
    v["cluster"]["settings"] =
        serde_json::json!([{"name": "work_mem", "value": null, "vartype": "integer"}]);
    let e = parse(v).unwrap_err();
    assert_eq!(e.field, "cluster.settings[0].value");
    assert!(e.reason.contains("null"));
    let mut v = minimal();
    v["cluster"]["settings"] = serde_json::json!([
        {"name": "fsync", "value": "off\nshared_preload_libraries = 'x'", "vartype": "bool"}
    ]);
    assert_eq!(parse(v).unwrap_err().field, "cluster.settings[0].value");
    let mut v = minimal();
    v["cluster"]["settings"] = serde_json::json!([{"name": "search_path", "value": "a'\nfsync = off", "vartype": "string"}]);
    assert_eq!(parse(v).unwrap_err().field, "cluster.settings[0].value");
    let mut v = minimal();
    v["cluster"]["settings"] =
        serde_json::json!([{"name": "a = 1\nb", "value": "1", "vartype": "integer"}]);
    assert_eq!(parse(v).unwrap_err().field, "cluster.settings[0].name");
}

#[test]
fn unknown_plain_settings_are_found_dotted_ones_allowed() {
    let mut v = minimal();
    v["cluster"]["settings"] = serde_json::json!([
        {"name": "work_mem", "value": "4MB", "vartype": "integer"},
        {"name": "pg_stat_statements.track", "value": "all", "vartype": "enum"},
        {"name": "no_such_thing", "value": "1", "vartype": "integer"}
    ]);
    let spec = parse(v).unwrap();
    let known: HashSet<String> = ["work_mem".to_string()].into();
    let unknown: Vec<_> = spec
        .unknown_settings(&known)
        .map(|(i, s)| (i, s.name.as_str()))
        .collect();
    assert_eq!(unknown, vec![(2, "no_such_thing")]);
}

#[test]
fn storage_fields_are_checked() {
    let mut v = minimal();
    v["tenant_id"] = serde_json::json!("abc");
    assert_eq!(parse(v).unwrap_err().field, "tenant_id");
    let mut v = minimal();
    v["safekeeper_connstrings"] = serde_json::json!(["a:1", "b:2", "a:1"]);
    let e = parse(v).unwrap_err();
    assert_eq!(e.field, "safekeeper_connstrings[2]");
    assert!(e.reason.contains("a:1"));
}

#[test]
fn storage_is_selected_and_checked() {
    let tenant = "0123456789abcdef0123456789abcdef";
    assert_eq!(parse(minimal()).unwrap().storage(), Storage::Local);
    let mut v = minimal();
    v["pageserver_connstring"] = serde_json::json!("postgresql://ps:6400");
    v["tenant_id"] = serde_json::json!(tenant);
    assert_eq!(parse(v.clone()).unwrap_err().field, "timeline_id");
    v["timeline_id"] = serde_json::json!(tenant);
    assert_eq!(
        parse(v.clone()).unwrap_err().field,
        "safekeeper_connstrings"
    );
    v["mode"] = serde_json::json!("Replica");
    assert_eq!(
        parse(v).unwrap().storage(),
        Storage::Neon {
            pageserver: "postgresql://ps:6400",
            tenant,
            timeline: tenant
        }
    );
    let mut v = minimal();
    v["primary_connstring"] = serde_json::json!("host=p");
    assert_eq!(parse(v.clone()).unwrap_err().field, "primary_connstring");
    v["mode"] = serde_json::json!("Replica");
    assert_eq!(parse(v).unwrap().storage(), Storage::Primary("host=p"));
}

#[test]
fn storage_falls_back_to_neon_settings() {
    let tenant = "0123456789abcdef0123456789abcdef";
    let mut v = minimal();
    v["cluster"]["settings"] = serde_json::json!([
        {"name": "neon.pageserver_connstring", "value": "postgresql://ps:6400", "vartype": "string"},
        {"name": "neon.tenant_id", "value": tenant, "vartype": "string"},
        {"name": "neon.timeline_id", "value": tenant, "vartype": "string"},
        {"name": "neon.safekeepers", "value": "sk1:5454, sk2:5454", "vartype": "string"}
    ]);
    let spec = parse(v).unwrap();
    assert_eq!(
        spec.pageserver_connstring.as_ref().map(|s| s.expose()),
        Some("postgresql://ps:6400")
    );
    assert_eq!(spec.safekeeper_connstrings, vec!["sk1:5454", "sk2:5454"]);
    assert!(matches!(spec.storage(), Storage::Neon { .. }));
    // A duplicate from the settings is caught too.
    let mut v = minimal();
    v["cluster"]["settings"] = serde_json::json!([
        {"name": "neon.safekeepers", "value": "sk1:5454,sk1:5454", "vartype": "string"}
    ]);
    assert!(parse(v)
        .unwrap_err()
        .reason
        .contains("duplicate entry in safekeeper_connstrings: sk1:5454"));
}

#[test]
fn passwords_are_not_in_debug_output_or_errors() {
    let mut v = minimal();
    v["cluster"]["roles"] = serde_json::json!([{"name": "a", "encrypted_password": "md5a4f3a4c1f6a0b5f7d2b8a9c3e6d1f0b2"}]);
    v["storage_auth_token"] = serde_json::json!("tok3n-s3cr3t");
    let mut spec = parse(v).unwrap().into_raw();
    spec.primary_connstring = Some(Secret::new("host=p password=pw-s3cr3t"));
    spec.pageserver_connstring = Some(Secret::new("postgresql://u:ps-s3cr3t@ps:6400"));
    let debug = format!("{spec:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("a4f3a4"),
        "{debug}"
    );
    let mut v = minimal();
    v["cluster"]["roles"] = serde_json::json!([{"name": "a", "encrypted_password": "s3cr3t\u{1}"}]);
    assert!(!parse(v).unwrap_err().to_string().contains("s3cr3t"));
}

#[test]
fn a_password_that_is_not_a_hash_is_refused_naming_the_role() {
    let scram = "SCRAM-SHA-256$4096:Sty3rkkIps2UaSlvNfFWYw==$TomRfoeih4M/TQelOSQvaodG+xkC38q2WySVqRJPP9M=:7p2fHp6z9dx3cpnnqI5XV4ELkSmTP1VUDurdkqwBGmg=";
    let hash = "a4f3a4c1f6a0b5f7d2b8a9c3e6d1f0b2";
    for (password, ok) in [
        (scram.to_owned(), true),
        (hash.to_owned(), true),
        (format!("md5{hash}"), true),
        (hash.to_ascii_uppercase(), true),
        ("hunter2-plaintext".to_owned(), false),
        (format!("md5{}", &hash[1..]), false),
        (format!("{hash}0"), false),
        ("SCRAM-SHA-256$nonsense".to_owned(), false),
        ("md5".to_owned(), false),
    ] {
        let mut v = minimal();
        v["cluster"]["roles"] =
            serde_json::json!([{"name": "bob's role", "encrypted_password": password}]);
        match parse(v) {
            Ok(_) => assert!(ok, "{password} accepted"),
            Err(e) => {
                assert!(!ok, "{password} refused: {e}");
                assert_eq!(e.field, "cluster.roles[0].encrypted_password");
                assert!(e.reason.contains("\"bob's role\""), "{e}");
                if password.len() > 8 {
                    assert!(!e.to_string().contains(&password), "{e}");
                }
            }
        }
    }
}

#[test]
fn the_only_way_to_a_valid_spec_is_through_validation() {
    // A hostile spec that serde reads as the wire type...
    let mut v = minimal();
    v["cluster"]["roles"] = serde_json::json!([{"name": "ok"}, {"name": "evil\u{0}"}]);
    let raw: ComputeSpec = serde_json::from_value(v.clone()).unwrap();
    // ...is refused at every door to a ValidSpec, naming the field.
    let expected = "invalid compute spec: cluster.roles[1].name: must not contain a NUL character";
    let e = ValidSpec::try_from(raw).unwrap_err();
    assert_eq!(e.field, "cluster.roles[1].name");
    assert_eq!(e.to_string(), expected);
    assert_eq!(ValidSpec::from_json(&v.to_string()).unwrap_err(), e);
    let config = serde_json::json!({"spec": v}).to_string();
    let e = ComputeConfig::from_json(&config).unwrap_err();
    assert_eq!(e.field, "spec.cluster.roles[1].name");
    // A valid spec taken back to be changed is checked again: a setting
    // that would write a second line into postgresql.conf is refused.
    let mut raw = parse(minimal()).unwrap().into_raw();
    raw.cluster.settings = Some(vec![GenericOption {
        name: "fsync".into(),
        value: Some("off\nshared_preload_libraries = 'evil'".into()),
        vartype: VarType::Bool,
    }]);
    let e = ValidSpec::try_from(raw).unwrap_err();
    assert_eq!(e.field, "cluster.settings[0].value");
    assert!(e.reason.contains("control character"), "{e}");
}

#[test]
fn a_checked_spec_is_shared_not_copied() {
    let spec = parse(minimal()).unwrap();
    let clone = spec.clone();
    assert!(std::ptr::eq::<ComputeSpec>(&*spec, &*clone));
    assert_eq!(spec, clone);
}

/// Each case of `src/spec/ui/` tries what `ValidSpec` forbids; its
/// `.stderr` is the compiler's refusal, checked in. Regenerate after a
/// deliberate change with `TRYBUILD=overwrite cargo test --lib spec::tests::what`.
#[test]
fn what_a_valid_spec_forbids_does_not_compile() {
    trybuild::TestCases::new().compile_fail("src/spec/ui/*.rs");
}
