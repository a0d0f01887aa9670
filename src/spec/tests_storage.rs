//! The storage fields: `pageserver_connection_info` resolved as the
//! reference does, the legacy fields and settings as its fallbacks, and no
//! spec that names Neon storage taken for a local one.

use super::{parse_json_noting_unknown, ComputeSpec, SpecError, Storage, ValidSpec};
use serde_json::{json, Value};

const TENANT: &str = "0123456789abcdef0123456789abcdef";

fn neon(info: Value) -> Value {
    json!({
        "format_version": 1.0,
        "cluster": {},
        "tenant_id": TENANT,
        "timeline_id": TENANT,
        "safekeeper_connstrings": ["sk-1:5454"],
        "pageserver_connection_info": info,
    })
}

fn parse(v: Value) -> Result<ValidSpec, SpecError> {
    ValidSpec::from_json(&v.to_string())
}

fn pageservers(spec: &ValidSpec) -> (&str, Option<u32>) {
    (
        spec.pageserver_connstring
            .as_ref()
            .map_or("", |s| s.expose()),
        spec.shard_stripe_size,
    )
}

#[test]
fn an_unsharded_tenant_is_the_one_key_0000() {
    let spec = parse(neon(json!({
        "shard_count": 0,
        "stripe_size": null,
        "shards": {"0000": {"pageservers": [
            {"id": 1, "libpq_url": "postgresql://ps-1:6400", "grpc_url": "grpc://ps-1:6401"},
            {"id": 2, "libpq_url": "postgresql://ps-2:6400"}
        ]}},
        "prefer_protocol": "libpq"
    })))
    .unwrap();
    assert_eq!(pageservers(&spec), ("postgresql://ps-1:6400", None));
    assert_eq!(
        spec.storage(),
        Storage::Neon {
            pageserver: "postgresql://ps-1:6400",
            tenant: TENANT,
            timeline: TENANT
        }
    );
}

#[test]
fn shards_are_listed_in_shard_order_with_their_stripe_size() {
    let spec = parse(neon(json!({
        "shard_count": 2,
        "stripe_size": 2048,
        "shards": {
            "0102": {"pageservers": [{"libpq_url": "postgresql://ps-b:6400"}]},
            "0002": {"pageservers": [{"libpq_url": "postgresql://ps-a:6400"}]}
        }
    })))
    .unwrap();
    assert_eq!(
        pageservers(&spec),
        ("postgresql://ps-a:6400,postgresql://ps-b:6400", Some(2048))
    );
}

#[test]
fn the_connection_info_wins_over_the_legacy_fields() {
    let mut v = neon(
        json!({"shard_count": 0, "shards": {"0000": {"pageservers": [
            {"libpq_url": "postgresql://new:6400"}
        ]}}}),
    );
    v["pageserver_connstring"] = json!("postgresql://old:6400");
    v["shard_stripe_size"] = json!(8);
    assert_eq!(
        pageservers(&parse(v).unwrap()),
        ("postgresql://new:6400", None)
    );
}

#[test]
fn a_missing_shard_or_pageserver_is_named() {
    let e = parse(neon(json!({
        "shard_count": 2,
        "stripe_size": 2048,
        "shards": {"0002": {"pageservers": [{"libpq_url": "postgresql://ps-a:6400"}]}}
    })))
    .unwrap_err();
    assert_eq!(e.field, "pageserver_connection_info.shards");
    assert!(e.reason.contains("shard 0102 missing"), "{e}");

    let e = parse(neon(
        json!({"shard_count": 0, "shards": {"0000": {"pageservers": []}}}),
    ))
    .unwrap_err();
    assert_eq!(
        e.field,
        "pageserver_connection_info.shards.0000.pageservers"
    );

    let e = parse(neon(json!({"shard_count": 3, "shards": {}}))).unwrap_err();
    assert_eq!(e.field, "pageserver_connection_info.stripe_size");

    let e = parse(neon(
        json!({"shard_count": 0, "shards": {"00zz": {"pageservers": []}}}),
    ))
    .unwrap_err();
    assert!(e.reason.contains("\"00zz\""), "{e}");
}

