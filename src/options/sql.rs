//! Role and database options: which are accepted, and how they are written
//! as SQL. Option names are never pasted into SQL: each known option maps to
//! a fixed keyword, and values are escaped by their kind.

use super::GenericOption;
use postgres_protocol::escape::{escape_identifier, escape_literal};

/// How an option's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A role attribute: `LOGIN` / `NOLOGIN`. Null or true -> the attribute,
    /// false -> its negation.
    Flag(&'static str, &'static str),
    /// `KEYWORD <integer>`.
    Integer(&'static str),
    /// `KEYWORD <boolean>`.
    Bool(&'static str),
    /// `KEYWORD 'literal'`.
    Literal(&'static str),
    /// `KEYWORD "identifier"`.
    Identifier(&'static str),
    /// `KEYWORD word`, the word from a fixed list.
    Word(&'static str, &'static [&'static str]),
}

const ROLE_OPTIONS: &[(&str, Kind)] = &[
    ("superuser", Kind::Flag("SUPERUSER", "NOSUPERUSER")),
    ("createdb", Kind::Flag("CREATEDB", "NOCREATEDB")),
    ("createrole", Kind::Flag("CREATEROLE", "NOCREATEROLE")),
    ("inherit", Kind::Flag("INHERIT", "NOINHERIT")),
    ("login", Kind::Flag("LOGIN", "NOLOGIN")),
    ("replication", Kind::Flag("REPLICATION", "NOREPLICATION")),
    ("bypassrls", Kind::Flag("BYPASSRLS", "NOBYPASSRLS")),
    ("connection_limit", Kind::Integer("CONNECTION LIMIT")),
    ("valid_until", Kind::Literal("VALID UNTIL")),
];

const DATABASE_OPTIONS: &[(&str, Kind)] = &[
    ("template", Kind::Identifier("TEMPLATE")),
    ("encoding", Kind::Literal("ENCODING")),
    ("locale", Kind::Literal("LOCALE")),
    ("lc_collate", Kind::Literal("LC_COLLATE")),
    ("lc_ctype", Kind::Literal("LC_CTYPE")),
    ("icu_locale", Kind::Literal("ICU_LOCALE")),
    (
        "locale_provider",
        Kind::Word("LOCALE_PROVIDER", &["libc", "icu"]),
    ),
    ("collation_version", Kind::Literal("COLLATION_VERSION")),
    ("tablespace", Kind::Identifier("TABLESPACE")),
    ("allow_connections", Kind::Bool("ALLOW_CONNECTIONS")),
    ("connection_limit", Kind::Integer("CONNECTION LIMIT")),
    ("is_template", Kind::Bool("IS_TEMPLATE")),
    (
        "strategy",
        Kind::Word("STRATEGY", &["wal_log", "file_copy"]),
    ),
];

/// Option names are matched case-insensitively, with `_` or a space between words.
fn lookup(table: &[(&str, Kind)], name: &str) -> Option<Kind> {
    let key = name.trim().to_ascii_lowercase().replace(' ', "_");
    table.iter().find(|(n, _)| *n == key).map(|(_, k)| *k)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" | "t" | "y" => Some(true),
        "false" | "off" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn render(table: &[(&str, Kind)], what: &str, opt: &GenericOption) -> Result<String, String> {
    let kind = lookup(table, &opt.name).ok_or_else(|| {
        let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown {what} option {:?}; known: {}",
            opt.name,
            known.join(", ")
        )
    })?;
    let need_value = || {
        opt.value
            .as_deref()
            .ok_or_else(|| format!("{what} option {} needs a value", opt.name))
    };
    Ok(match kind {
        Kind::Flag(yes, no) => match opt.value.as_deref() {
            None => yes.to_string(),
            Some(v) => match parse_bool(v) {
                Some(true) => yes.to_string(),
                Some(false) => no.to_string(),
                None => {
                    return Err(format!(
                        "{what} option {} takes a boolean, not {v:?}",
                        opt.name
                    ))
                }
            },
        },
        Kind::Integer(kw) => {
            let v = need_value()?;
            let n: i32 = v
                .trim()
                .parse()
                .map_err(|_| format!("{what} option {} takes an integer, not {v:?}", opt.name))?;
            format!("{kw} {n}")
        }
        Kind::Bool(kw) => {
            let v = need_value()?;
            let b = parse_bool(v)
                .ok_or_else(|| format!("{what} option {} takes a boolean, not {v:?}", opt.name))?;
            format!("{kw} {b}")
        }
        Kind::Literal(kw) => format!("{kw} {}", escape_literal(need_value()?)),
        Kind::Identifier(kw) => format!("{kw} {}", escape_identifier(need_value()?)),
        Kind::Word(kw, words) => {
            let v = need_value()?.trim().to_ascii_lowercase();
            if !words.contains(&v.as_str()) {
                return Err(format!(
                    "{what} option {} takes one of {}, not {v:?}",
                    opt.name,
                    words.join(", ")
                ));
            }
            format!("{kw} {v}")
        }
    })
}

/// Checks a role option of the spec; the error says why it is refused.
pub fn check_role_option(opt: &GenericOption) -> Result<(), String> {
    role_option_sql(opt).map(drop)
}

/// Checks a database option of the spec; the error says why it is refused.
pub fn check_database_option(opt: &GenericOption) -> Result<(), String> {
    database_option_sql(opt).map(drop)
}

/// The SQL for a role option, for `CREATE ROLE ... WITH <here>` and `ALTER ROLE`.
pub fn role_option_sql(opt: &GenericOption) -> Result<String, String> {
    render(ROLE_OPTIONS, "role", opt)
}

/// The SQL for a database option, for `CREATE DATABASE ... WITH <here>`.
pub fn database_option_sql(opt: &GenericOption) -> Result<String, String> {
    render(DATABASE_OPTIONS, "database", opt)
}

/// A role attribute as set by a spec option, in a form that can be compared
/// with the catalog (`pg_authid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoleAttr {
    /// A boolean attribute: its keyword (`LOGIN`, `CREATEDB`, ...), the
    /// negated keyword (`NOLOGIN`, ...), and the value.
    Flag(&'static str, &'static str, bool),
    /// `CONNECTION LIMIT n`.
    ConnectionLimit(i32),
    /// `VALID UNTIL 'text'`, the text as given.
    ValidUntil(String),
}

/// The attribute a role option sets; refused options give the same error as
/// [`role_option_sql`].
pub(crate) fn role_attribute(opt: &GenericOption) -> Result<RoleAttr, String> {
    let sql = role_option_sql(opt)?;
    Ok(match lookup(ROLE_OPTIONS, &opt.name) {
        Some(Kind::Flag(yes, no)) => RoleAttr::Flag(yes, no, sql == yes),
        Some(Kind::Integer(_)) => RoleAttr::ConnectionLimit(
            opt.value
                .as_deref()
                .unwrap_or_default()
                .trim()
                .parse()
                .map_err(|_| format!("role option {} takes an integer", opt.name))?,
        ),
        Some(Kind::Literal(_)) => RoleAttr::ValidUntil(opt.value.clone().unwrap_or_default()),
        _ => return Err(format!("unknown role option {:?}", opt.name)),
    })
}
