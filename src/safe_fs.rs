//! Files root writes in directories another user can write.
//!
//! PGDATA belongs to postgres, and the temporary directory to everyone: a
//! process of that user can put a symlink (or a file of its own) at any name
//! in them, at any time. Root following such a name writes, chmods or chowns
//! whatever the link points to. So root opens names here only relative to a
//! directory handle ([`Dir`], opened without following a symlink), never
//! through a symlink (`O_NOFOLLOW`), creates files exclusively (`O_EXCL`,
//! under an unpredictable temporary name), sets their owner and mode on the
//! open descriptor, and renames them into place with `renameat` on the same
//! handle: what was at the name (a link, a planted file) is replaced, never
//! written through.

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, FileStat, Mode, SFlag};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Opening a directory: never through a symlink.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open directory; the names given to its methods are single entries of
/// it (no `/`), looked up through the handle and never followed if a symlink.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory `path`; its last component must not be a symlink.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = nix::fcntl::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| {
            anyhow::Error::from(e).context(match e {
                nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => {
                    format!("{} is not a directory (a symlink?)", path.display())
                }
                _ => format!("opening directory {}", path.display()),
            })
        })?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Creates the directory `name` in `parent` (mode `mode`, ours) and
    /// opens it, both relative to the parent's handle. `parent` may be
    /// writable by another user (PGDATA's parent often belongs to postgres):
    /// that user can rename what we made and put a symlink at its name, so
    /// the new directory is known by its handle from here on, never by the
    /// name. Fails if what is at `name` when it is opened is not the
    /// directory we made (not ours, or a symlink).
    pub fn create_in(parent: &Path, name: &str, mode: u32) -> Result<Dir> {
        let path = parent.join(name);
        let parent = Dir::open(parent)?;
        nix::sys::stat::mkdirat(
            parent.fd(),
            entry(name)?,
            Mode::from_bits_truncate(mode & 0o7777),
        )
        .with_context(|| format!("creating {}", path.display()))?;
        let dir = parent
            .open_dir(name)?
            .with_context(|| format!("{} vanished as soon as it was made", path.display()))?;
        let made = dir.stat()?;
        if made.st_uid != nix::unistd::Uid::effective().as_raw() {
            bail!(
                "{} was replaced by another user's directory as it was made; not using it",
                path.display()
            );
        }
        // The mode asked for, whatever the umask, but only where the umask
        // took something: the set-group-id bit a set-group-id parent gave it
        // must stay, so that what is made inside gets the parent's group (a
        // container run as postgres, or an arbitrary uid, under the image's
        // group-0 `/var/lib/compute` relies on it), and a chmod by a user not
        // in that group would clear it.
        let made = made.st_mode;
        if made & 0o777 != mode & 0o777 {
            fchmod(
                dir.fd(),
                Mode::from_bits_truncate((mode & 0o777) | (made & 0o2000)),
            )
            .with_context(|| format!("chmod {}", path.display()))?;
        }
        Ok(dir)
    }

    /// A path that leads to this directory whatever is renamed or planted
    /// meanwhile: the handle's entry in `/proc/self/fd` (Linux), valid while
    /// the handle lives. For code that can only take a path (a copy, an
    /// archive's unpacking) into a directory only we can write, whose own
    /// name sits where another user can change it.
    pub fn pinned_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Opens the subdirectory `name`; None when it does not exist.
    pub fn open_dir(&self, name: &str) -> Result<Option<Dir>> {
        let path = self.path.join(name);
        match openat(self.fd.as_fd(), entry(name)?, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, path })),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e @ (nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR)) => Err(e)
                .with_context(|| format!("{} is not a directory (a symlink?)", path.display())),
            Err(e) => Err(e).with_context(|| format!("opening directory {}", path.display())),
        }
    }

    /// Where it is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's own status.
    pub fn stat(&self) -> Result<FileStat> {
        fstat(self.fd.as_fd()).with_context(|| format!("stat of {}", self.path.display()))
    }

    /// The directory's owner and group.
    pub fn owner(&self) -> Result<(u32, u32)> {
        let st = self.stat()?;
        Ok((st.st_uid, st.st_gid))
    }

    /// Whether only we can change it: it belongs to our effective user and
    /// neither its group nor others may write it.
    pub fn ours_alone(&self) -> Result<bool> {
        let st = self.stat()?;
        Ok(st.st_uid == nix::unistd::Uid::effective().as_raw() && st.st_mode & 0o022 == 0)
    }

    /// Whether what we read in it can be believed: as root, only if it is
    /// ours alone; a process that is not root writes and reads as itself,
    /// where its deployment put it (perhaps a directory its group shares).
    pub fn trusted(&self) -> Result<bool> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(true);
        }
        self.ours_alone()
    }

    /// Reads the regular file `name`; None when it does not exist. A
    /// symlink or anything but a regular file there is an error.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match openat(self.fd.as_fd(), entry(name)?, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(nix::errno::Errno::ELOOP) => {
                bail!("{} is a symlink: not reading through it", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let st = fstat(fd.as_fd()).with_context(|| format!("stat of {}", path.display()))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            bail!("{} is not a regular file: not reading it", path.display());
        }
        let mut data = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut data)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(data))
    }

    /// [`Dir::read`] as text.
    pub fn read_string(&self, name: &str) -> Result<Option<String>> {
        self.read(name)?
            .map(|data| {
                String::from_utf8(data)
                    .with_context(|| format!("{} is not UTF-8", self.path.join(name).display()))
            })
            .transpose()
    }

    /// Replaces `name` with a new file holding `data`, mode `mode`, owned by
    /// `owner` (uid, gid; None: by us): written under an unpredictable
    /// temporary name created exclusively, then renamed over `name`. Whatever
    /// was at `name` (a file, a symlink) is replaced, not written through; a
    /// reader sees the old file or the whole new one.
    pub fn replace(
        &self,
        name: &str,
        data: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let path = self.path.join(name);
        let (tmp, file) = self.create_temporary(name, mode, owner)?;
        let written = (&file)
            .write_all(data)
            .with_context(|| format!("writing {}", self.path.join(&tmp).display()))
            .and_then(|()| {
                renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), entry(name)?)
                    .with_context(|| format!("renaming a new {} into place", path.display()))
            });
        if written.is_err() {
            let _ = nix::unistd::unlinkat(
                self.fd.as_fd(),
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        written
    }

    /// A new, empty file under an unpredictable name beside `name`, created
    /// exclusively, its owner and mode set on the descriptor.
    fn create_temporary(
        &self,
        name: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(String, std::fs::File)> {
        entry(name)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        // tempfile draws the names and retries on a name already taken;
        // the file itself is created here, relative to the handle.
        let made = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .make_in(&self.path, |candidate| {
                let tmp = candidate
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let fd = openat(
                    self.fd.as_fd(),
                    tmp.as_str(),
                    flags,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(std::io::Error::from)?;
                Ok((tmp, std::fs::File::from(fd)))
            })
            .with_context(|| format!("creating a temporary file in {}", self.path.display()))?;
        let ((tmp, file), _) = made
            .keep()
            .map_err(|e| e.error)
            .with_context(|| format!("creating a temporary file in {}", self.path.display()))?;
        let set = (|| -> Result<()> {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).context("chown")?;
            }
            fchmod(file.as_fd(), Mode::from_bits_truncate(mode & 0o7777)).context("chmod")?;
            Ok(())
        })();
        if let Err(e) = set {
            let _ = nix::unistd::unlinkat(
                self.fd.as_fd(),
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(e.context(format!("{}", self.path.join(&tmp).display())));
        }
        Ok((tmp, file))
    }

    /// The names of this directory's entries, listed through the handle
    /// (Linux: the descriptor's entry in `/proc/self/fd`), not the path.
    pub fn names(&self) -> Result<Vec<std::ffi::OsString>> {
        use std::os::fd::AsRawFd;
        let listed = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let entries = std::fs::read_dir(&listed)
            .with_context(|| format!("listing {}", self.path.display()))?;
        entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", self.path.display()))
    }

    /// Removes every entry of this directory that is not a directory (files,
    /// symlinks: the links themselves), never descending.
    pub fn remove_files(&self) -> Result<()> {
        for name in self.names()? {
            match nix::unistd::unlinkat(
                self.fd.as_fd(),
                name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(nix::errno::Errno::EISDIR) => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("removing {:?} from {}", name, self.path.display())
                    })
                }
            }
        }
        Ok(())
    }
}

