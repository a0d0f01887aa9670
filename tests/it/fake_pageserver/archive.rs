//! The archives the test pageserver serves: generated ones of any size
//! (streamed, never held whole), and real ones made by initdb or of a stopped
//! compute's PGDATA; and where postgres and its user are.

use super::*;

const MIB: u64 = 1024 * 1024;
/// Files of a generated archive are at most this big (like relation segments).
const GENERATED_FILE: u64 = 64 * MIB;

/// A gzip'd tar of `PG_VERSION` and `base/1/<n>` files holding `data_bytes`
/// in all, produced piece by piece: memory stays at about one MiB whatever
/// the size, and producing it costs next to no CPU, so a client is measured
/// rather than this server.
///
/// The trick: file content is one 1 MiB block (half pseudo-random, half
/// zeros in each 8 KiB page: like data pages, it compresses about 2:1)
/// repeated. The block is deflated once by a fresh compressor, ending with
/// a full flush: that output uses no earlier data and ends on a byte
/// boundary, so it can be repeated as is. Everything else (tar headers, end
/// marker) is deflated as it comes, also full-flushed, and the gzip trailer
/// gets the CRC of the whole, combined from the block's CRC.
pub struct GeneratedStream {
    deflate: flate2::Compress,
    crc: crc32fast::Hasher,
    size: u64,
    block: Bytes,
    block_crc: crc32fast::Hasher,
    /// Pieces left to produce, in order.
    plan: std::vec::IntoIter<Piece>,
}

enum Piece {
    GzipHeader,
    Fresh(Vec<u8>),
    Block,
    Finish,
}

impl GeneratedStream {
    pub fn new(data_bytes: u64) -> GeneratedStream {
        let block = data_block();
        let mut block_crc = crc32fast::Hasher::new();
        block_crc.update(&block);
        let compressed = deflate_full_flush(&mut flate2::Compress::new(level(), false), &block);

        let mut plan = vec![
            Piece::GzipHeader,
            Piece::Fresh(tar_dir("base/")),
            Piece::Fresh(tar_dir("base/1/")),
        ];
        let mut pg_version = tar_header("PG_VERSION", 3);
        pg_version.extend_from_slice(b"15\n");
        pg_version.resize(1024, 0); // header + padded content
        plan.push(Piece::Fresh(pg_version));
        let mut left = data_bytes.div_ceil(MIB) * MIB;
        let mut n = 16384;
        while left > 0 {
            let size = left.min(GENERATED_FILE);
            plan.push(Piece::Fresh(tar_header(&format!("base/1/{n}"), size)));
            plan.extend((0..size / MIB).map(|_| Piece::Block));
            left -= size;
            n += 1;
        }
        plan.push(Piece::Fresh(vec![0; 1024])); // the tar end marker
        plan.push(Piece::Finish);
        GeneratedStream {
            deflate: flate2::Compress::new(level(), false),
            crc: crc32fast::Hasher::new(),
            size: 0,
            block: Bytes::from(compressed),
            block_crc,
            plan: plan.into_iter(),
        }
    }
}

impl Iterator for GeneratedStream {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        Some(match self.plan.next()? {
            Piece::GzipHeader => Bytes::from_static(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
            Piece::Fresh(data) => {
                self.crc.update(&data);
                self.size += data.len() as u64;
                Bytes::from(deflate_full_flush(&mut self.deflate, &data))
            }
            Piece::Block => {
                self.crc.combine(&self.block_crc);
                self.size += MIB;
                self.block.clone()
            }
            Piece::Finish => {
                let mut out = Vec::with_capacity(64);
                self.deflate
                    .compress_vec(&[], &mut out, flate2::FlushCompress::Finish)
                    .unwrap();
                out.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
                out.extend_from_slice(&(self.size as u32).to_le_bytes());
                Bytes::from(out)
            }
        })
    }
}

/// Compression level of generated archives: fast, like the pageserver's.
fn level() -> flate2::Compression {
    flate2::Compression::fast()
}

