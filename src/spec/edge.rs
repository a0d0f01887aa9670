//! The spec's fields for the edge: `pgbouncer_settings`, a JSON object of
//! strings whose order is kept (the reference's), each key a setting name
//! and no value holding a control character: they are written into an ini
//! file, where a newline would add a key of its own.

use anyhow::{bail, Context, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Where records go: `host:port` (an IPv6 host in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port`; a clear error for anything else.
    pub fn parse(var: &str, text: &str) -> Result<Endpoint> {
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => match rest.split_once("]:") {
                Some((h, p)) => (h.to_string(), p),
                None => bail!("{var}={text:?}: expected [IPv6]:port"),
            },
            None => match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), p),
                _ => bail!("{var}={text:?}: expected host:port ([IPv6]:port for an IPv6 address)"),
            },
        };
        let valid_host = !host.is_empty()
            && (host.parse::<std::net::IpAddr>().is_ok()
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !valid_host {
            bail!("{var}={text:?}: {host:?} is not a host name or address");
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("{var}={text:?}: {port:?} is not a port"))?;
        Ok(Endpoint { host, port })
    }
}

/// `logs_export_host`: where postgres' log lines are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsExportHost(pub Endpoint);

impl<'de> Deserialize<'de> for LogsExportHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Endpoint::parse("logs_export_host", &text)
            .map(LogsExportHost)
            .map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// `audit_log_level`: what pgaudit logs (the reference's exact spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, strum::Display)]
pub enum AuditLevel {
    /// No audit (the default).
    #[default]
    Disabled,
    /// Deprecated: as `Base`.
    Log,
    /// DDL and role statements, in postgres' log.
    Base,
    /// Deprecated: as `Extended`.
    Hipaa,
    /// Every statement but `MISC`, without parameters, in audit files.
    Extended,
    /// Every statement with its parameters, in audit files.
    Full,
}

impl AuditLevel {
    /// Whether pgaudit is on.
    pub fn on(self) -> bool {
        self != AuditLevel::Disabled
    }

    /// Whether the audit goes to its own files (pgauditlogtofile).
    pub fn to_files(self) -> bool {
        matches!(
            self,
            AuditLevel::Hipaa | AuditLevel::Extended | AuditLevel::Full
        )
    }
}

/// `pgbouncer_settings`: setting name to value, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgbouncerSettings(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for PgbouncerSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = PgbouncerSettings;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of pgbouncer settings, each value a string")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(A::Error::custom(format!(
                            "{:?} is not a pgbouncer setting name (letters, digits, _)",
                            key.chars().take(64).collect::<String>()
                        )));
                    }
                    if value.chars().any(char::is_control) {
                        return Err(A::Error::custom(format!(
                            "the value of {key} holds a control character"
                        )));
                    }
                    match out.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                        Some(slot) => slot.1 = value,
                        None => out.push((key, value)),
                    }
                }
                Ok(PgbouncerSettings(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

#[cfg(test)]
mod tests;
