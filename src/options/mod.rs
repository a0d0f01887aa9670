//! The option grammar: the typed name/value pairs of the spec
//! ([`GenericOption`]) and what may be written with them, in one place below
//! both `spec` (which checks a spec with it) and `catalog` (which renders
//! SQL with it), so that neither needs the other.
//!
//! Two dialects: role and database options become SQL clauses (`sql.rs`:
//! names map to fixed keywords, values are escaped by their kind); settings
//! become `postgresql.conf` lines (`setting.rs`: a checked name, a quoted or
//! a bare-safe value). An option's check is its renderer run dry, and a
//! setting's renderer trusts only what its check let by, so what validation
//! accepts is exactly what can be written.

use serde::{Deserialize, Serialize};

mod setting;
mod sql;
#[cfg(test)]
mod tests;

pub use setting::{check_setting, quote_conf_value, setting_line, SettingFault};
pub use sql::{check_database_option, check_role_option, database_option_sql};
pub(crate) use sql::{role_attribute, RoleAttr};

/// A named value with a type, used for settings and options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenericOption {
    /// Option or setting name.
    pub name: String,
    /// Its value; null is only meaningful for flag-like options.
    pub value: Option<String>,
    /// How the value is written.
    pub vartype: VarType,
}

/// The type of a [`GenericOption`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum VarType {
    /// Quoted in postgresql.conf.
    String,
    /// `on`/`off`/`true`/`false`...
    Bool,
    /// A number, possibly with a unit.
    Integer,
    /// A floating point number.
    Real,
    /// One of a fixed set of words.
    Enum,
}
