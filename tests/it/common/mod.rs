//! Test harness: a real compute_ctl with a real postgres, on free ports in a
//! temporary directory, torn down on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SUPERUSER: &str = "cloud_admin";

pub use crate::ports::free_port;

/// The template cache shared by the tests (initdb once per test run).
pub fn shared_template_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("templates")
}

/// A temporary directory that the unprivileged postgres user can traverse.
pub fn test_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cc-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A compute_ctl process and what it logged.
pub struct Compute {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub http_port: u16,
    pub internal_port: u16,
    log: Log,
    pub exit: Option<ExitStatus>,
    pub superuser: String,
    /// How it was started, for [`Compute::respawn`].
    launch: Launch,
}

/// What compute_ctl wrote to stderr, line by line, read by a thread.
#[derive(Clone, Default)]
struct Log {
    lines: Arc<Mutex<Vec<String>>>,
    /// The reader saw the end of the pipe: every line is in.
    drained: Arc<std::sync::atomic::AtomicBool>,
    /// While set, the reader reads nothing (the pipe fills up, as behind a
    /// log collector that fell behind): [`Compute::pause_log_reader`].
    paused: Arc<std::sync::atomic::AtomicBool>,
}

impl Log {
    /// Waits until the reader has read the pipe to its end, after
    /// compute_ctl exited. At most a few seconds and no failure then: a
    /// process it left behind (killed outright) may hold the pipe open.
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.drained.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A compute_ctl command line: program, arguments, environment.
#[derive(Clone)]
struct Launch {
    program: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Launch {
    fn spawn(&self) -> (Child, Log) {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn compute_ctl");
        let log = Log::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                while sink.paused.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                sink.lines.lock().unwrap().push(line);
            }
            sink.drained
                .store(true, std::sync::atomic::Ordering::SeqCst);
        });
        (child, log)
    }
}

/// Options for starting a compute.
pub struct Opts {
    pub spec: Option<serde_json::Value>,
    pub extra_args: Vec<String>,
    pub template_cache: PathBuf,
    pub wrap: Option<Vec<String>>,
    pub failure_exit_delay: u64,
    /// A ComputeConfig given with `-c` (instead of `spec` with `-S`).
    pub config: Option<serde_json::Value>,
    /// The connstr's user: the superuser.
    pub superuser: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// `--terminate-linger` (None: the default, 30 s after a fast
    /// `/terminate`); the tests exit at once unless they test the linger.
    pub terminate_linger: Option<String>,
    /// The port of the `-C` connstr (None: a free one). A test that puts
    /// something in front of postgres listens on it first.
    pub pg_port: Option<u16>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            spec: None,
            extra_args: vec![],
            template_cache: shared_template_cache(),
            wrap: None,
            failure_exit_delay: 0,
            config: None,
            superuser: SUPERUSER.into(),
            env: vec![],
            terminate_linger: Some("0".into()),
            pg_port: None,
        }
    }
}

impl Compute {
    /// Starts compute_ctl with `spec` given by `-S` (or none).
    pub fn start(spec: Option<serde_json::Value>) -> Compute {
        Compute::start_with(Opts {
            spec,
            ..Opts::default()
        })
    }

    pub fn start_with(opts: Opts) -> Compute {
        let dir = test_dir();
        let port = opts.pg_port.unwrap_or_else(free_port);
        let http_port = free_port();
        let internal_port = free_port();
        // Postgres' socket, where the superuser is trusted: compute_ctl makes
        // the directory, private to postgres' user.
        let sock = dir.path().join("sock");
        let mut args: Vec<String> = vec![
            "-D".into(),
            dir.path().join("pgdata").display().to_string(),
            "-C".into(),
            format!("postgresql://{}@127.0.0.1:{port}/postgres", opts.superuser),
            "--external-http-port".into(),
            http_port.to_string(),
            "--internal-http-port".into(),
            internal_port.to_string(),
            "--template-cache".into(),
            opts.template_cache.display().to_string(),
            "--socket-dir".into(),
            sock.display().to_string(),
            "--failure-exit-delay".into(),
            opts.failure_exit_delay.to_string(),
        ];
        if let Some(linger) = &opts.terminate_linger {
            args.push("--terminate-linger".into());
            args.push(linger.clone());
        }
        if let Some(spec) = &opts.spec {
            let path = dir.path().join("spec.json");
            std::fs::write(&path, serde_json::to_string_pretty(spec).unwrap()).unwrap();
            args.push("-S".into());
            args.push(path.display().to_string());
        }
        if let Some(config) = &opts.config {
            let path = dir.path().join("config.json");
            std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
            args.push("-c".into());
            args.push(path.display().to_string());
        }
        args.extend(opts.extra_args);
        let bin = env!("CARGO_BIN_EXE_compute_ctl").to_string();
        let mut program = opts.wrap.clone().unwrap_or_default();
        program.push(bin);
        let launch = Launch {
            program,
            args,
            env: opts.env,
        };
        let (child, log) = launch.spawn();
        Compute {
            child: Some(child),
            dir,
            port,
            http_port,
            internal_port,
            log,
            exit: None,
            superuser: opts.superuser,
            launch,
        }
    }

