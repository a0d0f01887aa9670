//! The checks a spec passes before it is a [`super::ValidSpec`]: what serde
//! cannot check (names, duplicates, passwords, options and settings, the
//! storage fields). Every error names the JSON path of its field.

use super::wire::{ComputeSpec, DeltaAction};
use super::SpecError;
use crate::options::{check_database_option, check_role_option, check_setting, SettingFault};
use std::collections::HashSet;

/// Postgres truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Checks what serde cannot: names, duplicates, values, storage fields.
pub(super) fn validate(spec: &ComputeSpec) -> Result<(), SpecError> {
    if spec.format_version != 1.0 {
        return Err(SpecError::new(
            "format_version",
            format!("unsupported version {}, expected 1.0", spec.format_version),
        ));
    }
    if spec.reconfigure_concurrency == 0 {
        return Err(SpecError::new(
            "reconfigure_concurrency",
            "must be at least 1",
        ));
    }
    let mut roles = HashSet::new();
    for (i, role) in spec.cluster.roles.iter().enumerate() {
        let field = format!("cluster.roles[{i}]");
        check_identifier(&format!("{field}.name"), &role.name)?;
        check_role_name(&format!("{field}.name"), &role.name)?;
        if !roles.insert(role.name.as_str()) {
            return Err(SpecError::new(
                format!("{field}.name"),
                format!("duplicate role {:?}", role.name),
            ));
        }
        if let Some(pw) = &role.encrypted_password {
            check_password(
                &format!("{field}.encrypted_password"),
                &role.name,
                pw.expose(),
            )?;
        }
        for (j, opt) in role.options.iter().flatten().enumerate() {
            check_role_option(opt)
                .map_err(|r| SpecError::new(format!("{field}.options[{j}]"), r))?;
        }
    }
    let mut dbs = HashSet::new();
    for (i, db) in spec.cluster.databases.iter().enumerate() {
        let field = format!("cluster.databases[{i}]");
        check_identifier(&format!("{field}.name"), &db.name)?;
        check_identifier(&format!("{field}.owner"), &db.owner)?;
        if !dbs.insert(db.name.as_str()) {
            return Err(SpecError::new(
                format!("{field}.name"),
                format!("duplicate database {:?}", db.name),
            ));
        }
        for (j, opt) in db.options.iter().flatten().enumerate() {
            check_database_option(opt)
                .map_err(|r| SpecError::new(format!("{field}.options[{j}]"), r))?;
        }
    }
    for (i, op) in spec.delta_operations.iter().flatten().enumerate() {
        let field = format!("delta_operations[{i}]");
        check_identifier(&format!("{field}.name"), &op.name)?;
        match (op.action, &op.new_name) {
            (DeltaAction::RenameRole | DeltaAction::RenameDb, None) => {
                return Err(SpecError::new(
                    format!("{field}.new_name"),
                    format!("{} needs a new_name", op.action),
                ))
            }
            (DeltaAction::RenameRole, Some(n)) => {
                check_identifier(&format!("{field}.new_name"), n)?;
                check_role_name(&format!("{field}.new_name"), n)?
            }
            (DeltaAction::RenameDb, Some(n)) => check_identifier(&format!("{field}.new_name"), n)?,
            _ => {}
        }
    }
    for (i, s) in spec.cluster.settings.iter().flatten().enumerate() {
        check_setting(s).map_err(|fault| {
            let field = format!("cluster.settings[{i}]");
            match fault {
                SettingFault::Name(why) => SpecError::new(format!("{field}.name"), why),
                SettingFault::Value(why) => SpecError::new(format!("{field}.value"), why),
            }
        })?;
    }
    super::remote_ext::validate(spec)?;
    super::storage::validate_storage(spec)
}

/// Names postgres reserves for roles (`CREATE ROLE` refuses them: they mean
/// something else where a role is expected). Compared as postgres does, to
/// the letter: a quoted `"Public"` is an ordinary name.
const RESERVED_ROLE_NAMES: [&str; 5] = [
    "public",
    "none",
    "current_user",
    "session_user",
    "current_role",
];

fn check_role_name(field: &str, name: &str) -> Result<(), SpecError> {
    if RESERVED_ROLE_NAMES.contains(&name) {
        return Err(SpecError::new(
            field,
            format!("{name:?} is reserved by postgres and cannot be a role's name"),
        ));
    }
    Ok(())
}

fn check_identifier(field: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::new(field, "must not be empty"));
    }
    if name.contains('\0') {
        return Err(SpecError::new(field, "must not contain a NUL character"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(SpecError::new(
            field,
            format!(
                "{} bytes long; postgres identifiers are at most {MAX_IDENTIFIER_BYTES} bytes",
                name.len()
            ),
        ));
    }
    Ok(())
}

/// A role's `encrypted_password` must be a hash postgres stores as is: a
/// SCRAM-SHA-256 verifier, or an md5 hash (`md5` + 32 hex digits, or the 32
/// hex digits alone). Anything else would be hashed by postgres as a
/// plaintext password, silently giving the role another password than meant.
fn check_password(field: &str, role: &str, pw: &str) -> Result<(), SpecError> {
    // Never echo the value: it is a secret.
    if pw.is_empty() {
        return Err(SpecError::new(field, "empty; use null for no password"));
    }
    if pw.contains('\0') || pw.chars().any(char::is_control) {
        return Err(SpecError::new(field, "contains control characters"));
    }
    let hex32 = |h: &str| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let scram = pw
        .strip_prefix("SCRAM-SHA-256$")
        .is_some_and(|rest| rest.contains(':') && rest.matches('$').count() == 1);
    if scram || hex32(pw) || pw.strip_prefix("md5").is_some_and(hex32) {
        return Ok(());
    }
    Err(SpecError::new(
        field,
        format!(
            "the password of role {role:?} is neither a SCRAM-SHA-256 verifier nor an md5 hash (md5 followed by 32 hex digits, or 32 hex digits); plaintext passwords are refused"
        ),
    ))
}
