//! A model of the one property of Neon's postgres that makes moving a compute
//! to another pageserver hard: a new backend needs the pageserver its
//! postmaster has loaded (Neon's postgres reads even the catalog through it).
//!
//! Postgres runs on a hidden port and socket; where compute_ctl and the
//! tests connect (the `-C` port, and the socket in compute_ctl's
//! `--socket-dir`, which its own sessions use) is a gate that, for each new
//! connection, asks postgres (a side connection of its own) which
//! `neon.pageserver_connstring` it has loaded, and forwards the connection
//! only while every pageserver named there accepts TCP. Otherwise
//! it holds the connection silently, and looks again every 100 ms, as a
//! backend retries its pageserver. So code that opens a SQL connection
//! before postgres has reloaded a new pageserver hangs here as it would on Neon.

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The gate in front of postgres.
pub struct NeonGate {
    /// Where compute_ctl (and the tests) connect: the `-C` port.
    pub port: u16,
    upstream: Upstream,
    held: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NeonGate {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Postgres behind the gate: its hidden socket.
#[derive(Clone)]
struct Upstream {
    socket_dir: PathBuf,
    port: u16,
    superuser: String,
}

impl Upstream {
    fn socket(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }
}

impl NeonGate {
    /// A gate on a free port in front of postgres on `hidden_port` and the
    /// socket in `hidden_socket_dir`.
    pub async fn start(hidden_port: u16, hidden_socket_dir: &Path, superuser: &str) -> NeonGate {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("binding the gate");
        let upstream = Upstream {
            socket_dir: hidden_socket_dir.to_path_buf(),
            port: hidden_port,
            superuser: superuser.to_string(),
        };
        let held = Arc::new(AtomicUsize::new(0));
        let (up, h) = (upstream.clone(), held.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                conns.spawn(serve(client, up.clone(), h.clone()));
            }
        });
        NeonGate {
            port,
            upstream,
            held,
            tasks: vec![task],
        }
    }

    /// The gate on the socket where compute_ctl connects, in `socket_dir`
    /// (compute_ctl makes the directory at launch, long before postgres
    /// starts: the gate binds as soon as it is there and handed to postgres'
    /// user, which compute_ctl checks first).
    pub fn serve_socket(&mut self, socket_dir: PathBuf) {
        use std::os::unix::fs::MetadataExt;
        let path = socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let (up, h) = (self.upstream.clone(), self.held.clone());
        self.tasks.push(tokio::spawn(async move {
            let ready = |dir: &Path| {
                std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() != 0)
            };
            while !ready(&socket_dir) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let listener = UnixListener::bind(&path).expect("binding the gate's socket");
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                conns.spawn(serve(client, up.clone(), h.clone()));
            }
        }));
    }

    /// How many connections the gate is holding now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The `neon.pageserver_connstring` postgres has loaded (a new backend's).
    pub async fn loaded(&self) -> String {
        loaded_pageservers(&self.upstream)
            .await
            .expect("asking postgres for its pageserver")
    }
}