/// Where an archive's entry named `name` goes under `base`: `.` is dropped;
/// `..` and absolute paths are refused (None). The path rule of every
/// archive compute_ctl unpacks (the basebackup, a remote extension's).
pub fn within(base: &Path, name: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut dest = base.to_path_buf();
    for part in name.components() {
        match part {
            Component::Normal(p) => dest.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => return None,
        }
    }
    Some(dest)
}

/// Whether a symlink's target only goes down from where the link is:
/// relative, without `..`. Such links, and chains of them, stay inside the
/// unpacked tree whatever else the archive holds (counting `..` against the
/// link's depth would not: `x -> l/..`, where `l` is a link to `..`, climbs out).
pub fn link_descends(target: &Path) -> bool {
    use std::path::Component;
    !target.as_os_str().is_empty()
        && target
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// `name` as one entry of a directory: no `/`, not `.` or `..`.
fn entry(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        bail!("{name:?} is not a name in a directory");
    }
    Ok(name)
}

/// A new private directory under the temporary directory, with an
/// unpredictable name, removed when dropped. It belongs to us and nobody
/// else can write it; when a client runs as `owner`, it may pass through
/// (mode 0711: not list it), else it is 0700.
pub fn private_temp_dir(
    prefix: &str,
    owner: Option<&crate::process::RunAs>,
) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if owner.is_some() { 0o711 } else { 0o700 };
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempdir()
        .context("creating a private temporary directory")?;
    // The mode asked for, whatever the umask.
    let handle = Dir::open(dir.path())?;
    fchmod(handle.fd(), Mode::from_bits_truncate(mode))
        .with_context(|| format!("chmod {}", dir.path().display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests;
