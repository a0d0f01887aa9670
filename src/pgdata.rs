//! The data directory: wiped and recreated at every start, then filled from
//! a cached initdb template (local storage).
//!
//! `initdb` costs about a second; copying a ready cluster costs a few tens of
//! milliseconds. So the first start of a given postgres version and superuser
//! runs initdb into the template cache (then the caller's finishing step,
//! see [`Finish`]), and every start copies from there. The cache entry is
//! keyed by everything that shapes initdb's output and the finishing step's
//! work, and is stamped last, so a half-made entry is never used. It is durable: the tree
//! and its stamp are synced (`syncfs`) before the directory is renamed into
//! place, and the cache directory is fsynced after; the stamp also records the tree's file
//! count and size, so a template that lost files or writes in a crash does not
//! match and is rebuilt.
//!
//! The cache is ours alone (see `cache`): the template is built by the run-as
//! user, then sealed (ours, closed to everyone else) before it is stamped, and
//! used only while it is still sealed; what a killed build left is cleared by
//! the next start.
//!
//! A start does not even wait for the copy when a spare one is ready: see
//! `spare` (copies made in the background, claimed by a rename).

use crate::pgbin::PgBin;
use crate::process::{self, RunAs};
use anyhow::{bail, Context, Result};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use tokio::process::Command;

mod cache;
pub mod copy;
mod orphan;
pub use orphan::stop_orphan;
use orphan::ORPHAN_STOP_LIMIT;
pub mod spare;
pub use copy::Copied;

/// Written into a finished template; its content must match for the template to be used.
const STAMP: &str = "compute_ctl.template";

/// Removes `pgdata` (if present) and creates it empty, mode 0700, owned by
/// `owner`; returns its handle (see [`create_empty`]).
pub fn wipe(pgdata: &Path, owner: Option<&RunAs>) -> Result<crate::safe_fs::Dir> {
    check_not_root(pgdata)?;
    stop_orphan(pgdata, ORPHAN_STOP_LIMIT)?;
    match std::fs::remove_dir_all(pgdata) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing old PGDATA {}", pgdata.display()))
        }
    }
    create_parent(pgdata)?;
    create_empty(pgdata, owner)
}

fn check_not_root(pgdata: &Path) -> Result<()> {
    let canonical = pgdata
        .canonicalize()
        .unwrap_or_else(|_| pgdata.to_path_buf());
    if canonical.parent().is_none() {
        bail!("refusing to wipe {} as PGDATA", pgdata.display());
    }
    Ok(())
}

/// Missing parents get the usual 0755: postgres must be able to pass through them.
fn create_parent(pgdata: &Path) -> Result<()> {
    if let Some(parent) = pgdata.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the parent of PGDATA {}", parent.display()))?;
    }
    Ok(())
}

/// Creates the missing `pgdata`, empty, mode 0700, owned by `owner`, and
/// returns its handle. PGDATA's parent may belong to postgres (it does in
/// the image, and in the reference's layout), and postgres' user can then
/// rename the new directory and put a symlink at its name at any moment:
/// so it is made and chowned relative to the parent's handle, and whoever
/// fills it as root goes through the handle (`Dir::pinned_path`), never
/// through the name.
fn create_empty(pgdata: &Path, owner: Option<&RunAs>) -> Result<crate::safe_fs::Dir> {
    let absolute = std::path::absolute(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        bail!("PGDATA {} has no parent", pgdata.display());
    };
    let name = name
        .to_str()
        .with_context(|| format!("PGDATA {} is not a UTF-8 path", pgdata.display()))?;
    let dir = crate::safe_fs::Dir::create_in(parent, name, 0o700)
        .with_context(|| format!("creating PGDATA {}", pgdata.display()))?;
    if let Some(u) = owner {
        std::os::unix::fs::fchown(dir.fd(), Some(u.uid), Some(u.gid))
            .with_context(|| format!("chown {} to {}", pgdata.display(), u.name))?;
        check_reachable(pgdata, u)?;
    }
    Ok(dir)
}

/// Takes the old `pgdata` out of the way without waiting for its removal:
/// renamed to a sibling `.<name>.old-<n>`, removed on a thread of its own
/// (with any such sibling an earlier, interrupted removal left). Leaves
/// `pgdata` missing and its parent present.
fn clear_aside(pgdata: &Path) -> Result<()> {
    check_not_root(pgdata)?;
    stop_orphan(pgdata, ORPHAN_STOP_LIMIT)?;
    create_parent(pgdata)?;
    let absolute = std::path::absolute(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        bail!("PGDATA {} has no parent", pgdata.display());
    };
    let prefix = format!(".{}.old-", name.to_string_lossy());
    let aside = parent.join(format!("{prefix}{}", unique()));
    match std::fs::rename(pgdata, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("moving old PGDATA {} aside", pgdata.display()))
        }
    }
    let parent = parent.to_path_buf();
    std::thread::spawn(move || {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix));
            if old {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!("removing old PGDATA {}: {e}", entry.path().display());
                }
            }
        }
    });
    Ok(())
}