    /// Starts compute_ctl again with the same command line (same PGDATA,
    /// ports and spec), after the previous process ended (or was killed:
    /// whatever it left behind is left as it is). The log starts afresh.
    pub fn respawn(&mut self) {
        if let Some(mut old) = self.child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let (child, log) = self.launch.spawn();
        self.child = Some(child);
        self.log = log;
        self.exit = None;
    }

    pub fn pgdata(&self) -> PathBuf {
        self.dir.path().join("pgdata")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Everything compute_ctl logged so far.
    pub fn log(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// Stops reading compute_ctl's stderr (`true`) or reads on (`false`):
    /// stopped, the pipe fills up and compute_ctl's writes to it would wait.
    pub fn pause_log_reader(&self, paused: bool) {
        self.log
            .paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            if let Some(status) = self.try_exit() {
                self.log.drain();
                if self.log().contains(needle) {
                    return;
                }
                panic!(
                    "compute_ctl exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "no {needle:?} in the log after {timeout:?}:\n{}",
            self.log()
        );
    }

    /// Waits until the compute is Running.
    pub fn wait_running(&mut self) {
        self.wait_for_log("to=running", Duration::from_secs(60));
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.exit = child.try_wait().ok().flatten();
            }
        }
        self.exit
    }

    /// Waits for compute_ctl to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                self.log.drain();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "compute_ctl still running after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a `/database_schema` dump of `db` and reads its first chunk:
    /// the pg_dump behind it is running; the rest is left unread.
    pub async fn start_schema_dump(&self, db: &str) -> reqwest::Response {
        let url = self.url(&format!("/database_schema?database={db}"));
        let mut resp = http().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let first = resp.chunk().await.unwrap().unwrap();
        assert!(!first.is_empty());
        resp
    }

    /// The pid of postgres' `backend_type` process (e.g. `checkpointer`).
    pub async fn backend_pid(&self, backend_type: &str) -> i32 {
        self.client("postgres")
            .await
            .query_one(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = $1",
                &[&backend_type],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Waits for compute_ctl to exit with `code`; the log shows otherwise.
    pub fn expect_exit(&mut self, code: i32, timeout: Duration) {
        let status = self.wait_exit(timeout);
        assert_eq!(status.code(), Some(code), "{}", self.log());
    }

    /// Asserts that compute_ctl logged `needle`; the log shows otherwise.
    pub fn assert_logged(&self, needle: &str) {
        assert!(
            self.log().contains(needle),
            "no {needle:?} in:\n{}",
            self.log()
        );
    }

    pub fn signal(&self, sig: i32) {
        send_signal(self.pid() as i32, sig);
    }

    /// SIGTERM, then waits for compute_ctl to exit 0 (a clean stop).
    pub fn terminate(&mut self) {
        self.signal(15);
        self.expect_exit(0, Duration::from_secs(30));
    }

    /// The directory of postgres' socket (the superuser's only door), as
    /// compute_ctl sees it (through /proc when it runs in a mount namespace
    /// of its own, as in the disk-full tests).
    pub fn socket_dir(&self) -> PathBuf {
        let sock = self.dir.path().join("sock");
        let Some(child) = self.child.as_ref().filter(|_| !sock.exists()) else {
            return sock;
        };
        let relative = sock.strip_prefix("/").unwrap_or(&sock);
        Path::new(&format!("/proc/{}/root", child.id())).join(relative)
    }

    /// The connection string of a role: the superuser's through the
    /// socket, anyone else's over loopback.
    pub fn connstr(&self, user: &str, db: &str) -> String {
        let host = match user == self.superuser {
            true => self.socket_dir().display().to_string(),
            false => "127.0.0.1".into(),
        };
        format!(
            "host={host} port={} user='{}' dbname='{}'",
            self.port,
            escape_kv(user),
            escape_kv(db)
        )
    }

    /// A superuser client to `db`.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        connect(&self.connstr(&self.superuser, db))
            .await
            .expect("superuser connection")
    }

    /// The owner of database `db`, asked from inside it.
    pub async fn db_owner(&self, db: &str) -> String {
        self.client(db)
            .await
            .query_one(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .expect("owner query")
            .get(0)
    }

    /// The postmaster's pid, from postmaster.pid.
    pub fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pgdata().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

/// HTTP helpers.
impl Compute {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn internal_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.internal_port)
    }

    /// GET `path` on the external port; (status, JSON or text body).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        into_pair(http().get(self.url(path)).send().await).await
    }

    /// POST a JSON body to `path` on the internal port.
    pub async fn internal_post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        into_pair(http().post(self.internal_url(path)).json(body).send().await).await
    }

