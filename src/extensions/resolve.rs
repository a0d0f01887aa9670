//! Which archive of the store a name asks for, as the reference resolves it
//! (`get_ext`), and which libraries `shared_preload_libraries` needs from
//! the store. Pure: the spec in, names out.

use crate::spec::{RemoteExtensions, ValidSpec};

/// Why a name resolves to no archive (the route's 404).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// A library the index does not name.
    #[error("library {0} is not found")]
    Library(String),
    /// An extension neither list allows.
    #[error("extension {0} is not found")]
    Extension(String),
    /// An allowed extension without its data.
    #[error("real_ext_name {0} is not found")]
    Data(String),
}

/// The extension whose archive holds `name` (a library when `is_library`:
/// its name up to `.so`, looked up in the index), if the spec allows it.
pub fn extension_for(
    remote: &RemoteExtensions,
    name: &str,
    is_library: bool,
) -> Result<String, NotFound> {
    let extension = if is_library {
        let library = library_stem(name);
        remote
            .library_index
            .get(library)
            .cloned()
            .ok_or_else(|| NotFound::Library(library.to_string()))?
    } else {
        name.to_string()
    };
    let listed = |list: &Option<Vec<String>>| list.iter().flatten().any(|e| *e == extension);
    if !listed(&remote.public_extensions) && !listed(&remote.custom_extensions) {
        return Err(NotFound::Extension(extension));
    }
    if !remote.extension_data.contains_key(&extension) {
        return Err(NotFound::Data(extension));
    }
    Ok(extension)
}

/// A library's name without its first `.so` and what follows
/// (`postgis-3.so` and `postgis-3.so.1` are `postgis-3`).
pub fn library_stem(name: &str) -> &str {
    match name.find(".so") {
        Some(at) => &name[..at],
        None => name,
    }
}

/// Whether the control files of `extension` are written at start. As the
/// reference: skipped only when both lists are given and neither names it
/// (a null list allows everything here, unlike [`extension_for`]).
pub fn control_files_allowed(remote: &RemoteExtensions, extension: &str) -> bool {
    let lacks = |list: &Option<Vec<String>>| {
        list.as_ref()
            .is_some_and(|l| !l.iter().any(|e| e == extension))
    };
    !(lacks(&remote.public_extensions) && lacks(&remote.custom_extensions))
}

/// The libraries of `shared_preload_libraries` (the setting, and the last
/// such line of `cluster.postgresql_conf`) that the index names: those come
/// from the store; the others are the installation's.
pub fn preload_libraries(spec: &ValidSpec, remote: &RemoteExtensions) -> Vec<String> {
    let mut names = Vec::new();
    for s in spec.settings() {
        if s.name == "shared_preload_libraries" {
            names.extend(split_libraries(s.value.as_deref().unwrap_or_default()));
        }
    }
    if let Some(conf) = &spec.cluster.postgresql_conf {
        let last = conf
            .lines()
            .rev()
            .find(|l| l.starts_with("shared_preload_libraries"));
        if let Some((_, value)) = last.and_then(|l| l.split_once("='")) {
            names.extend(split_libraries(value));
        }
    }
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| !matches!(*n, "neon" | "databricks_auth"))
        .filter(|n| remote.library_index.contains_key(*n))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn split_libraries(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', '\'', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
}
