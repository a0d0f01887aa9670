//! Copying the template into PGDATA, the one file-system cost of a local
//! cold start: about a thousand files, most of them small, and a 16 MiB WAL
//! segment that initdb filled only in part.
//!
//! The template's WAL segments are made sparse once, when the template is
//! made ([`punch_zero_blocks`]): the zeros after initdb's last record become
//! holes. Each copy then moves only the data ranges (`SEEK_DATA` /
//! `SEEK_HOLE`) with `copy_file_range` (which shares extents where the file
//! system can, XFS or btrfs, and copies in the kernel elsewhere) and sets
//! the file's length, so the copy reads back byte for byte as the template.
//! A file system without `SEEK_DATA` gives the whole file as one range; one
//! without `copy_file_range` between these files gets a read/write copy.
//!
//! Files are created by us (`O_EXCL`, the template's mode bits, chowned
//! through the descriptor), biggest first, by a few threads taking the
//! next file from a shared index: creating files is what costs most here.

use crate::process::RunAs;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads that copy files: the copy is bound by per-file system calls, which
/// run in parallel well even on two cores.
const COPY_THREADS: usize = 4;

/// Block size of the holes punched in the template's WAL.
const BLOCK: usize = 4096;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Regular files created.
    pub files: u64,
    /// Their total length.
    pub bytes: u64,
    /// Bytes actually copied (holes excluded).
    pub data_bytes: u64,
}

/// Copies the tree `from` into the existing, empty directory `to`:
/// directories (0700) and symlinks first, in order, then the regular files
/// in parallel; everything given to `owner`.
pub fn copy_tree(from: &Path, to: &Path, owner: Option<&RunAs>) -> Result<Copied> {
    let mut files = Vec::new();
    collect(from, to, owner, &mut files)?;
    // Biggest first: the WAL segment does not end up last on one thread.
    files.sort_by_key(|f| std::cmp::Reverse(f.len));
    let next = AtomicUsize::new(0);
    let ids = owner.map(|u| (u.uid, u.gid));
    let results: Vec<Result<Copied>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..COPY_THREADS.min(files.len()).max(1))
            .map(|_| {
                scope.spawn(|| -> Result<Copied> {
                    let mut done = Copied::default();
                    while let Some(f) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let data = copy_file(f, ids)
                            .with_context(|| format!("copying {}", f.src.display()))?;
                        done.files += 1;
                        done.bytes += f.len;
                        done.data_bytes += data;
                    }
                    Ok(done)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a copy thread panicked"))?
            })
            .collect()
    });
    results.into_iter().try_fold(Copied::default(), |sum, r| {
        let r = r?;
        Ok(Copied {
            files: sum.files + r.files,
            bytes: sum.bytes + r.bytes,
            data_bytes: sum.data_bytes + r.data_bytes,
        })
    })
}

struct FileToCopy {
    src: PathBuf,
    dest: PathBuf,
    len: u64,
    mode: u32,
    /// Fewer blocks than its length: it has holes.
    sparse: bool,
}

fn collect(
    from: &Path,
    to: &Path,
    owner: Option<&RunAs>,
    files: &mut Vec<FileToCopy>,
) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dest)
                .with_context(|| format!("creating {}", dest.display()))?;
            collect(&entry.path(), &dest, owner, files)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else {
            let meta = entry.metadata()?;
            files.push(FileToCopy {
                src: entry.path(),
                dest,
                len: meta.len(),
                mode: meta.mode() & 0o777,
                sparse: meta.blocks() * 512 < meta.len(),
            });
            continue;
        }
        if let Some(u) = owner {
            std::os::unix::fs::lchown(&dest, Some(u.uid), Some(u.gid))?;
        }
    }
    Ok(())
}

