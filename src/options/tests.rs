//! The option grammar: rendering, escaping and refusals.

use super::sql::role_option_sql;
use super::*;

fn opt(name: &str, value: Option<&str>, vartype: VarType) -> GenericOption {
    GenericOption {
        name: name.into(),
        value: value.map(Into::into),
        vartype,
    }
}

#[test]
fn role_options_render() {
    assert_eq!(
        role_option_sql(&opt("LOGIN", None, VarType::Bool)).unwrap(),
        "LOGIN"
    );
    assert_eq!(
        role_option_sql(&opt("createdb", Some("false"), VarType::Bool)).unwrap(),
        "NOCREATEDB"
    );
    assert_eq!(
        role_option_sql(&opt("connection limit", Some("5"), VarType::Integer)).unwrap(),
        "CONNECTION LIMIT 5"
    );
    assert_eq!(
        role_option_sql(&opt(
            "valid_until",
            Some("2030-01-01'; DROP"),
            VarType::String
        ))
        .unwrap(),
        "VALID UNTIL '2030-01-01''; DROP'"
    );
}

#[test]
fn database_options_render_escaped() {
    assert_eq!(
        database_option_sql(&opt("template", Some("tpl\"x"), VarType::String)).unwrap(),
        "TEMPLATE \"tpl\"\"x\""
    );
    assert_eq!(
        database_option_sql(&opt("LC_COLLATE", Some("C"), VarType::String)).unwrap(),
        "LC_COLLATE 'C'"
    );
    assert_eq!(
        database_option_sql(&opt("is_template", Some("on"), VarType::Bool)).unwrap(),
        "IS_TEMPLATE true"
    );
}

#[test]
fn unknown_or_malformed_options_are_refused() {
    let e = role_option_sql(&opt("LOGIN; DROP ROLE x", None, VarType::Bool)).unwrap_err();
    assert!(e.contains("unknown role option"), "{e}");
    assert!(database_option_sql(&opt("connection_limit", Some("1; x"), VarType::Integer)).is_err());
    assert!(database_option_sql(&opt("strategy", Some("fast"), VarType::Enum)).is_err());
    assert!(database_option_sql(&opt("encoding", None, VarType::String)).is_err());
    assert!(role_option_sql(&opt("login", Some("maybe"), VarType::Bool)).is_err());
}
