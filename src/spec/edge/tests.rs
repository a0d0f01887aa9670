use super::*;

fn parse(json: &str) -> Result<PgbouncerSettings, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn the_order_is_kept_and_a_repeated_key_takes_the_last_value() {
    let s =
        parse(r#"{"pool_mode": "session", "default_pool_size": "42", "POOL_MODE": "transaction"}"#)
            .unwrap();
    assert_eq!(
        s.0,
        vec![
            ("pool_mode".to_string(), "transaction".to_string()),
            ("default_pool_size".to_string(), "42".to_string()),
        ]
    );
}

#[test]
fn a_key_that_is_no_name_a_control_character_or_a_number_is_refused() {
    let err = parse(r#"{"admin users": "x"}"#).unwrap_err().to_string();
    assert!(err.contains("not a pgbouncer setting name"), "{err}");
    let err = parse(r#"{"pool_mode": "session\nadmin_users = me"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("control character"), "{err}");
    assert!(parse(r#"{"default_pool_size": 42}"#).is_err());
}

#[test]
fn a_spec_names_the_field_of_a_bad_value() {
    let err = crate::spec::ValidSpec::from_json(
        r#"{"format_version": 1.0, "cluster": {}, "pgbouncer_settings": {"a b": "1"}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("pgbouncer_settings"), "{err}");
}

#[test]
fn logs_export_host_takes_ipv6_and_refuses_a_host_without_a_port() {
    let ok: LogsExportHost = serde_json::from_str(r#""[fd00::1]:10514""#).unwrap();
    assert_eq!(
        ok.0,
        Endpoint {
            host: "fd00::1".into(),
            port: 10514
        }
    );
    let err = serde_json::from_str::<LogsExportHost>(r#""collector""#).unwrap_err();
    assert!(err.to_string().contains("host:port"), "{err}");
}