/// Copies one regular file into a new file (its mode, owned by `ids`): its
/// data ranges only, then its length. Returns the bytes copied. Few system
/// calls: an empty file is only created, and a file without holes is one
/// range.
fn copy_file(f: &FileToCopy, ids: Option<(u32, u32)>) -> Result<u64> {
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(f.mode)
        .open(&f.dest)
        .with_context(|| format!("creating {}", f.dest.display()))?;
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", f.dest.display()))?;
    }
    if f.len == 0 {
        return Ok(0);
    }
    let input = File::open(&f.src)?;
    let ranges = if f.sparse {
        data_ranges(&input, f.len)?
    } else {
        vec![(0, f.len)]
    };
    let mut copied = 0;
    for &(start, end) in &ranges {
        copy_range(&input, &out, start, end)?;
        copied += end - start;
    }
    if ranges.last().is_none_or(|&(_, end)| end < f.len) {
        // Holes at the end: the length says where the file ends.
        out.set_len(f.len)?;
    }
    Ok(copied)
}

/// The data ranges of `file` (`[start, end)`), holes left out. The whole
/// file when the file system cannot tell.
fn data_ranges(file: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    use nix::unistd::{lseek, Whence};
    let mut ranges = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match lseek(file, pos as i64, Whence::SeekData) {
            Ok(start) => start as u64,
            // No data after pos: the rest is a hole.
            Err(nix::errno::Errno::ENXIO) => break,
            // SEEK_DATA unsupported: all of it is data.
            Err(_) if ranges.is_empty() && pos == 0 => return Ok(vec![(0, len)]),
            Err(e) => return Err(e.into()),
        };
        let end = match lseek(file, start as i64, Whence::SeekHole) {
            Ok(end) => (end as u64).min(len),
            Err(_) => len,
        };
        if end > start {
            ranges.push((start, end));
        }
        pos = end;
    }
    Ok(ranges)
}

/// Copies `[start, end)` of `input` to the same offsets of `out`: with
/// `copy_file_range`, or read and write where the kernel refuses it.
fn copy_range(input: &File, out: &File, start: u64, end: u64) -> Result<()> {
    let (mut off_in, mut off_out) = (start as i64, start as i64);
    while (off_in as u64) < end {
        let left = (end - off_in as u64) as usize;
        match nix::fcntl::copy_file_range(input, Some(&mut off_in), out, Some(&mut off_out), left) {
            Ok(0) => anyhow::bail!("the file shrank while being copied"),
            Ok(_) => {}
            Err(
                nix::errno::Errno::EXDEV
                | nix::errno::Errno::ENOSYS
                | nix::errno::Errno::EOPNOTSUPP
                | nix::errno::Errno::EINVAL,
            ) => return copy_range_by_hand(input, out, off_in as u64, end),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_range_by_hand(mut input: &File, mut out: &File, start: u64, end: u64) -> Result<()> {
    input.seek(SeekFrom::Start(start))?;
    out.seek(SeekFrom::Start(start))?;
    let copied = std::io::copy(&mut input.take(end - start), &mut out)?;
    if copied != end - start {
        anyhow::bail!("the file shrank while being copied");
    }
    Ok(())
}

/// Turns the all-zero blocks of the regular files in `dir` into holes
/// (`fallocate` punch hole, keeping the size): the file reads the same, and
/// a copy of it need not write the zeros. Where the file system cannot
/// punch holes the files stay as they are. Returns the bytes freed.
pub fn punch_zero_blocks(dir: &Path) -> Result<u64> {
    use nix::fcntl::{fallocate, FallocateFlags};
    let mut freed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut block = vec![0u8; BLOCK];
        let mut offset = 0u64;
        // Runs of zero blocks: (start, length).
        let mut run: Option<(u64, u64)> = None;
        let mut runs = Vec::new();
        loop {
            let n = read_full(&mut file, &mut block)?;
            if n == 0 {
                break;
            }
            if n == BLOCK && block.iter().all(|&b| b == 0) {
                let r = run.get_or_insert((offset, 0));
                r.1 += BLOCK as u64;
            } else if let Some(r) = run.take() {
                runs.push(r);
            }
            offset += n as u64;
        }
        runs.extend(run);
        for (start, len) in runs {
            let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            match fallocate(&file, flags, start as i64, len as i64) {
                Ok(()) => freed += len,
                Err(nix::errno::Errno::EOPNOTSUPP) => return Ok(freed),
                Err(e) => {
                    return Err(e).with_context(|| format!("punching holes in {}", path.display()))
                }
            }
        }
        file.flush()?;
    }
    Ok(freed)
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests;
