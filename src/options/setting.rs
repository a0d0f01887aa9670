//! Settings (GUCs) as `postgresql.conf` lines: which names and values are
//! accepted, and how an accepted one is written. A bare (unquoted) value
//! can only be written safely because [`check_setting`] allowed it.

use super::{GenericOption, VarType};

/// The part of a setting that is refused, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingFault {
    /// The name is not a setting name.
    Name(String),
    /// The value is null, or cannot be written for its vartype.
    Value(String),
}

/// Checks a setting of the spec: a plain or dotted name; a value without
/// control characters, bare-safe (a number, a boolean, an enum word) unless
/// its vartype is `string`.
pub fn check_setting(s: &GenericOption) -> Result<(), SettingFault> {
    let name_ok = s
        .name
        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.name.ends_with('.')
        && !s.name.contains("..");
    if !name_ok {
        return Err(SettingFault::Name(format!(
            "{:?} is not a valid setting name",
            s.name
        )));
    }
    let Some(value) = &s.value else {
        return Err(SettingFault::Value(format!(
            "setting {} has a null value",
            s.name
        )));
    };
    if value.chars().any(char::is_control) {
        return Err(SettingFault::Value(format!(
            "the value of {} contains a control character",
            s.name
        )));
    }
    if s.vartype != VarType::String {
        // Bare values go into postgresql.conf unquoted: allow only what a
        // number, a boolean or an enum word can contain.
        let bare_ok = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
        if !bare_ok {
            return Err(SettingFault::Value(format!(
                "{value:?} is not a valid {} value for {}; use vartype \"string\" for quoted text",
                s.vartype, s.name
            )));
        }
    }
    Ok(())
}

/// Quotes a value for postgresql.conf: single quotes, `'` and `\` doubled.
pub fn quote_conf_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// The `postgresql.conf` line of a setting that [`check_setting`] accepted
/// (it guarantees a value, a safe name, and bare-safe values for non-strings).
pub fn setting_line(s: &GenericOption) -> String {
    let value = s.value.as_deref().unwrap_or_default();
    match s.vartype {
        VarType::String => format!("{} = {}", s.name, quote_conf_value(value)),
        _ => format!("{} = {}", s.name, value),
    }
}
