//! Keeping the template cache ours alone, so that a template is a clean
//! slate: nobody but us (root) can change the cache directory, a finished
//! template or its spares.
//!
//! - The cache directory belongs to us and nobody else may write it (a cache
//!   made by an older compute_ctl, which gave it to the run-as user, is taken
//!   back at the next start). The run-as user may only pass through it, to
//!   the template being built.
//! - A template is built by the run-as user (initdb, and the postgres that
//!   finishes it), then *sealed* before it is stamped: the tree becomes ours,
//!   its directories 0700, nothing writable by others, walked through
//!   directory handles that never follow a symlink. Anything but
//!   directories, regular files and symlinks in it fails the build.
//! - A template is used only if it is sealed still: its top directory and
//!   every entry ours (or root's, for a compute_ctl that is not root) and
//!   writable by nobody else, checked by the walk that already compares the
//!   tree with its stamp (so the check costs no extra pass). One that is not
//!   is rebuilt. Read access is no change: an image lets its group read its
//!   template (for an arbitrary uid in group 0).
//! - Work directories (`.tmp-…` for a build, `.stale-…` for a removal) carry
//!   their maker's pid and start time. One whose maker is gone (a
//!   compute_ctl killed during a build) is removed at the next start, after
//!   the postmaster still running on it, if any, is stopped.

use super::STAMP;
use crate::process::RunAs;
use crate::safe_fs::Dir;
use anyhow::{bail, Context, Result};
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, Mode, SFlag};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Creates the cache directory if missing and makes it ours alone: owned by
/// us, writable by nobody else, searchable by the run-as user (initdb runs
/// as it inside). Returns its handle.
///
/// Only as root: a compute_ctl that is not root writes as itself, in the
/// cache its deployment gave it (an image's, shared with its group).
pub(super) fn secure_dir(cache_dir: &Path, owner: Option<&RunAs>) -> Result<Dir> {
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating template cache {}", cache_dir.display()))?;
    let dir = Dir::open(cache_dir)?;
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(dir);
    }
    let st = dir.stat()?;
    let (uid, gid) = ours();
    if st.st_uid != uid {
        tracing::warn!(
            cache = %cache_dir.display(),
            uid = st.st_uid,
            "the template cache belonged to another user: taking it back"
        );
        std::os::unix::fs::fchown(dir.fd(), Some(uid), Some(gid))
            .with_context(|| format!("chown {}", cache_dir.display()))?;
    }
    let mode = st.st_mode & 0o7777;
    let search = if owner.is_some() { 0o711 } else { 0o700 };
    let want = (mode & 0o755) | search;
    if want != mode {
        fchmod(dir.fd(), Mode::from_bits_truncate(want))
            .with_context(|| format!("chmod {:o} {}", want, cache_dir.display()))?;
    }
    Ok(dir)
}

/// Our effective uid and gid.
fn ours() -> (u32, u32) {
    (
        nix::unistd::Uid::effective().as_raw(),
        nix::unistd::Gid::effective().as_raw(),
    )
}

/// Makes the freshly built tree `dir` ours and closed: every directory
/// ours with mode 0700 (the top one first, which shuts the path to it),
/// every file and symlink ours, files not writable by others. Fails on
/// anything else in the tree (a fifo, a device, a socket).
pub(super) fn seal(dir: &Path) -> Result<()> {
    seal_dir(&Dir::open(dir)?)
}

