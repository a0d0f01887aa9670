//! An extension's archive (a zstd-compressed tar) unpacked into a private
//! staging directory, then moved into the installation: the entries of its
//! `share/extension/` into postgres' extension directory, those of its
//! `lib/` into the library directory, as the reference does.
//!
//! The path rules are the basebackup's: an entry's path stays below the
//! staging directory (no `..`, no absolute path), a symlink only points
//! down from where it is and nothing is written through one, and only
//! directories, files and such links are accepted. The whole archive is
//! unpacked (and bounded in size) before anything moves, so a refused
//! archive changes nothing in the installation. Moving never replaces a
//! file the installation has (the local one wins), and what is moved
//! belongs to the owner of the directory it goes to.

use crate::safe_fs::Dir;
use crate::safe_fs::{link_descends, within};
use anyhow::{bail, Context, Result};
use nix::fcntl::{renameat2, RenameFlags};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What an unpacking found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Entries of the archive.
    pub entries: u64,
    /// Bytes of its files, uncompressed.
    pub bytes: u64,
}

/// Unpacks the zstd-compressed tar `compressed` into `staging` (a fresh
/// directory only we can write), refusing an entry that breaks the path
/// rules and an archive whose files add up to more than `max_bytes`.
pub fn unpack(compressed: &[u8], staging: &Path, max_bytes: u64) -> Result<Unpacked> {
    let decoder = zstd::stream::read::Decoder::new(compressed).context("starting zstd")?;
    let mut archive = tar::Archive::new(decoder);
    let mut stats = Unpacked::default();
    // Symlinks this archive made: nothing is written below one.
    let mut links: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let kind = entry.header().entry_type();
        let name = entry.path().map_err(archive_error)?.into_owned();
        let relative = within(Path::new(""), &name).with_context(|| {
            format!(
                "archive entry {} leaves the archive's directory",
                name.display()
            )
        })?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        if relative.ancestors().skip(1).any(|a| links.contains(a)) || links.contains(&relative) {
            bail!(
                "archive entry {} goes through a symlink of the archive",
                name.display()
            );
        }
        let dest = staging.join(&relative);
        stats.entries += 1;
        match kind {
            tar::EntryType::Directory => match std::fs::create_dir(&dest) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dest.is_dir() => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", dest.display())),
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                stats.bytes += entry.size();
                if stats.bytes > max_bytes {
                    bail!("the archive unpacks to more than {max_bytes} bytes");
                }
                make_parents(staging, &relative)?;
                write_file(&mut entry, &dest)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(archive_error)?
                    .unwrap_or_default()
                    .into_owned();
                if !link_descends(&target) {
                    bail!(
                        "archive entry {} is a symlink to {}, which may point outside it",
                        name.display(),
                        target.display()
                    );
                }
                make_parents(staging, &relative)?;
                std::os::unix::fs::symlink(&target, &dest)
                    .with_context(|| format!("creating the symlink {}", dest.display()))?;
                links.insert(relative);
            }
            other => bail!(
                "unexpected {other:?} entry {} in the archive (only directories, files and symlinks)",
                name.display()
            ),
        }
    }
    if stats.entries == 0 {
        bail!("empty archive");
    }
    Ok(stats)
}

/// The parent directories of `relative` below `staging`, made as needed.
fn make_parents(staging: &Path, relative: &Path) -> Result<()> {
    if let Some(parent) = relative.parent() {
        let dir = staging.join(parent);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// A file of the archive, created new (never through a name already there).
fn write_file(entry: &mut impl Read, dest: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    io::copy(entry, &mut file).map_err(archive_error)?;
    file.flush()
        .with_context(|| format!("writing {}", dest.display()))
}

/// Names the cause of a failure to read the archive.
fn archive_error(e: io::Error) -> anyhow::Error {
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof => "truncated archive",
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::Other => {
            "corrupt archive (zstd or tar)"
        }
        _ => "unpacking the archive",
    };
    anyhow::Error::new(e).context(what)
}

/// What [`install`] moved, and what it kept of the installation's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// Names moved into the installation.
    pub moved: Vec<String>,
    /// Names the installation already had: left as they were.
    pub kept: Vec<String>,
}

/// Moves the entries of `staging/<from>` into `into` for each pair (a
/// missing `from` is skipped: a SQL-only extension has no `lib/`).
pub fn install(staging: &Path, moves: &[(&str, &Path)]) -> Result<Installed> {
    let mut out = Installed::default();
    let staged = Dir::open(staging)?;
    for (from, into) in moves {
        let Some(source) = open_below(&staged, from)? else {
            continue;
        };
        let target = Dir::open(into).with_context(|| format!("opening {}", into.display()))?;
        for name in source.names()? {
            let name = name
                .into_string()
                .map_err(|n| anyhow::anyhow!("the archive's name {n:?} is not UTF-8"))?;
            if place(&source, &name, &target)? {
                out.moved.push(name);
            } else {
                tracing::warn!(
                    file = %into.join(&name).display(),
                    "exists both in the installation and in the archive; the installation's is kept"
                );
                out.kept.push(name);
            }
        }
    }
    Ok(out)
}

/// Moves `name` from `source` into `target`, given to the owner of
/// `target` first; false when `target` has it already (left as it is).
pub fn place(source: &Dir, name: &str, target: &Dir) -> Result<bool> {
    let (uid, gid) = target.owner()?;
    let path = source.path().join(name);
    if nix::unistd::geteuid().is_root() {
        give(&path, uid, gid)?;
    }
    match renameat2(
        source.fd(),
        name,
        target.fd(),
        name,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EEXIST) => Ok(false),
        Err(nix::errno::Errno::EXDEV) => bail!(
            "{} and {} are on different file systems: the download directory must be on the installation's",
            source.path().display(),
            target.path().display()
        ),
        Err(e) => Err(e).with_context(|| {
            format!(
                "moving {} into {}",
                path.display(),
                target.path().display()
            )
        }),
    }
}

/// Gives `path` and everything below it (never following a symlink) to
/// `uid:gid`, readable by all: postgres' user loads what is moved.
fn give(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(path)? {
            give(&entry?.path(), uid, gid)?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// The directory `relative` (`a/b`) below `dir`, each part opened without
/// following a symlink; None when a part is missing.
fn open_below(dir: &Dir, relative: &str) -> Result<Option<Dir>> {
    let mut parts = relative.split('/');
    let Some(first) = parts.next() else {
        return Ok(None);
    };
    let Some(mut at) = dir.open_dir(first)? else {
        return Ok(None);
    };
    for part in parts {
        match at.open_dir(part)? {
            Some(next) => at = next,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}