#[test]
fn grpc_alone_is_refused_as_not_supported() {
    let e = parse(neon(json!({
        "shard_count": 0,
        "shards": {"0000": {"pageservers": [{"grpc_url": "grpc://ps:6401"}]}},
        "prefer_protocol": "grpc"
    })))
    .unwrap_err();
    assert_eq!(
        e.field,
        "pageserver_connection_info.shards.0000.pageservers[0].libpq_url"
    );
    assert!(e.reason.contains("grpc protocol is not supported"), "{e}");
    // Preferring grpc with libpq URLs there: libpq is used.
    let spec = parse(neon(json!({
        "shard_count": 0,
        "shards": {"0000": {"pageservers": [
            {"libpq_url": "postgresql://ps:6400", "grpc_url": "grpc://ps:6401"}
        ]}},
        "prefer_protocol": "grpc"
    })))
    .unwrap();
    assert_eq!(pageservers(&spec).0, "postgresql://ps:6400");
}

#[test]
fn neon_storage_without_a_pageserver_is_refused_not_started_locally() {
    for (field, value) in [
        ("tenant_id", json!(TENANT)),
        ("timeline_id", json!(TENANT)),
        ("safekeeper_connstrings", json!(["sk-1:5454"])),
    ] {
        let mut v = json!({"format_version": 1.0, "cluster": {}});
        v[field] = value;
        let e = parse(v).unwrap_err();
        assert_eq!(e.field, "pageserver_connection_info", "{field}");
        assert!(
            e.reason.contains(field) && e.reason.contains("no pageserver"),
            "{e}"
        );
    }
    // Named through the settings only, as the reference's fallbacks read them.
    let v = json!({"format_version": 1.0, "cluster": {"settings": [
        {"name": "neon.tenant_id", "value": TENANT, "vartype": "string"}
    ]}});
    assert_eq!(parse(v).unwrap_err().field, "pageserver_connection_info");
}

#[test]
fn legacy_shards_need_their_stripe_size() {
    let mut v = neon(Value::Null);
    v["pageserver_connstring"] = json!("postgresql://a:1,postgresql://b:1");
    let e = parse(v.clone()).unwrap_err();
    assert_eq!(e.field, "shard_stripe_size");
    assert!(e.reason.contains("2 shards"), "{e}");
    v["shard_stripe_size"] = json!(32768);
    assert_eq!(parse(v).unwrap().shard_stripe_size, Some(32768));
}

#[test]
fn the_settings_fall_back_for_the_stripe_size_and_the_generation() {
    let v = json!({"format_version": 1.0, "cluster": {"settings": [
        {"name": "neon.pageserver_connstring", "value": "postgresql://a:1,postgresql://b:1", "vartype": "string"},
        {"name": "neon.stripe_size", "value": "2048", "vartype": "integer"},
        {"name": "neon.tenant_id", "value": TENANT, "vartype": "string"},
        {"name": "neon.timeline_id", "value": TENANT, "vartype": "string"},
        {"name": "neon.safekeepers", "value": "g#7:sk-1:5454,sk-2:5454", "vartype": "string"}
    ]}});
    let spec = parse(v).unwrap();
    assert_eq!(spec.shard_stripe_size, Some(2048));
    assert_eq!(spec.safekeepers_generation, Some(7));
    assert_eq!(spec.safekeeper_connstrings, vec!["sk-1:5454", "sk-2:5454"]);
}

#[test]
fn unknown_fields_are_named_with_their_path_indices_folded() {
    let text = json!({
        "format_version": 1.0,
        "lfc_settings": {"size": 1},
        "cluster": {
            "roles": [
                {"name": "a", "restrict": true},
                {"name": "b", "restrict": false}
            ],
            "databases": [{"name": "d", "owner": "a", "invalid": false}]
        },
        "pageserver_connection_info": {"shard_count": 0, "shards": {}, "future_field": 1}
    })
    .to_string();
    let (parsed, mut unknown) = parse_json_noting_unknown::<ComputeSpec>(&text);
    parsed.unwrap();
    unknown.sort();
    unknown.dedup();
    assert_eq!(
        unknown,
        vec![
            "cluster.databases[].invalid",
            "cluster.roles[].restrict",
            "lfc_settings",
            "pageserver_connection_info.future_field",
        ]
    );
    // A hostile key is escaped: it cannot start a line of its own in the log.
    let (_, unknown) =
        parse_json_noting_unknown::<ComputeSpec>(r#"{"format_version":1.0,"cluster":{},"a\nb":1}"#);
    assert_eq!(unknown, vec!["a\\nb"]);
}
