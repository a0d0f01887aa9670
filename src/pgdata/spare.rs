//! Spare copies of the template, made ahead of time, so that a local cold
//! start takes its PGDATA with one `rename` instead of copying ~1000 files
//! while the start waits.
//!
//! The copy is the same work as before; it only moves: right after a start
//! has its PGDATA, the next spare is made in the background, while postgres
//! starts and the catalog runs. A spare lives beside its template, in
//! `.<template>.spares/`, a directory owned by us (root, or the invoking
//! user) and closed to everyone else (0700), so the run-as user can neither
//! plant one nor reach into one (a spare's files are its own):
//!
//! - `.tmp-<boot>-<pid>-<n>`: being made (a `copy_tree` of the template,
//!   owned by the run-as user, mode 0700 like PGDATA);
//! - `ready-<boot>-<uid>-<n>`: complete. The rename from `.tmp-` is the
//!   completion marker: a spare is never claimed half made.
//!
//! Spares are not synced (that is what makes them cheap): one made in an
//! earlier boot may have lost writes in a crash, so only spares of this
//! boot (`/proc/sys/kernel/random/boot_id`) are claimed; the others are
//! removed, as are `.tmp-` directories whose maker is gone. A claim is a
//! `rename` of `ready-…` onto PGDATA: of two computes sharing the cache,
//! only one rename of a given spare succeeds (the other gets ENOENT and
//! tries the next one, or copies). A spare is a byte-for-byte copy of the
//! template that nothing ever started, so the PGDATA it gives is the one a
//! fresh copy would give.

use super::copy::Copied;
use crate::process::{self, RunAs};
use anyhow::{bail, Context, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where the spares of `template` live.
pub fn spares_dir(template: &Path) -> PathBuf {
    // Hidden, as the cache's other work directories: the templates are
    // what is not hidden.
    let mut name = std::ffi::OsString::from(".");
    name.push(template.file_name().unwrap_or_default());
    name.push(".spares");
    template.with_file_name(name)
}

/// This boot's id: spares of another boot are never claimed.
fn boot_id() -> Result<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .context("reading /proc/sys/kernel/random/boot_id")?;
    let id = id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!("unexpected boot id {id:?}");
    }
    Ok(id.to_string())
}

/// The uid PGDATA belongs to: the run-as user's, or ours.
fn uid_of(owner: Option<&RunAs>) -> u32 {
    owner.map_or_else(|| nix::unistd::Uid::effective().as_raw(), |u| u.uid)
}

/// Whether `pgdata` would be on the same file system as the template cache
/// (`template`'s directory): else a claim could not be a rename.
pub fn same_device(template: &Path, pgdata: &Path) -> bool {
    let cache = template.parent().unwrap_or(Path::new("."));
    let absolute = std::path::absolute(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    // PGDATA's nearest existing ancestor (its parents are made later).
    let parent = absolute
        .ancestors()
        .skip(1)
        .find_map(|a| std::fs::metadata(a).ok());
    match (std::fs::metadata(cache), parent) {
        (Ok(a), Some(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

/// Opens the spares directory, checking it is ours: a real directory (not a
/// symlink), owned by us, closed to everyone else. None when missing.
fn open_ours(dir: &Path) -> Result<Option<OwnedFd>> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::{fstat, Mode};
    let fd = match open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.display())),
    };
    let st = fstat(fd.as_fd()).with_context(|| format!("stat of {}", dir.display()))?;
    if st.st_uid != nix::unistd::Uid::effective().as_raw() || st.st_mode & 0o077 != 0 {
        bail!(
            "{} is not ours alone (uid {}, mode {:o}): not using spares from it",
            dir.display(),
            st.st_uid,
            st.st_mode & 0o7777
        );
    }
    Ok(Some(fd))
}

/// How a claim went.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// PGDATA is now a spare.
    Claimed,
    /// No ready spare of this boot and user.
    NoSpare,
    /// PGDATA is on another file system than the cache: no claim can work.
    CrossDevice,
}

/// Renames a ready spare of this boot and user onto `pgdata` (which must not
/// exist; its parent must). Tries each spare until one rename succeeds: one
/// another compute claimed first is gone (ENOENT).
pub fn claim(template: &Path, pgdata: &Path, owner: Option<&RunAs>) -> Result<Claim> {
    let dir = spares_dir(template);
    let Some(dirfd) = open_ours(&dir)? else {
        return Ok(Claim::NoSpare);
    };
    let prefix = format!("ready-{}-{}-", boot_id()?, uid_of(owner));
    let absolute = std::path::absolute(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        bail!("PGDATA {} has no parent", pgdata.display());
    };
    let parent =
        std::fs::File::open(parent).with_context(|| format!("opening {}", parent.display()))?;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let spare = entry.file_name();
        let ours = spare.to_str().is_some_and(|s| s.starts_with(&prefix));
        if !ours || !entry.file_type()?.is_dir() {
            continue;
        }
        match nix::fcntl::renameat(dirfd.as_fd(), spare.as_os_str(), parent.as_fd(), name) {
            Ok(()) => return Ok(Claim::Claimed),
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(nix::errno::Errno::EXDEV) => return Ok(Claim::CrossDevice),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("renaming spare {spare:?} onto PGDATA {}", pgdata.display())
                })
            }
        }
    }
    Ok(Claim::NoSpare)
}

