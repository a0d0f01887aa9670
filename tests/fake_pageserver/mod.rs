//! A small test pageserver: speaks just enough of the Postgres wire protocol
//! (startup, cleartext password, simple and extended query) to answer
//! `basebackup ...` with a COPY OUT stream of a gzip'd tar, and records what
//! it was sent. Misbehaviours are configurable per instance.
//!
//! Archives: [`initdb_archive`] is a real initdb'd PGDATA (made once per
//! process); [`Archive::Generated`] is a PGDATA-shaped archive of any size,
//! made on the fly without holding it in memory (see [`GeneratedStream`]).

#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// How the server behaves when asked for a basebackup.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Sends the whole archive.
    Normal,
    /// Sends the whole archive, then this error instead of CopyDone.
    ErrorAfterArchive(String),
    /// Closes the connection after sending this many archive bytes.
    DropAfter(u64),
    /// Sleeps this long before each chunk.
    Slow(Duration),
    /// Refuses (ErrorResponse at startup) the first N connections.
    FailFirst(u32),
    /// Sends the first chunk, then nothing until the client goes away.
    Hang,
}

/// What the server streams.
#[derive(Debug, Clone)]
pub enum Archive {
    /// These bytes, as they are.
    Bytes(Arc<Vec<u8>>),
    /// A generated archive with `data_bytes` of file content (rounded up to
    /// MiB), compressed about 2:1. See [`GeneratedStream`].
    Generated { data_bytes: u64 },
}

/// Configuration of one server.
#[derive(Debug, Clone)]
pub struct Options {
    pub behaviour: Behaviour,
    pub archive: Archive,
    /// Asks for a cleartext password (else: trust).
    pub require_password: bool,
    /// Bytes of archive per CopyData message.
    pub chunk_size: usize,
}

impl Options {
    pub fn new(archive: Archive) -> Options {
        Options {
            behaviour: Behaviour::Normal,
            archive,
            require_password: true,
            chunk_size: 64 * 1024,
        }
    }
}

/// What the server was sent.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Connections accepted.
    pub connections: u32,
    /// The password of each authenticated connection.
    pub passwords: Vec<String>,
    /// Startup parameters of each connection, e.g. `application_name`.
    pub startup_params: Vec<Vec<(String, String)>>,
    /// Text of each query executed (simple or extended).
    pub commands: Vec<String>,
    /// Connections that ended (the client closed it, or the server dropped it).
    pub ended: u32,
}

/// A running fake pageserver; stops when dropped.
pub struct FakePageserver {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePageserver {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet: every connection stops.
        self.task.abort();
    }
}

impl FakePageserver {
    /// Listens on 127.0.0.1:0 (on the current tokio runtime).
    pub async fn start(opts: Options) -> FakePageserver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let rec = recorded.clone();
        let opts = Arc::new(opts);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let n = AtomicU32::new(0);
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let number = n.fetch_add(1, Ordering::SeqCst) + 1;
                rec.lock().unwrap().connections = number;
                conns.spawn(serve(sock, number, opts.clone(), rec.clone()));
            }
        });
        FakePageserver {
            addr,
            recorded,
            task,
        }
    }

    /// A libpq URL for this server, in Neon's shape.
    pub fn connstring(&self) -> String {
        format!("postgresql://no_user@{}", self.addr)
    }

    /// What it was sent so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded.lock().unwrap().clone()
    }
}

/// One connection; errors (the client went away) just end it.
async fn serve(sock: TcpStream, number: u32, opts: Arc<Options>, rec: Arc<Mutex<Recorded>>) {
    let _ = sock.set_nodelay(true);
    let (r, w) = sock.into_split();
    let mut conn = Conn {
        r: BufReader::new(r),
        w: BufWriter::new(w),
    };
    let _ = conn.run(number, &opts, &rec).await;
    rec.lock().unwrap().ended += 1;
}

struct Conn {
    r: BufReader<OwnedReadHalf>,
    w: BufWriter<OwnedWriteHalf>,
}

type Io<T> = std::io::Result<T>;

impl Conn {
    async fn run(&mut self, number: u32, opts: &Options, rec: &Mutex<Recorded>) -> Io<()> {
        let params = self.startup().await?;
        rec.lock().unwrap().startup_params.push(params);
        if let Behaviour::FailFirst(n) = opts.behaviour {
            if number <= n {
                let msg = format!("fake pageserver refuses connection {number} of the first {n}");
                self.error(&msg).await?;
                return self.w.flush().await;
            }
        }
        if opts.require_password {
            self.send(b'R', &3i32.to_be_bytes()).await?; // AuthenticationCleartextPassword
            self.w.flush().await?;
            let (tag, body) = self.read_message().await?;
            if tag != b'p' {
                return Err(invalid("expected a password message"));
            }
            rec.lock().unwrap().passwords.push(cstr(&body));
        }
        self.send(b'R', &0i32.to_be_bytes()).await?; // AuthenticationOk
        self.send(b'S', b"server_version\x0015.0\x00").await?;
        self.send(b'S', b"client_encoding\x00UTF8\x00").await?;
        self.send(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]).await?; // BackendKeyData
        self.ready().await?;

