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

mod archive;
pub use archive::*;

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

/// How the server answers `lease lsn <tenant shard> <timeline> <lsn> `, as
/// a pageserver does for a static compute.
#[derive(Debug, Clone)]
pub enum Lease {
    /// A row whose `valid_until` is now plus this (milliseconds since the epoch).
    Grant(Duration),
    /// A row whose `valid_until` is NULL: the LSN is behind the GC cutoff.
    Refuse,
    /// An ErrorResponse for the first N requests, then grants this.
    FailFirst(u32, Duration),
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
    /// How `lease lsn` is answered.
    pub lease: Lease,
}

impl Options {
    pub fn new(archive: Archive) -> Options {
        Options {
            behaviour: Behaviour::Normal,
            archive,
            require_password: true,
            chunk_size: 64 * 1024,
            lease: Lease::Grant(Duration::from_secs(600)),
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
                    if !self.execute(&query, opts, rec).await? {
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
                    if !self.execute(&parsed, opts, rec).await? {
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
    async fn execute(&mut self, query: &str, opts: &Options, rec: &Mutex<Recorded>) -> Io<bool> {
        if query.starts_with("lease lsn ") {
            let earlier = rec
                .lock()
                .unwrap()
                .commands
                .iter()
                .filter(|c| c.starts_with("lease lsn "))
                .count()
                - 1;
            self.lease(opts, earlier).await?;
            return Ok(true);
        }
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

    /// The answer to `lease lsn`: one text column, `valid_until`.
    /// `earlier`: how many lease requests this server answered before.
    async fn lease(&mut self, opts: &Options, earlier: usize) -> Io<()> {
        let valid_for = match &opts.lease {
            Lease::Grant(d) => Some(*d),
            Lease::Refuse => None,
            Lease::FailFirst(n, d) => {
                if earlier < *n as usize {
                    return self.error("fake pageserver: lease failed (as asked)").await;
                }
                Some(*d)
            }
        };
        let mut desc = BytesMut::new();
        desc.put_i16(1);
        desc.put_slice(b"valid_until\0");
        desc.put_i32(0); // table
        desc.put_i16(0); // column
        desc.put_i32(25); // text
        desc.put_i16(-1);
        desc.put_i32(-1);
        desc.put_i16(0); // text format
        self.send(b'T', &desc).await?;
        let mut row = BytesMut::new();
        row.put_i16(1);
        match valid_for {
            Some(d) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                let millis = (now + d).as_millis().to_string();
                row.put_i32(millis.len() as i32);
                row.put_slice(millis.as_bytes());
            }
            None => row.put_i32(-1),
        }
        self.send(b'D', &row).await?;
        self.send(b'C', b"SELECT 1\0").await
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