/// Deflates all of `data`, ending with a full flush.
fn deflate_full_flush(c: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        out.reserve(64 * 1024);
        let before = c.total_in();
        c.compress_vec(&data[pos..], &mut out, flate2::FlushCompress::Full)
            .unwrap();
        pos += (c.total_in() - before) as usize;
        // zlib's rule: the flush is complete once it leaves output room unused.
        if pos == data.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// 1 MiB like data pages: per 8 KiB, 4 KiB of xorshift noise then zeros.
fn data_block() -> Vec<u8> {
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for page in block.chunks_mut(8192) {
        for word in page[..4096].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
    }
    block
}

fn tar_header(path: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn tar_dir(path: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(0);
    h.set_mode(0o700);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// The user postgres runs as when we are root.
pub fn pg_user() -> Option<nix::unistd::User> {
    nix::unistd::Uid::effective().is_root().then(|| {
        nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("user postgres exists")
    })
}

/// The directory of initdb, postgres, pg_basebackup.
pub fn pg_bindir() -> std::path::PathBuf {
    let p = Path::new("/usr/lib/postgresql/15/bin");
    if p.join("initdb").is_file() {
        return p.to_path_buf();
    }
    // Any other version installed the Debian way.
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgres is installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop().expect("an initdb under /usr/lib/postgresql")
}

/// Runs initdb into `pgdata` (as user postgres when we are root), superuser
/// `postgres`, trust authentication (replication included).
pub fn initdb(pgdata: &Path) {
    let parent = pgdata.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let mut cmd = std::process::Command::new(pg_bindir().join("initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        .args(["--locale=C"])
        .stdout(std::process::Stdio::null());
    if let Some(u) = pg_user() {
        // The user must be able to create pgdata in its parent.
        std::os::unix::fs::chown(parent, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
        cmd.uid(u.uid.as_raw())
            .gid(u.gid.as_raw())
            .env("HOME", &u.dir);
    }
    let out = cmd.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A gzip'd tar of a fresh initdb'd PGDATA, made once per process.
pub fn initdb_archive() -> Arc<Vec<u8>> {
    static ARCHIVE: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("fake-ps-")
                .tempdir_in("/tmp")
                .unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let pgdata = dir.path().join("initdb").join("pgdata");
            initdb(&pgdata);
            Arc::new(gzip_tar_of(&pgdata))
        })
        .clone()
}

/// A gzip'd tar of an existing (stopped) PGDATA, as a pageserver would send
/// it: `postmaster.pid` and `postmaster.opts` left out.
pub fn archive_of(pgdata: &Path) -> Arc<Vec<u8>> {
    let copy = tempfile::Builder::new()
        .prefix("fake-ps-copy-")
        .tempdir_in("/tmp")
        .unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(pgdata)
        .arg(copy.path().join("pgdata"))
        .status()
        .unwrap();
    assert!(status.success(), "copying {}", pgdata.display());
    let pgdata = copy.path().join("pgdata");
    for f in ["postmaster.pid", "postmaster.opts"] {
        let _ = std::fs::remove_file(pgdata.join(f));
    }
    Arc::new(gzip_tar_of(&pgdata))
}

/// A gzip'd tar of the content of `dir`, as a pageserver sends a PGDATA.
fn gzip_tar_of(dir: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    // Plain entries, as a pageserver sends: the tar crate would otherwise
    // write GNU sparse entries for files with holes (the template's WAL).
    tar.sparse(false);
    append_tree(&mut tar, dir, Path::new(""));
    let mut gz = tar.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

/// Appends the content of `dir` as `prefix/...`, directories before what they hold.
fn append_tree<W: Write>(tar: &mut tar::Builder<W>, dir: &Path, prefix: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = prefix.join(e.file_name());
        tar.append_path_with_name(e.path(), &name).unwrap();
        if e.file_type().unwrap().is_dir() {
            append_tree(tar, &e.path(), &name);
        }
    }
}