/// One client connection: held until the loaded pageservers answer, then
/// forwarded to postgres.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    upstream: Upstream,
    held: Arc<AtomicUsize>,
) {
    let mut holding = false;
    loop {
        let live = match loaded_pageservers(&upstream).await {
            Ok(list) => all_accept_tcp(&list).await,
            // Postgres not up yet (or going away): like a backend that
            // cannot start, nothing is answered.
            Err(_) => false,
        };
        if live {
            break;
        }
        if !holding {
            holding = true;
            held.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if holding {
        held.fetch_sub(1, Ordering::SeqCst);
    }
    let Ok(mut to_postgres) = UnixStream::connect(upstream.socket()).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut to_postgres).await;
}

async fn loaded_pageservers(upstream: &Upstream) -> Result<String, String> {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(&upstream.socket_dir)
        .port(upstream.port)
        .user(&upstream.superuser)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let row = client
        .query_one("SHOW neon.pageserver_connstring", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// Whether every pageserver of a (comma-separated) connstring accepts TCP.
async fn all_accept_tcp(connstrings: &str) -> bool {
    for url in connstrings.split(',').filter(|s| !s.trim().is_empty()) {
        let Some(addr) = host_port(url.trim()) else {
            return false;
        };
        let connect = TcpStream::connect(addr.as_str());
        match tokio::time::timeout(Duration::from_millis(300), connect).await {
            Ok(Ok(_)) => {}
            _ => return false,
        }
    }
    true
}

/// `host:port` of a `postgresql://[user@]host:port[/...]` URL.
fn host_port(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// A primary on the test pageserver behind the gate; postgres on a hidden
/// port and socket.
async fn behind_the_gate(spec: Value) -> (Compute, NeonGate, tempfile::TempDir) {
    let tools = test_dir();
    let hidden = free_port();
    let sock = tools.path().join("hidden-socket");
    std::fs::create_dir(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let server_args = format!(
        "-c port={hidden} -c unix_socket_directories={}",
        sock.display()
    );
    let pgbin = wrapper_pgbin_serving(tools.path(), Sync::Ok, &server_args);
    let mut gate = NeonGate::start(hidden, &sock, "postgres").await;
    let mut opts = neon_opts(spec, &pgbin, &[]);
    opts.pg_port = Some(gate.port);
    let mut c = Compute::start_with(opts);
    gate.serve_socket(c.socket_dir());
    c.wait_running();
    (c, gate, tools)
}

fn with_work_mem(mut spec: Value, value: &str) -> Value {
    spec["cluster"]["settings"] =
        json!([{"name": "work_mem", "value": value, "vartype": "integer"}]);
    spec
}

/// `/configure`, bounded: a hang is a failure that says what the gate held.
async fn configure_within(c: &Compute, gate: &NeonGate, spec: &Value) -> (u16, Value) {
    let limit = Duration::from_secs(30);
    match tokio::time::timeout(limit, c.configure(spec)).await {
        Ok(answer) => answer,
        Err(_) => panic!(
            "no answer to /configure within {limit:?}; the gate holds {} connections \
             (a SQL connection opened while postgres still had the dead pageserver loaded)",
            gate.held()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_moves_off_a_dead_pageserver_and_applies_the_new_spec() {
    let old = pageserver(Behaviour::Normal).await;
    let new = pageserver(Behaviour::Normal).await;
    let spec = with_work_mem(neon_spec(&old, json!("Primary")), "4MB");
    let (c, gate, _tools) = behind_the_gate(spec.clone()).await;
    assert_eq!(gate.loaded().await, old.connstring());
    drop(old); // the old pageserver is gone

    let mut moved = with_work_mem(spec, "8MB");
    moved["pageserver_connstring"] = json!(new.connstring());
    moved["cluster"]["roles"] = json!([
        {"name": "app user", "encrypted_password": null},
        {"name": "newcomer", "encrypted_password": null}
    ]);
    moved["cluster"]["databases"] = json!([
        {"name": "app db", "owner": "app user"},
        {"name": "new db", "owner": "newcomer"}
    ]);
    let began = Instant::now();
    let (code, body) = configure_within(&c, &gate, &moved).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "running", "{body}");
    eprintln!("moved to the new pageserver in {:?}", began.elapsed());

    assert_eq!(gate.loaded().await, new.connstring());
    let client = c.client("postgres").await;
    let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "8MB");
    assert_eq!(c.db_owner("new db").await, "newcomer");
    assert_eq!(gate.held(), 0, "connections still held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_configuration_never_brings_back_a_dead_pageserver() {
    let old = pageserver(Behaviour::Normal).await;
    let new = pageserver(Behaviour::Normal).await;
    let spec = with_work_mem(neon_spec(&old, json!("Primary")), "4MB");
    let (c, gate, _tools) = behind_the_gate(spec.clone()).await;
    drop(old);

    // The move comes with a changed setting and a line postgres rejects (a
    // value statement_timeout cannot take).
    let mut moved = with_work_mem(spec, "8MB");
    moved["pageserver_connstring"] = json!(new.connstring());
    moved["cluster"]["postgresql_conf"] = json!("statement_timeout = 'forever'\n");
    let (code, body) = configure_within(&c, &gate, &moved).await;
    assert_eq!(code, 500, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("statement_timeout"), "{error}");
    // The rest of the configuration went back; the pageserver did not.
    assert_eq!(gate.loaded().await, new.connstring());
    let conf = std::fs::read_to_string(c.pgdata().join("postgresql.conf")).unwrap();
    assert!(!conf.contains("'forever'"), "{conf}");
    assert!(!conf.contains("work_mem = 8MB"), "{conf}");
    let client = c.client("postgres").await;
    let work_mem: String = client.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "4MB");
}