        // Extended protocol: the query of the last Parse (tokio-postgres
        // prepares, then binds and executes the statement it prepared).
        let mut parsed = String::new();
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'Q' => {
                    let query = cstr(&body);
                    rec.lock().unwrap().commands.push(query.clone());
                    if !self.execute(&query, opts).await? {
                        return Ok(());
                    }
                    self.ready().await?;
                }
                b'P' => {
                    // Parse: statement name, query, parameter types.
                    let name_end = body.iter().position(|&b| b == 0).unwrap_or(0);
                    parsed = cstr(&body[name_end + 1..]);
                    self.send(b'1', &[]).await?; // ParseComplete
                }
                b'D' => {
                    self.send(b't', &0i16.to_be_bytes()).await?; // ParameterDescription: none
                    self.send(b'n', &[]).await?; // NoData
                }
                b'B' => self.send(b'2', &[]).await?, // BindComplete
                b'E' => {
                    rec.lock().unwrap().commands.push(parsed.clone());
                    if !self.execute(&parsed, opts).await? {
                        return Ok(());
                    }
                }
                b'C' => self.send(b'3', &[]).await?, // CloseComplete
                b'S' => self.ready().await?,         // Sync
                b'H' => self.w.flush().await?,       // Flush
                b'X' => return Ok(()),               // Terminate
                other => {
                    let msg = format!("fake pageserver: unsupported message {:?}", other as char);
                    self.error(&msg).await?;
                }
            }
        }
    }

    /// Runs a query. Returns false when the connection is to be dropped.
    async fn execute(&mut self, query: &str, opts: &Options) -> Io<bool> {
        if !query.starts_with("basebackup ") {
            self.send(b'C', b"SELECT 0\x00").await?;
            return Ok(true);
        }
        // CopyOutResponse: text format, no columns.
        self.send(b'H', &[0, 0, 0]).await?;
        let mut sent = 0u64;
        let mut first = true;
        for piece in archive_pieces(&opts.archive) {
            for chunk in piece.chunks(opts.chunk_size) {
                match &opts.behaviour {
                    Behaviour::Slow(pause) => {
                        self.w.flush().await?;
                        tokio::time::sleep(*pause).await;
                    }
                    Behaviour::DropAfter(limit) if sent >= *limit => {
                        self.w.flush().await?;
                        return Ok(false); // dropping self closes the socket
                    }
                    Behaviour::Hang if !first => {
                        self.w.flush().await?;
                        // Returns once the client closes the connection.
                        while self.r.read_u8().await.is_ok() {}
                        return Ok(false);
                    }
                    _ => {}
                }
                first = false;
                self.send(b'd', chunk).await?;
                sent += chunk.len() as u64;
            }
        }
        if let Behaviour::ErrorAfterArchive(msg) = &opts.behaviour {
            self.error(msg).await?;
            self.w.flush().await?;
            return Ok(true);
        }
        self.send(b'c', &[]).await?; // CopyDone
        self.send(b'C', b"COPY 0\x00").await?;
        self.w.flush().await?;
        Ok(true)
    }

    async fn startup(&mut self) -> Io<Vec<(String, String)>> {
        loop {
            let len = self.r.read_i32().await?;
            let mut body = vec![0; (len as usize).saturating_sub(4)];
            self.r.read_exact(&mut body).await?;
            let code = i32::from_be_bytes(body[..4].try_into().unwrap());
            if code == 80877103 || code == 80877104 {
                // SSLRequest / GSSENCRequest: not here.
                self.w.write_all(b"N").await?;
                self.w.flush().await?;
                continue;
            }
            let fields: Vec<String> = body[4..]
                .split(|&b| b == 0)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            return Ok(fields
                .chunks(2)
                .filter(|kv| kv.len() == 2 && !kv[0].is_empty())
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect());
        }
    }

    async fn read_message(&mut self) -> Io<(u8, Vec<u8>)> {
        let tag = self.r.read_u8().await?;
        let len = self.r.read_i32().await?;
        let mut body = vec![0; (len as usize).saturating_sub(4)];
        self.r.read_exact(&mut body).await?;
        Ok((tag, body))
    }

    async fn send(&mut self, tag: u8, body: &[u8]) -> Io<()> {
        self.w.write_u8(tag).await?;
        self.w.write_i32(body.len() as i32 + 4).await?;
        self.w.write_all(body).await
    }

    async fn ready(&mut self) -> Io<()> {
        self.send(b'Z', b"I").await?;
        self.w.flush().await
    }

    async fn error(&mut self, msg: &str) -> Io<()> {
        let mut body = BytesMut::new();
        for (field, value) in [
            (b'S', "ERROR"),
            (b'V', "ERROR"),
            (b'C', "XX000"),
            (b'M', msg),
        ] {
            body.put_u8(field);
            body.put_slice(value.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        self.send(b'E', &body).await
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn archive_pieces(archive: &Archive) -> Box<dyn Iterator<Item = Bytes> + Send> {
    match archive {
        Archive::Bytes(b) => Box::new(std::iter::once(Bytes::copy_from_slice(b))),
        Archive::Generated { data_bytes } => Box::new(GeneratedStream::new(*data_bytes)),
    }
}

// ---------------------------------------------------------------------------
// Archives

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
            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            tar.follow_symlinks(false);
            tar.sparse(false);
            append_tree(&mut tar, &pgdata, Path::new(""));
            let mut gz = tar.into_inner().unwrap();
            gz.flush().unwrap();
            Arc::new(gz.finish().unwrap())
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
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    // Plain entries, as a pageserver sends: the tar crate would otherwise
    // write GNU sparse entries for files with holes (the template's WAL).
    tar.sparse(false);
    append_tree(&mut tar, &pgdata, Path::new(""));
    let mut gz = tar.into_inner().unwrap();
    gz.flush().unwrap();
    Arc::new(gz.finish().unwrap())
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
