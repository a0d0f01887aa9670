//! The checks of `remote_extensions`: every name in it becomes a path (of
//! the store's URL, of a file in the installation), so each must be one
//! plain file name, and a control file's name must say it is one.

use super::wire::ComputeSpec;
use super::SpecError;

/// Longest name accepted (a file name's limit on Linux).
const MAX_NAME_BYTES: usize = 255;

/// Checks `remote_extensions`, when the spec has it.
pub(super) fn validate(spec: &ComputeSpec) -> Result<(), SpecError> {
    let Some(remote) = &spec.remote_extensions else {
        return Ok(());
    };
    let base = "remote_extensions";
    for (list, names) in [
        ("public_extensions", &remote.public_extensions),
        ("custom_extensions", &remote.custom_extensions),
    ] {
        for (i, name) in names.iter().flatten().enumerate() {
            check_name(&format!("{base}.{list}[{i}]"), name)?;
        }
    }
    for (library, extension) in &remote.library_index {
        let field = format!("{base}.library_index.{library}");
        check_name(&field, library)?;
        check_name(&field, extension)?;
    }
    for (extension, data) in &remote.extension_data {
        let field = format!("{base}.extension_data.{extension}");
        check_name(&field, extension)?;
        for (file, content) in &data.control_data {
            let field = format!("{field}.control_data.{file}");
            check_name(&field, file)?;
            if !file.ends_with(".control") || file.len() == ".control".len() {
                return Err(SpecError::new(
                    field,
                    "a control file's name is <extension>.control",
                ));
            }
            if content.contains('\0') {
                return Err(SpecError::new(field, "must not contain a NUL character"));
            }
        }
    }
    Ok(())
}

/// An extension, library or file name: letters, digits and `_ - . +`, not
/// starting with a dot (so neither `..` nor a hidden file), at most 255 bytes.
pub fn check_name(field: &str, name: &str) -> Result<(), SpecError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    if fine {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!(
                "{name:?} is not a plain name (letters, digits, _ - . +, not starting with a dot)"
            ),
        ))
    }
}