/// Makes a spare of `template` for `owner`, unless one is ready or being
/// made; first removes spares of other boots and `.tmp-` directories whose
/// maker is gone. Returns the spare made, if any. Blocking.
pub fn make(template: &Path, owner: Option<&RunAs>) -> Result<Option<PathBuf>> {
    let dir = spares_dir(template);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    // Checks it is ours, whoever created it.
    if open_ours(&dir)?.is_none() {
        return Ok(None);
    }
    let boot = boot_id()?;
    let ready = format!("ready-{boot}-{}-", uid_of(owner));
    let tmp_of_this_boot = format!(".tmp-{boot}-");
    let mut busy = false;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let stale = if name.starts_with(&ready) {
            busy = true;
            false
        } else if let Some(rest) = name.strip_prefix(&tmp_of_this_boot) {
            let maker = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = maker.is_some_and(process::alive);
            busy |= alive;
            !alive
        } else {
            // Another boot's spare, ready or not.
            (name.starts_with("ready-") && !name.starts_with(&format!("ready-{boot}-")))
                || name.starts_with(".tmp-")
        };
        if stale {
            tracing::info!(spare = %entry.path().display(), "removing a stale spare PGDATA");
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    if busy {
        return Ok(None);
    }
    let n = super::unique();
    let tmp = dir.join(format!(".tmp-{boot}-{}-{n}", std::process::id()));
    let done = dir.join(format!("{ready}{n}"));
    let made = fill(template, &tmp, owner).and_then(|_| {
        std::fs::rename(&tmp, &done).with_context(|| format!("renaming to {}", done.display()))
    });
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(Some(done))
}

/// A copy of the template in the new directory `tmp`, as PGDATA would be.
fn fill(template: &Path, tmp: &Path, owner: Option<&RunAs>) -> Result<Copied> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    if let Some(u) = owner {
        u.chown(tmp)?;
    }
    super::copy_as_pgdata(template, tmp, owner)
}

/// The next spare, to be made once the start no longer needs the machine
/// (see [`NextSpare::make_in_background`]).
#[derive(Debug)]
#[must_use = "a spare is made only when asked to"]
pub struct NextSpare {
    template: PathBuf,
    owner: Option<RunAs>,
}

impl NextSpare {
    /// The spare of `template` for `owner`.
    pub(super) fn new(template: PathBuf, owner: Option<RunAs>) -> NextSpare {
        NextSpare { template, owner }
    }

    /// Makes the spare on a thread of its own, not waited for by the start;
    /// at exit, [`finish_before_exit`] gives it a little time, then it is
    /// abandoned (its `.tmp-` directory is removed by a later maker). Its
    /// thread is returned, for tests to join.
    pub fn make_in_background(self) -> std::thread::JoinHandle<()> {
        let making = Making::begin();
        let (template, owner) = (self.template, self.owner);
        std::thread::spawn(move || {
            make_now(&template, owner.as_ref());
            drop(making);
        })
    }
}

/// How many spares this process is making.
static MAKING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One spare being made, counted in [`MAKING`] until dropped (also when its
/// thread panics).
struct Making;

impl Making {
    fn begin() -> Making {
        MAKING.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Making
    }
}

impl Drop for Making {
    fn drop(&mut self) {
        MAKING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// At exit: waits up to `limit` for the spares still being made, so that a
/// compute stopped soon after its start still leaves one for the next
/// start (a spare is made once the start is done: see `driver::start`).
/// Then they are abandoned.
pub fn finish_before_exit(limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let pending = || MAKING.load(std::sync::atomic::Ordering::Acquire) > 0;
    if !pending() {
        return;
    }
    tracing::info!("finishing the spare PGDATA being made before exit");
    while pending() {
        if std::time::Instant::now() >= deadline {
            tracing::info!("abandoning the spare PGDATA being made");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Makes a spare on this thread, at the lowest priority, logging the outcome.
fn make_now(template: &Path, owner: Option<&RunAs>) {
    lower_priority();
    let started = std::time::Instant::now();
    match make(template, owner) {
        Ok(Some(spare)) => tracing::info!(
            spare = %spare.display(),
            ms = started.elapsed().as_millis() as u64,
            "made a spare PGDATA for the next start"
        ),
        Ok(None) => tracing::debug!("a spare PGDATA is ready or being made"),
        Err(e) => tracing::warn!("making a spare PGDATA: {e:#}"),
    }
}

/// Makes this thread (and the copy threads it starts, which inherit it) the
/// last to get a CPU: the spare is made while the compute runs, and must
/// not slow it down. Best effort.
fn lower_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority only reads its integer arguments; on Linux, a
    // thread id with PRIO_PROCESS names that one thread.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) } != 0;
    if failed {
        tracing::debug!(
            "lowering the spare maker's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests;