fn seal_dir(d: &Dir) -> Result<()> {
    let (uid, gid) = ours();
    let path = d.path().to_path_buf();
    std::os::unix::fs::fchown(d.fd(), Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    fchmod(d.fd(), Mode::from_bits_truncate(0o700))
        .with_context(|| format!("chmod {}", path.display()))?;
    for name in d.names()? {
        let Some(name) = name.to_str() else {
            bail!("{} has an entry whose name is not UTF-8", path.display());
        };
        let at = path.join(name);
        let st = fstatat(d.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat of {}", at.display()))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFDIR {
            let sub = d
                .open_dir(name)?
                .with_context(|| format!("{} vanished", at.display()))?;
            seal_dir(&sub)?;
        } else if kind == SFlag::S_IFREG {
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
            let fd = openat(d.fd(), name, flags, Mode::empty())
                .with_context(|| format!("opening {}", at.display()))?;
            let st = fstat(&fd).with_context(|| format!("stat of {}", at.display()))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                bail!("{} changed while the template was sealed", at.display());
            }
            std::os::unix::fs::fchown(&fd, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", at.display()))?;
            fchmod(&fd, Mode::from_bits_truncate(st.st_mode & 0o755))
                .with_context(|| format!("chmod {}", at.display()))?;
        } else if kind == SFlag::S_IFLNK {
            nix::unistd::fchownat(
                d.fd(),
                name,
                Some(uid.into()),
                Some(gid.into()),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("chown {}", at.display()))?;
        } else {
            bail!(
                "{} is neither a file, a directory nor a symlink: not making a template of it",
                at.display()
            );
        }
    }
    Ok(())
}

/// Whether a sealed template's entry may belong to `uid`: to us, or to root
/// (whom a compute_ctl that is not root trusts: an image's template is
/// root's, readable by the group of an arbitrary uid).
fn trusted_owner(uid: u32) -> bool {
    uid == ours().0 || uid == 0
}

/// Why the template at `dir` is not sealed, if it is not: its top directory
/// must be a directory (not a symlink), ours (see [`trusted_owner`]), and
/// writable by nobody else. (Others may be let read it: an image gives its
/// template to group 0.)
pub(super) fn unsealed(dir: &Path) -> Option<String> {
    let d = match Dir::open(dir) {
        Ok(d) => d,
        Err(e) => return Some(format!("{e:#}")),
    };
    match d.stat() {
        Ok(st) if trusted_owner(st.st_uid) && st.st_mode & 0o022 == 0 => None,
        Ok(st) => Some(format!(
            "{} is owned by uid {} with mode {:o}, not ours alone",
            dir.display(),
            st.st_uid,
            st.st_mode & 0o7777
        )),
        Err(e) => Some(format!("{e:#}")),
    }
}

/// Checks one entry of a sealed template, met by the walk that compares
/// the tree with its stamp: ours, not writable by others, and a directory,
/// a regular file or a symlink.
pub(super) fn check_sealed(path: &Path, meta: &std::fs::Metadata) -> Result<(), Unsealed> {
    let ty = meta.file_type();
    let p = path.display();
    if !(ty.is_dir() || ty.is_file() || ty.is_symlink()) {
        return Err(Unsealed(format!(
            "{p} is neither a file, a directory nor a symlink"
        )));
    }
    if !trusted_owner(meta.uid()) {
        return Err(Unsealed(format!(
            "{p} belongs to uid {}, not to us",
            meta.uid()
        )));
    }
    if !ty.is_symlink() && meta.mode() & 0o022 != 0 {
        return Err(Unsealed(format!(
            "{p} is writable by others (mode {:o})",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// An entry of a template that is not as its seal left it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Unsealed(String);

/// Why a template cannot be used.
#[derive(Debug)]
pub(super) enum Mismatch {
    /// Someone else could have changed it: it is not sealed.
    Changed(String),
    /// It is not the template asked for, or not all of it (a crash).
    Stale(String),
}

/// This process as the maker of a work directory: `<pid>-<start time>`
/// (a pid alone may be reused, as PID 1 is in every container).
pub(super) fn maker() -> String {
    let pid = std::process::id() as i32;
    format!("{pid}-{}", start_time(pid).unwrap_or(0))
}

/// When process `pid` started (clock ticks since boot: `/proc/<pid>/stat`).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the fields
    // after its closing parenthesis start at field 3; the start time is field 22.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the maker named at the start of `rest` (`<pid>-<start>-…`) runs.
fn maker_alive(rest: &str) -> bool {
    let mut parts = rest.split('-');
    let pid = parts.next().and_then(|p| p.parse::<i32>().ok());
    let start = parts.next().and_then(|s| s.parse::<u64>().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => start_time(pid) == Some(start),
        _ => false,
    }
}

/// Removes the work directories of makers that are gone from the cache:
/// a template build's (`.tmp-…`, after stopping the postmaster still running
/// on it) and an interrupted removal's (`.stale-…`). Failures are logged:
/// they cost disk space, not the start.
pub(super) fn remove_leftovers(cache: &Dir) {
    let Ok(names) = cache.names() else {
        return;
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix(".tmp-")
            .or_else(|| name.strip_prefix(".stale-"))
        else {
            continue;
        };
        if maker_alive(rest) {
            continue;
        }
        let path = cache.path().join(name);
        tracing::warn!(
            leftover = %path.display(),
            "removing what a template build or removal interrupted left in the cache"
        );
        if let Err(e) = super::stop_orphan(&path, super::ORPHAN_STOP_LIMIT) {
            tracing::warn!("{e:#}");
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!("removing {}: {e}", path.display());
        }
    }
}

/// Whether `dir` is a finished template for `key_stamp`: see [`template_check`].
pub(super) fn template_ok(dir: &Path, key_stamp: &str) -> bool {
    template_check(dir, key_stamp).is_ok()
}

/// Whether `dir` is a finished template for `key_stamp`: sealed (ours
/// alone), its stamp names the key, and the manifest in the
/// stamp matches the tree as it is now. The error says what differs.
pub(super) fn template_check(dir: &Path, key_stamp: &str) -> Result<(), Mismatch> {
    use Mismatch::{Changed, Stale};
    if let Some(why) = unsealed(dir) {
        return Err(Changed(why));
    }
    let text = crate::safe_fs::Dir::open(dir)
        .and_then(|d| d.read_string(STAMP))
        .map_err(|e| Stale(format!("{e:#}")))?
        .ok_or_else(|| Stale("it has no stamp".into()))?;
    let recorded = text
        .strip_prefix(key_stamp)
        .ok_or_else(|| Stale("its stamp names another key".into()))?;
    let now = manifest(dir).map_err(|e| {
        let why = format!("{e:#}");
        if e.chain().any(|c| c.is::<Unsealed>()) {
            Changed(why)
        } else {
            Stale(why)
        }
    })?;
    if now != recorded {
        return Err(Stale(format!(
            "its files differ from its stamp ({} now, {} when made)",
            now.trim().replace('\n', " "),
            recorded.trim().replace('\n', " ")
        )));
    }
    Ok(())
}

/// The tree's regular files: how many, and their total size (the stamp
/// excluded), as the line the stamp records. Fails on an entry that is not
/// sealed (see [`check_sealed`]): the same walk checks both.
pub(super) fn manifest(dir: &Path) -> Result<String> {
    fn walk(dir: &Path, files: &mut u64, bytes: &mut u64) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // Not following a symlink (fstatat in the directory).
            let meta = entry.metadata()?;
            check_sealed(&entry.path(), &meta)?;
            if meta.is_dir() {
                walk(&entry.path(), files, bytes)?;
            } else if meta.is_file() && entry.file_name() != STAMP {
                *files += 1;
                *bytes += meta.len();
            }
        }
        Ok(())
    }
    let (mut files, mut bytes) = (0, 0);
    walk(dir, &mut files, &mut bytes)
        .with_context(|| format!("reading template {}", dir.display()))?;
    Ok(format!("files={files}\nbytes={bytes}\n"))
}

#[cfg(test)]
mod tests;