/// How PGDATA was made from the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// A spare was renamed into place.
    Claimed,
    /// The template was copied.
    Copied(Copied),
}

/// Replaces `pgdata` with a fresh copy of `template`: a spare claimed by a
/// rename when one is ready (see `spare`), else a copy made now. With
/// `spares` (and PGDATA on the cache's file system), returns the next spare
/// to make: a start makes it once its catalog step is done, so that the
/// copy does not compete with postgres' start and the catalog.
pub fn from_template(
    template: &Path,
    pgdata: &Path,
    owner: Option<&RunAs>,
    spares: bool,
) -> Result<(Prepared, Option<spare::NextSpare>)> {
    if !(spares && spare::same_device(template, pgdata)) {
        let dir = wipe(pgdata, None)?;
        let copied = copy_then_hand_over(template, &dir, pgdata, owner)?;
        return Ok((Prepared::Copied(copied), None));
    }
    clear_aside(pgdata)?;
    let started = std::time::Instant::now();
    let claim = spare::claim(template, pgdata, owner).unwrap_or_else(|e| {
        tracing::warn!("claiming a spare PGDATA: {e:#}; copying the template");
        spare::Claim::NoSpare
    });
    let prepared = if claim == spare::Claim::Claimed {
        if let Some(u) = owner {
            check_reachable(pgdata, u)?;
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "PGDATA claimed from a spare"
        );
        Prepared::Claimed
    } else {
        let dir = create_empty(pgdata, None)?;
        Prepared::Copied(copy_then_hand_over(template, &dir, pgdata, owner)?)
    };
    let next = (claim != spare::Claim::CrossDevice)
        .then(|| spare::NextSpare::new(template.to_path_buf(), owner.cloned()));
    Ok((prepared, next))
}

/// Copies the template into the empty PGDATA `dir`, which stays ours (0700)
/// while it is filled: postgres' user cannot reach into it meanwhile, to
/// swap a directory being filled for a symlink, and the copy goes through
/// its handle, not its name (which sits in a directory postgres may write).
/// Then it is handed to `owner` (through its handle), as everything in it
/// already is.
fn copy_then_hand_over(
    template: &Path,
    dir: &crate::safe_fs::Dir,
    pgdata: &Path,
    owner: Option<&RunAs>,
) -> Result<Copied> {
    let copied = copy_template(template, &dir.pinned_path(), owner)
        .with_context(|| format!("filling PGDATA {}", pgdata.display()))?;
    hand_over(dir, pgdata, owner)?;
    Ok(copied)
}

/// Gives the filled PGDATA `dir`, kept ours while it was filled (its
/// entries already `owner`'s), to `owner`: through its handle.
pub fn hand_over(dir: &crate::safe_fs::Dir, pgdata: &Path, owner: Option<&RunAs>) -> Result<()> {
    if let Some(u) = owner {
        std::os::unix::fs::fchown(dir.fd(), Some(u.uid), Some(u.gid))
            .with_context(|| format!("chown {} to {}", pgdata.display(), u.name))?;
        check_reachable(pgdata, u)?;
    }
    Ok(())
}

/// Fails clearly when `user` cannot reach `path`: postgres would otherwise
/// die with a bare "Permission denied".
fn check_reachable(path: &Path, user: &RunAs) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for dir in absolute.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.mode();
        let searchable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            bail!(
                "user {} cannot reach PGDATA {}: {} (mode {:o}) is not searchable by it",
                user.name,
                path.display(),
                dir.display(),
                mode & 0o7777
            );
        }
    }
    Ok(())
}

/// The default template cache: `/var/cache/compute_ctl` for root,
/// `$XDG_CACHE_HOME/compute_ctl` (or `~/.cache/compute_ctl`) otherwise.
pub fn default_cache_dir() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/cache/compute_ctl");
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("compute_ctl")
}

/// What shapes a template: initdb's output depends on all of these, and
/// what the finishing step then did to it.
struct TemplateKey<'a> {
    version: &'a str,
    superuser: &'a str,
    args: &'a [&'a str],
    finish: &'a str,
}

