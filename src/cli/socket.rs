//! The directory of postgres' Unix socket, which is the superuser's door.
//!
//! pg_hba.conf trusts the superuser on the Unix socket and nowhere else (over
//! TCP it needs a password, and has none), so who may become superuser is who
//! may enter this directory: postgres' user, root, and the members of the
//! group a deployment names with `--socket-group`. Hence the rules: the
//! directory belongs to postgres' user, mode 0700 (0750 with the group), is
//! no symlink, and sits in a parent no other user can rename it in.

use crate::process::RunAs;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the socket goes when `--socket-dir` is not given: `/run/compute_ctl`
/// as root, else `/tmp/compute_ctl-<uid>` (a name of our own in a sticky
/// directory, which nobody else can remove or rename).
pub fn default_dir() -> PathBuf {
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        PathBuf::from("/run/compute_ctl")
    } else {
        std::env::temp_dir().join(format!("compute_ctl-{uid}"))
    }
}

/// The gid of `--socket-group`: a group name, or a number.
pub fn group_id(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let found = nix::unistd::Group::from_name(group)
        .with_context(|| format!("looking up group {group:?}"))?;
    match found {
        Some(g) => Ok(g.gid.as_raw()),
        None => bail!("--socket-group {group:?}: no such group"),
    }
}

/// Makes `dir` the private directory of postgres' socket: created if
/// missing; owned by postgres' user (`run_as`, or us), group `group` (else
/// that user's), mode 0750 with a group and 0700 without. An existing
/// directory is taken as it is only when it belongs to that user already, or,
/// as root, when it is an empty one of root's (a volume mounted for it);
/// anything else (a symlink, another user's directory, a sticky shared one
/// such as /tmp) is refused, as is (as root) a parent other users may write.
pub fn ensure(dir: &Path, run_as: Option<&RunAs>, group: Option<u32>) -> Result<()> {
    let what = || format!("the socket directory {}", dir.display());
    if !dir.is_absolute() {
        bail!("--socket-dir {} must be an absolute path", dir.display());
    }
    let parent = dir
        .parent()
        .with_context(|| format!("{} has no parent directory", what()))?;
    let (uid, gid) = match run_as {
        Some(u) => (u.uid, u.gid),
        None => (
            nix::unistd::Uid::effective().as_raw(),
            nix::unistd::Gid::effective().as_raw(),
        ),
    };
    check_parent(parent, uid).with_context(what)?;
    let gid = group.unwrap_or(gid);
    let mode = if group.is_some() { 0o750 } else { 0o700 };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", what())),
    }
    // Everything below on the descriptor: the path is not looked up again.
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .with_context(|| format!("opening {} (it must be a directory, not a symlink)", what()))?;
    let meta = handle.metadata().with_context(what)?;
    let ours = meta.uid() == uid;
    let we_are_root = nix::unistd::Uid::effective().is_root();
    let empty_of_root = meta.uid() == 0
        && we_are_root
        && std::fs::read_dir(dir).with_context(what)?.next().is_none();
    if meta.mode() & 0o1000 != 0 {
        bail!(
            "{} is a shared directory (sticky, mode {:o}): the superuser is trusted on the socket, \
             so it needs a directory of its own (give a path that does not exist: compute_ctl makes it)",
            what(),
            meta.mode() & 0o7777
        );
    }
    if !ours && !empty_of_root {
        bail!(
            "{} belongs to uid {}, not to postgres' user (uid {uid}): the superuser is trusted on \
             the socket, so only that user may own its directory (give a path that does not exist: \
             compute_ctl makes it)",
            what(),
            meta.uid()
        );
    }
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::fchown(&handle, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to uid {uid}, gid {gid}", what()))?;
    }
    handle
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", what()))?;
    Ok(())
}

/// Nobody but root, us or postgres' user may rename entries in the parent
/// (it belongs to one of them and is not writable by others), unless it is
/// sticky (as /tmp: an entry is renamed or removed only by its owner). A
/// parent others may write is refused as root, and only warned about when
/// compute_ctl runs as postgres' user.
fn check_parent(parent: &Path, postgres_uid: u32) -> Result<()> {
    let meta = std::fs::metadata(parent)
        .with_context(|| format!("its parent {} does not exist", parent.display()))?;
    let owner = meta.uid();
    let euid = nix::unistd::Uid::effective().as_raw();
    if owner != 0 && owner != euid && owner != postgres_uid {
        bail!(
            "its parent {} belongs to uid {owner}, who could put another directory in its place",
            parent.display()
        );
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if !sticky && meta.mode() & 0o022 != 0 {
        let why = format!(
            "its parent {} may be written by other users (mode {:o}), who could put another \
             directory in its place",
            parent.display(),
            meta.mode() & 0o7777
        );
        // Not as postgres' own user: in a pod whose /tmp is an emptyDir (mode
        // 0777, not sticky) it is the only place there is, and no other uid
        // shares it. Root, which other uids could fool, never takes such a parent.
        if euid == 0 {
            bail!(why);
        }
        tracing::warn!("the socket directory: {why}");
    }
    Ok(())
}
