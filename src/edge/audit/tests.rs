use super::*;

fn spec(level: &str, preload: Option<&str>) -> ValidSpec {
    let settings = match preload {
        Some(v) => {
            serde_json::json!([{"name": "shared_preload_libraries", "value": v, "vartype": "string"}])
        }
        None => serde_json::json!([]),
    };
    ValidSpec::from_json(
        &serde_json::json!({"format_version": 1.0, "audit_log_level": level,
                            "cluster": {"settings": settings}})
        .to_string(),
    )
    .unwrap()
}

#[test]
fn each_level_writes_the_references_settings() {
    assert_eq!(conf_lines(&spec("Disabled", None)), "");
    let base = conf_lines(&spec("Base", None));
    assert_eq!(
        base,
        "# Managed by compute_ctl base audit settings: start\npgaudit.log='ddl,role'\n\
         pgaudit.log_catalog=off\nshared_preload_libraries='pgaudit'\n\
         # Managed by compute_ctl base audit settings: end\n"
    );
    assert_eq!(conf_lines(&spec("Log", None)), base);
    let full = conf_lines(&spec("Full", Some("pg_stat_statements")));
    assert!(
        full.contains("pgaudit.log_parameter=on\npgaudit.log='all'\n"),
        "{full}"
    );
    assert!(
        full.contains("shared_preload_libraries='pg_stat_statements,pgaudit,pgauditlogtofile'"),
        "{full}"
    );
    let extended = conf_lines(&spec("Extended", None));
    assert!(extended.contains("pgaudit.log_parameter=off\npgaudit.log='all, -misc'\n"));
    assert_eq!(conf_lines(&spec("Hipaa", None)), extended);
}

#[test]
fn a_list_naming_only_pgauditlogtofile_still_gets_pgaudit() {
    // The reference's defect: "pgauditlogtofile" contains "pgaudit".
    let lines = conf_lines(&spec("Extended", Some("pgauditlogtofile")));
    assert!(
        lines.contains("shared_preload_libraries='pgauditlogtofile,pgaudit'"),
        "{lines}"
    );
}

#[test]
fn only_the_exact_spellings_parse() {
    let bad = ValidSpec::from_json(
        r#"{"format_version": 1.0, "audit_log_level": "base", "cluster": {}}"#,
    );
    assert!(bad.unwrap_err().to_string().contains("audit_log_level"));
}