impl TemplateKey<'_> {
    fn stamp(&self) -> String {
        format!(
            "version={}\nsuperuser={:?}\nargs={:?}\nfinish={:?}\n",
            self.version, self.superuser, self.args, self.finish
        )
    }
    fn dir_name(&self, major: u32) -> String {
        let mut h = DefaultHasher::new();
        self.stamp().hash(&mut h);
        format!("pg{major}-{:016x}", h.finish())
    }
}

const INITDB_ARGS: &[&str] = &[
    "--encoding=UTF8",
    "--locale=C.UTF-8",
    "--auth=trust",
    // The tree is made durable at once with syncfs (see ensure_template):
    // initdb's file-by-file fsync costs seconds.
    "--no-sync",
];

/// How a fresh template is finished after initdb, before it is stamped:
/// `run` gets the new tree (it may start postgres on it, and must leave it
/// stopped cleanly); `key` names what `run` does, and is part of the
/// template's key, so a template finished another way is another template.
pub struct Finish<F> {
    /// What `run` does, in words that change whenever its work changes.
    pub key: String,
    /// The step, given the fresh tree's path.
    pub run: F,
}

/// A template left as initdb made it.
pub fn unfinished() -> Finish<impl FnOnce(PathBuf) -> std::future::Ready<Result<()>>> {
    Finish {
        key: String::new(),
        run: |_| std::future::ready(Ok(())),
    }
}

/// Returns a template cluster for this postgres and superuser,
/// running initdb into the cache (then `finish` on it) when it is missing
/// or stale.
pub async fn ensure_template<F, Fut>(
    pgbin: &PgBin,
    superuser: &str,
    cache_dir: &Path,
    owner: Option<&RunAs>,
    finish: Finish<F>,
) -> Result<PathBuf>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let key = TemplateKey {
        version: &pgbin.version,
        superuser,
        args: INITDB_ARGS,
        finish: &finish.key,
    };
    let dir = cache_dir.join(key.dir_name(pgbin.major));
    let stamp = key.stamp();
    // Walking, removing and syncing trees blocks: off the async threads.
    let ready = {
        let (dir, stamp, cache_dir, owner) = (
            dir.clone(),
            stamp.clone(),
            cache_dir.to_path_buf(),
            owner.cloned(),
        );
        off_thread(move || reuse_or_clear(&dir, &stamp, &cache_dir, owner.as_ref())).await??
    };
    if ready {
        return Ok(dir);
    }
    let tmp = cache_dir.join(format!(".tmp-{}-{}", cache::maker(), unique()));
    let started = std::time::Instant::now();
    let mut result = run_initdb(pgbin, superuser, &tmp, owner).await;
    if result.is_ok() {
        result = (finish.run)(tmp.clone())
            .await
            .context("finishing the initdb template");
    }
    if let Err(e) = result {
        let _ = off_thread(move || std::fs::remove_dir_all(&tmp)).await;
        return Err(e);
    }
    {
        let (dir, cache_dir) = (dir.clone(), cache_dir.to_path_buf());
        off_thread(move || publish_template(&tmp, &dir, &stamp, &cache_dir)).await??;
    }
    tracing::info!(template = %dir.display(), ms = started.elapsed().as_millis() as u64, "created initdb template");
    Ok(dir)
}

/// Runs blocking file work on tokio's blocking threads.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("template cache task")
}

/// True when `dir` is a finished template for `stamp`; otherwise clears a
/// stale one out of the way. Either way, first makes sure the cache
/// directory exists and is ours alone, and removes what builds interrupted
/// left (see `cache`).
fn reuse_or_clear(
    dir: &Path,
    stamp: &str,
    cache_dir: &Path,
    owner: Option<&RunAs>,
) -> Result<bool> {
    let cache = cache::secure_dir(cache_dir, owner)?;
    cache::remove_leftovers(&cache);
    if cache::template_ok(dir, stamp) {
        return Ok(true);
    }
    if dir.exists() {
        // Another compute may have just finished it (it renames a stamped
        // template into place): look again before calling it stale.
        if cache::template_ok(dir, stamp) {
            return Ok(true);
        }
        match cache::template_check(dir, stamp) {
            Err(cache::Mismatch::Changed(why)) => tracing::warn!(
                template = %dir.display(),
                "template was changed: {why}; rebuilding"
            ),
            Err(cache::Mismatch::Stale(why)) => tracing::info!(
                template = %dir.display(),
                "template is stale or incomplete ({why}); rebuilding"
            ),
            Ok(()) => tracing::info!(
                template = %dir.display(),
                "template is stale or incomplete; rebuilding"
            ),
        }
        // Move it aside first: the removal never races with a rename into place.
        let stale = cache_dir.join(format!(".stale-{}-{}", cache::maker(), unique()));
        if std::fs::rename(dir, &stale).is_ok() {
            std::fs::remove_dir_all(&stale)
                .with_context(|| format!("removing stale template {}", stale.display()))?;
        }
        // Its spares are copies of what was there: they go too.
        let spares = spare::spares_dir(dir);
        let stale = cache_dir.join(format!(".stale-{}-{}", cache::maker(), unique()));
        if std::fs::rename(&spares, &stale).is_ok() {
            std::fs::remove_dir_all(&stale)
                .with_context(|| format!("removing stale spares {}", stale.display()))?;
        }
    }
    Ok(false)
}