    /// POST `/refresh_configuration` (no body) on the internal port.
    pub async fn refresh_configuration(&self) -> (u16, serde_json::Value) {
        into_pair(
            http()
                .post(self.internal_url("/refresh_configuration"))
                .send()
                .await,
        )
        .await
    }

    /// How many times the compute moved from `from` to `to`, as
    /// `compute_ctl_transitions_total` counts it.
    pub async fn transitions(&self, from: &str, to: &str) -> u64 {
        let line = format!("compute_ctl_transitions_total{{from=\"{from}\",to=\"{to}\"}} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&line)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// POST `/refresh_configuration`, which answers at once, and waits until
    /// the refresh has brought the compute back to running (a refresh ends
    /// in Running once more than before); the `/status` then.
    pub async fn refresh_and_wait(&self) -> serde_json::Value {
        let before = self.transitions("refresh_configuration", "running").await;
        let (code, body) = self.refresh_configuration().await;
        assert_eq!(code, 200, "{body}\n{}", self.log());
        crate::wait::until(
            "the refresh to end in running",
            Duration::from_secs(60),
            async || self.transitions("refresh_configuration", "running").await > before,
        )
        .await;
        self.get("/status").await.1
    }

    /// The Prometheus text of `/metrics` on the external port (open even
    /// while the authenticated routes are closed); it must answer 200.
    pub async fn metrics(&self) -> String {
        let resp = http()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().await.expect("the body of /metrics")
    }

    /// POST a JSON body to `path` on the external port.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        into_pair(http().post(self.url(path)).json(body).send().await).await
    }

    /// POST a spec to /configure.
    pub async fn configure(&self, spec: &serde_json::Value) -> (u16, serde_json::Value) {
        self.post("/configure", &serde_json::json!({ "spec": spec }))
            .await
    }

    /// Waits until /status answers `want`.
    pub async fn wait_status(&self, want: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(resp) = http().get(self.url("/status")).send().await {
                if let Ok(body) = resp.json::<serde_json::Value>().await {
                    if body["status"] == want {
                        return body;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "status never became {want}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until `sql` (a `SELECT count(*) ...`) answers `want` on `client`;
/// panics with `what` after `timeout`. For data that arrives by replication.
pub async fn wait_for_count(
    client: &tokio_postgres::Client,
    sql: &str,
    want: i64,
    timeout: Duration,
    what: &str,
) {
    crate::wait::until(what, timeout, async || {
        client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) == want
    })
    .await
}

pub fn http() -> reqwest::Client {
    // reqwest's TLS needs a crypto provider chosen (the product uses ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Status and body (JSON when it parses, else a JSON string of the text).
pub async fn into_pair(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> (u16, serde_json::Value) {
    let resp = resp.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

impl Drop for Compute {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            // Immediate shutdown: compute_ctl stops postgres and exits.
            self.signal(3);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.try_exit().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(pid) = self.postmaster_pid() {
            if process_alive(pid) {
                send_signal(pid, 9);
            }
        }
    }
}

/// libpq key=value quoting.
pub fn escape_kv(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

pub async fn connect(connstr: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(connstr, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub fn process_alive(pid: i32) -> bool {
    compute_ctl::testing::process::alive(pid)
}

/// Pids of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<i32> {
    let needle = needle.display().to_string();
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(&needle) && process_alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}

/// Sends signal number `sig` to process `pid` by running `kill`. A process
/// already gone is no error: callers signal processes that may have exited.
pub fn send_signal(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A minimal valid spec with these roles and databases.
pub fn spec(roles: serde_json::Value, databases: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "format_version": 1.0,
        "cluster": {"roles": roles, "databases": databases, "settings": []}
    })
}

/// An empty replica's spec that streams from `primary` as
/// `application_name` (how the primary's `pg_stat_replication` names it).
pub fn replica_spec_of(primary: &Compute, application_name: &str) -> serde_json::Value {
    let mut replica = spec(serde_json::json!([]), serde_json::json!([]));
    replica["mode"] = serde_json::json!("Replica");
    replica["primary_connstring"] = serde_json::json!(format!(
        "host={} port={} user={SUPERUSER} application_name={application_name}",
        primary.socket_dir().display(),
        primary.port
    ));
    replica
}