/// Stamps the fresh tree `tmp` and renames it to `dir`: the tree and its
/// stamp (with the tree's manifest) reach the disk before the rename makes
/// the template visible, and the rename itself by syncing the cache
/// directory. A template another compute made meanwhile wins.
fn publish_template(tmp: &Path, dir: &Path, stamp: &str, cache_dir: &Path) -> Result<()> {
    // Ours alone from here on; then initdb's WAL segment, mostly zeros,
    // gets holes, so that copies skip them.
    let stamped = cache::seal(tmp)
        .context("sealing the template")
        .and_then(|()| copy::punch_zero_blocks(&tmp.join("pg_wal")))
        .and_then(|_| cache::manifest(tmp))
        .and_then(|m| {
            crate::safe_fs::Dir::open(tmp)?.replace(
                STAMP,
                format!("{stamp}{m}").as_bytes(),
                0o600,
                None,
            )?;
            sync_filesystem(tmp)
        })
        .context("stamping the template");
    if let Err(e) = stamped {
        let _ = std::fs::remove_dir_all(tmp);
        return Err(e);
    }
    match std::fs::rename(tmp, dir) {
        Ok(()) => sync_dir(cache_dir).context("syncing the template cache"),
        // Another compute made the same template meanwhile: use theirs.
        Err(_) if cache::template_ok(dir, stamp) => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(tmp);
            Err(e).with_context(|| format!("moving the template into {}", dir.display()))
        }
    }
}

/// Makes everything written under `dir` durable: one `syncfs` of its file
/// system (all of initdb's files at once, as PostgreSQL 16's
/// `--sync-method=syncfs` does), instead of an fsync per file.
fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    nix::unistd::syncfs(&d).with_context(|| format!("syncfs of {}", dir.display()))
}

/// Fsyncs a directory (its entries: a created or renamed file).
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(nanos) << 16) | N.fetch_add(1, Ordering::Relaxed)
}

/// initdb's stderr lines, as they come (its stdout is its progress, unread).
fn log_initdb(line: &str) {
    tracing::info!(target: "initdb", "{line}");
}

async fn run_initdb(
    pgbin: &PgBin,
    superuser: &str,
    dir: &Path,
    owner: Option<&RunAs>,
) -> Result<()> {
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    if let Some(u) = owner {
        u.chown(dir)?;
    }
    let initdb = pgbin.tool("initdb");
    let mut cmd = Command::new(&initdb);
    cmd.arg("-D")
        .arg(dir)
        .arg("-U")
        .arg(superuser)
        .args(INITDB_ARGS);
    cmd.current_dir(dir.parent().unwrap_or(Path::new("/")));
    process::run_as(&mut cmd, owner);
    let done = process::Child::run(&mut cmd, process::LogAs(log_initdb))
        .await
        .with_context(|| format!("running {}", initdb.display()))?;
    if !done.status.success() {
        bail!(
            "initdb into {} failed ({}): {}",
            dir.display(),
            done.status,
            done.stderr_tail.join("\n")
        );
    }
    Ok(())
}

/// Copies the template into the empty directory `dir` as a PGDATA is made
/// from it (for a start, or a spare): every file to `owner`, the template's
/// stamp left out.
fn copy_as_pgdata(template: &Path, dir: &Path, owner: Option<&RunAs>) -> Result<Copied> {
    let copied = copy::copy_tree(template, dir, owner).with_context(|| {
        format!(
            "copying template {} into {}",
            template.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(dir.join(STAMP));
    Ok(copied)
}

/// Copies the template into the (empty) `pgdata`, giving every file to
/// `owner` (see `copy`: the data ranges only, byte for byte the same).
pub fn copy_template(template: &Path, pgdata: &Path, owner: Option<&RunAs>) -> Result<Copied> {
    let started = std::time::Instant::now();
    let copied = copy_as_pgdata(template, pgdata, owner)?;
    tracing::info!(
        files = copied.files,
        bytes = copied.bytes,
        data_bytes = copied.data_bytes,
        ms = started.elapsed().as_millis() as u64,
        "PGDATA copied from the template"
    );
    Ok(copied)
}

#[cfg(test)]
mod tests;
