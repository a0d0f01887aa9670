//! Cold start benchmark: compute_ctl from spawn to Running with a small spec,
//! beside the official-image way (initdb, start, create role and database)
//! and the floor (copy a ready PGDATA, start postgres, run the same SQL).
//! The floor copies with compute_ctl's own copy routine, the fastest we have.
//!
//! Also a start on Neon storage: the test pageserver (tests/it/fake_pageserver)
//! serves a basebackup of a fresh initdb, a stand-in `postgres` answers
//! `--sync-safekeepers` (it checks postgresql.conf names the safekeepers, as
//! Neon's does), and the share of each step (sync, basebackup, postgres
//! start, catalog) comes from the compute's `/metrics.json`.
//!
//! Run: `cargo bench --bench startup` (ITERATIONS=N to change the sample
//! size, default 20; NEON=0 skips the Neon part; NEON_LOG=path keeps the
//! log of the last Neon start there). Prints the medians, the
//! ratios and where the time goes; asserts nothing.

mod common;
use common::*;
#[path = "common/chart.rs"]
mod chart;

#[path = "../tests/it/fake_pageserver/mod.rs"]
mod fake_pageserver;

use nix::unistd::{Uid, User};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUPERUSER: &str = "cloud_admin";
const SQL: &[&str] = &[
    "CREATE ROLE alice WITH LOGIN PASSWORD 'md5a4f3a4c1f6a0b5f7d2b8a9c3e6d1f0b2'",
    "CREATE DATABASE app OWNER alice",
];

fn main() {
    install_crypto();
    let iterations = env_or("ITERATIONS", 20);
    let bindir = bindir();
    let pg_user = Uid::effective()
        .is_root()
        .then(|| User::from_name("postgres").unwrap().expect("user postgres"));
    let work = bench_dir("cc-bench-");
    chmod(work.path(), 0o755);
    let cache = work.path().join("templates");
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // Warm-up: makes compute_ctl's template (a one-time cost per machine and version).
    compute_ctl_start(work.path(), &cache);
    let ready = work.path().join("ready-pgdata");
    make_ready_pgdata(&bindir, &ready, pg_user.as_ref());

    let load_before = load_average();
    let mut ours = vec![];
    let mut official = vec![];
    let mut floor = vec![];
    let (mut our_phases, mut floor_phases) = (vec![], vec![]);
    for i in 0..iterations {
        let (t, p) = compute_ctl_start(work.path(), &cache);
        ours.push(t);
        our_phases.push(p);
        official.push(official_way(
            &bindir,
            work.path(),
            pg_user.as_ref(),
            &runtime,
        ));
        let (t, p) = floor_way(&bindir, &ready, work.path(), pg_user.as_ref(), &runtime);
        floor.push(t);
        floor_phases.push(p);
        eprintln!(
            "run {}: compute_ctl {:.1} ms, official {:.1} ms, floor {:.1} ms",
            i + 1,
            ms(ours[i]),
            ms(official[i]),
            ms(floor[i])
        );
    }
    let mut neon = vec![];
    let mut steps = vec![];
    let mut bb_phases = vec![];
    let neon_tools = NeonTools::new(work.path(), &runtime);
    let neon_runs = if env_or("NEON", 1) == 0 {
        0
    } else {
        iterations
    };
    for i in 0..neon_runs {
        let (t, s, p) = neon_tools.start(work.path());
        bb_phases.push(p);
        eprintln!("run {}: compute_ctl on Neon storage {:.1} ms", i + 1, ms(t));
        neon.push(t);
        steps.push(s);
    }
    let load_after = load_average();
    let (o, f, m) = (median(&mut ours), median(&mut official), median(&mut floor));
    println!("cold start, spawn to Running with 1 role and 1 database ({iterations} interleaved runs, medians; load average {load_before} before, {load_after} after):");
    println!("  compute_ctl (spare or copy):       {:8.1} ms", ms(o));
    println!("  official-image way (initdb+start): {:8.1} ms", ms(f));
    println!("  floor (copy ready PGDATA + start): {:8.1} ms", ms(m));
    println!(
        "  compute_ctl / floor:     {:.2}x   (target <= 0.15x)",
        o.as_secs_f64() / m.as_secs_f64()
    );
    println!(
        "  official / compute_ctl:  {:.2}x   (target >= 8x)",
        f.as_secs_f64() / o.as_secs_f64()
    );
    println!("  where the time goes (medians of each step, ms):");
    println!(
        "    {:<12} {:>6} {:>6} {:>8} {:>9} {:>8} {:>8}",
        "", "init", "copy", "prepare", "postgres", "connect", "catalog"
    );
    for (label, phases) in [("compute_ctl", &our_phases), ("floor", &floor_phases)] {
        let med = |f: fn(&Phases) -> f64| {
            let mut v: Vec<f64> = phases.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "    {label:<12} {:>6.1} {:>6.1} {:>8.1} {:>9.1} {:>8.1} {:>8.1}",
            med(|p| p.init),
            med(|p| p.copy),
            med(|p| p.prepare),
            med(|p| p.postgres),
            med(|p| p.connect),
            med(|p| p.catalog)
        );
    }
    println!(
        "    (compute_ctl: prepare holds the spec's and the template's checks and the copy, \
         or the claim of a spare copy; catalog holds its first connection)"
    );
    println!(
        "  compute_ctl runs that claimed a spare: {} of {}; that left a spare made for the next: {} of {}",
        our_phases.iter().filter(|p| p.claimed).count(),
        our_phases.len(),
        our_phases.iter().filter(|p| p.spare_made).count(),
        our_phases.len()
    );
    println!(
        "  compute_ctl runs whose database was the template's spare database (no CREATE DATABASE): {} of {}",
        our_phases.iter().filter(|p| p.spare_db).count(),
        our_phases.len()
    );
    write_phases_chart(&our_phases, &floor_phases, &load_before);
    if neon.is_empty() {
        return;
    }
    let n = median(&mut neon);
    println!("  compute_ctl on Neon storage:       {:8.1} ms", ms(n));
    println!("  Neon start, steps (medians of /metrics.json, share of total_startup_ms):");
    let total = median_of(&steps, "total_startup_ms").max(1);
    for (label, field) in [
        ("sync safekeepers", "sync_safekeepers_ms"),
        ("basebackup", "basebackup_ms"),
        ("postgres start", "start_postgres_ms"),
        ("catalog", "config_ms"),
        ("total (spec to Running)", "total_startup_ms"),
    ] {
        let v = median_of(&steps, field);
        println!(
            "    {label:<24} {v:6} ms  {:5.1}%",
            100.0 * v as f64 / total as f64
        );
    }
    println!(
        "    basebackup size {} bytes, pageserver connect {} us",
        median_of(&steps, "basebackup_bytes"),
        median_of(&steps, "pageserver_connect_micros")
    );
    let med = |f: fn(&BasebackupPhases) -> f64| {
        let mut v: Vec<f64> = bb_phases.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "    basebackup phases (ms): connect {:.1}, first byte {:.1}, stream {:.1}, unpack after the stream {:.1}, fsync {:.1}",
        med(|p| p.connect),
        med(|p| p.first_byte),
        med(|p| p.stream),
        med(|p| p.unpack),
        med(|p| p.fsync)
    );
    println!(
        "  Neon start / local start: {:.2}x   (target <= 2x)",
        n.as_secs_f64() / o.as_secs_f64()
    );
}

/// `docs/startup-phases.svg`: the medians of each phase of compute_ctl's
/// cold start and of the floor's, as printed above.
fn write_phases_chart(ours: &[Phases], floor: &[Phases], load: &str) {
    let med = |phases: &[Phases], f: fn(&Phases) -> f64| {
        let mut v: Vec<f64> = phases.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/startup-phases.svg");
    let title = format!(
        "Cold start to Running, 1 role + 1 database: medians of {} runs (load average {load})",
        ours.len()
    );
    chart::stacked_bars(
        &path,
        &title,
        "ms",
        &[
            chart::Bar {
                name: "compute_ctl",
                parts: vec![
                    ("init", med(ours, |p| p.init)),
                    ("prepare / copy", med(ours, |p| p.prepare)),
                    ("postgres start", med(ours, |p| p.postgres)),
                    ("catalog / SQL", med(ours, |p| p.catalog)),
                ],
            },
            chart::Bar {
                name: "floor",
                parts: vec![
                    ("prepare / copy", med(floor, |p| p.copy)),
                    ("postgres start", med(floor, |p| p.postgres)),
                    ("first connection", med(floor, |p| p.connect)),
                    ("catalog / SQL", med(floor, |p| p.catalog)),
                ],
            },
        ],
    );
}

fn median_of(steps: &[serde_json::Value], field: &str) -> u64 {
    let mut v: Vec<u64> = steps.iter().filter_map(|s| s[field].as_u64()).collect();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The Neon storage stand-ins: a test pageserver with an initdb archive, and
/// a pgbin whose `postgres` answers `--sync-safekeepers`.
struct NeonTools {
    pageserver: fake_pageserver::FakePageserver,
    pgbin: PathBuf,
}

const SAFEKEEPERS: &str = "sk-1:5454,sk-2:5454";
const TENANT: &str = "0123456789abcdef0123456789abcdef";

impl NeonTools {
    fn new(work: &Path, runtime: &tokio::runtime::Runtime) -> NeonTools {
        let archive = fake_pageserver::Archive::Bytes(fake_pageserver::initdb_archive());
        let pageserver = runtime.block_on(fake_pageserver::FakePageserver::start(
            fake_pageserver::Options::new(archive),
        ));
        let bin = work.join("neon-bin");
        std::fs::create_dir(&bin).unwrap();
        let real = fake_pageserver::pg_bindir();
        for tool in ["initdb", "pg_controldata", "pg_dump", "pg_basebackup"] {
            std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).unwrap();
        }
        let script = format!(
            "#!/bin/sh\n\
             if [ \"$1\" = \"--sync-safekeepers\" ]; then\n\
               grep -qxF \"neon.safekeepers = '{SAFEKEEPERS}'\" \"$PGDATA/postgresql.conf\" || exit 1\n\
               echo 0/16B3748; exit 0\n\
             fi\n\
             exec {}/postgres \"$@\"\n",
            real.display()
        );
        std::fs::write(bin.join("postgres"), script).unwrap();
        chmod(&bin.join("postgres"), 0o755);
        NeonTools {
            pageserver,
            pgbin: bin.join("postgres"),
        }
    }

    /// Spawn to Running on Neon storage, the compute's `/metrics.json`, and
    /// the basebackup's own phases (from its `basebackup done` log line).
    fn start(&self, work: &Path) -> (Duration, serde_json::Value, BasebackupPhases) {
        let dir = run_dir(work);
        let (port, http_port) = (free_port(), free_port());
        let spec = serde_json::json!({
            "format_version": 1.0,
            "tenant_id": TENANT,
            "timeline_id": TENANT,
            "pageserver_connstring": self.pageserver.connstring(),
            "safekeeper_connstrings": SAFEKEEPERS.split(',').collect::<Vec<_>>(),
            "storage_auth_token": "bench-token",
            "cluster": {
                "roles": [{"name": "alice", "encrypted_password": "a4f3a4c1f6a0b5f7d2b8a9c3e6d1f0b2"}],
                "databases": [{"name": "app", "owner": "alice"}]
            }
        });
        std::fs::write(dir.join("spec.json"), spec.to_string()).unwrap();
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_compute_ctl"))
            .arg("-D")
            .arg(dir.join("pgdata"))
            // The archive's superuser.
            .arg("-C")
            .arg(format!("postgresql://postgres@127.0.0.1:{port}/postgres"))
            .arg("-S")
            .arg(dir.join("spec.json"))
            .arg("-b")
            .arg(&self.pgbin)
            .arg("--socket-dir")
            .arg(dir.join("sock"))
            .args(["--external-http-port", &http_port.to_string()])
            .args(["--internal-http-port", &free_port().to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let elapsed = loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("to=running") => break started.elapsed(),
                Some(Ok(line)) => seen.push(line),
                _ => panic!(
                    "compute_ctl on Neon storage ended before Running:\n{}",
                    seen.join("\n")
                ),
            }
        };
        if let Ok(path) = std::env::var("NEON_LOG") {
            // The log of the last Neon start, to see where its time went.
            std::fs::write(path, seen.join("\n")).unwrap();
        }
        let phases = seen
            .iter()
            .find(|l| l.contains("basebackup done"))
            .map(|l| BasebackupPhases::of(l))
            .unwrap_or_default();
        let url = format!("http://127.0.0.1:{http_port}/metrics.json");
        let steps: serde_json::Value = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        for _ in lines.by_ref() {}
        child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (elapsed, steps, phases)
    }
}

/// The basebackup's own phases, in ms, as its log line tells them.
#[derive(Default, Clone, Copy)]
struct BasebackupPhases {
    connect: f64,
    first_byte: f64,
    stream: f64,
    unpack: f64,
    fsync: f64,
}

impl BasebackupPhases {
    fn of(line: &str) -> Self {
        let ms = |key: &str| field(line, key).unwrap_or(f64::NAN) / 1e3;
        BasebackupPhases {
            connect: ms("connect_us"),
            first_byte: ms("first_byte_us"),
            stream: ms("stream_us"),
            unpack: ms("unpack_us"),
            fsync: ms("fsync_us"),
        }
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn bindir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL under /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop().expect("a postgres installation")
}

fn as_user(mut cmd: Command, user: Option<&User>) -> Command {
    if let Some(u) = user {
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
    cmd
}

fn chown_r(path: &Path, user: Option<&User>) {
    if let Some(u) = user {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A fresh directory for one run, with a socket dir postgres can write.
fn run_dir(work: &Path) -> PathBuf {
    let dir = work.join(format!("run-{}", free_port()));
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o1777);
    dir
}

/// Where a start's time went, in ms: compute_ctl's from its log, the
/// floor's measured by the bench.
#[derive(Default, Clone)]
struct Phases {
    /// compute_ctl: spawn until the start began (flags, logger, HTTP
    /// listeners, `postgres --version`).
    init: f64,
    /// Copying the template, or claiming a spare copy made by the run
    /// before (compute_ctl: within `prepare`).
    copy: f64,
    /// compute_ctl: PGDATA was a spare claimed by a rename (not a copy).
    claimed: bool,
    /// compute_ctl: the next spare was complete before compute_ctl exited.
    spare_made: bool,
    /// compute_ctl: the spec's database was the template's spare database
    /// renamed, not a `CREATE DATABASE`.
    spare_db: bool,
    /// compute_ctl: the spec's check and the template's (together), then
    /// wipe, copy and configuration.
    prepare: f64,
    /// Postgres start until it accepts connections.
    postgres: f64,
    /// The floor: the first connection.
    connect: f64,
    /// compute_ctl: the catalog step (its first connection included); the
    /// floor: the SQL.
    catalog: f64,
}

/// The number after `key` in `line` (`key=12` or `key: 12`).
fn field(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start_matches([':', '=', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn compute_ctl_start(work: &Path, cache: &Path) -> (Duration, Phases) {
    let dir = run_dir(work);
    let port = free_port();
    let started = Instant::now();
    let mut child = spawn_one_role_compute(&dir, cache, port);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut phases = Phases::default();
    let mut total_startup = 0.0;
    let mut seen = Vec::new();
    let elapsed = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("to=running") => break started.elapsed(),
            Some(Ok(line)) => {
                seen.push(line.clone());
                if line.contains("PGDATA copied from the template") {
                    phases.copy = field(&line, " ms").unwrap_or(0.0);
                } else if line.contains("PGDATA claimed from a spare") {
                    phases.copy = field(&line, " ms").unwrap_or(0.0);
                    phases.claimed = true;
                } else if line.contains("made a spare PGDATA") {
                    phases.spare_made = true;
                } else if line.contains("spec databases taken from spares") {
                    phases.spare_db = true;
                } else if line.contains("PGDATA prepared") {
                    phases.prepare = field(&line, " ms").unwrap_or(0.0);
                } else if line.contains("compute is running") {
                    phases.postgres = field(&line, "start_postgres_ms").unwrap_or(0.0);
                    phases.catalog = field(&line, "config_ms").unwrap_or(0.0);
                    total_startup = field(&line, "total_startup_ms").unwrap_or(0.0);
                }
            }
            _ => panic!("compute_ctl ended before Running:\n{}", seen.join("\n")),
        }
    };
    phases.init = (ms(elapsed) - total_startup).max(0.0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // The next spare, made in the background: done before the exit, or abandoned.
    for line in lines.by_ref().map_while(Result::ok) {
        if line.contains("made a spare PGDATA") {
            phases.spare_made = true;
        }
    }
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (elapsed, phases)
}

fn make_ready_pgdata(bindir: &Path, dir: &Path, user: Option<&User>) {
    std::fs::create_dir(dir).unwrap();
    chmod(dir, 0o700);
    chown_r(dir, user);
    let status = as_user(Command::new(bindir.join("initdb")), user)
        .arg("-D")
        .arg(dir)
        .args(["-U", SUPERUSER, "--auth=trust", "--no-sync"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let conf = dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("listen_addresses = '127.0.0.1'\n");
    std::fs::write(&conf, text).unwrap();
}

fn start_postgres(
    bindir: &Path,
    pgdata: &Path,
    port: u16,
    sock: &Path,
    user: Option<&User>,
) -> Child {
    as_user(Command::new(bindir.join("postgres")), user)
        .arg("-D")
        .arg(pgdata)
        .args(["-p", &port.to_string(), "-k"])
        .arg(sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Connects, runs the SQL; returns when it connected.
async fn run_sql(port: u16) -> Instant {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let connected = Instant::now();
    tokio::spawn(conn);
    for sql in SQL {
        client.batch_execute(sql).await.unwrap();
    }
    connected
}

fn stop(mut pg: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pg.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    pg.wait().unwrap();
}

/// What the official postgres image's entrypoint does: initdb, start, create.
fn official_way(
    bindir: &Path,
    work: &Path,
    user: Option<&User>,
    rt: &tokio::runtime::Runtime,
) -> Duration {
    let dir = run_dir(work);
    let pgdata = dir.join("pgdata");
    let port = free_port();
    let started = Instant::now();
    std::fs::create_dir(&pgdata).unwrap();
    chmod(&pgdata, 0o700);
    chown_r(&pgdata, user);
    let status = as_user(Command::new(bindir.join("initdb")), user)
        .arg("-D")
        .arg(&pgdata)
        .args(["-U", SUPERUSER, "--auth=trust"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let status = as_user(Command::new(bindir.join("pg_ctl")), user)
        .arg("-D")
        .arg(&pgdata)
        .args([
            "-w",
            "-o",
            &format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ),
        ])
        .arg("start")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    rt.block_on(run_sql(port));
    let elapsed = started.elapsed();
    let _ = as_user(Command::new(bindir.join("pg_ctl")), user)
        .arg("-D")
        .arg(&pgdata)
        .args(["-m", "fast", "stop"])
        .stdout(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}

/// The floor: copy a ready PGDATA, start postgres, poll until it is ready, run the SQL.
fn floor_way(
    bindir: &Path,
    ready: &Path,
    work: &Path,
    user: Option<&User>,
    rt: &tokio::runtime::Runtime,
) -> (Duration, Phases) {
    let dir = run_dir(work);
    let pgdata = dir.join("pgdata");
    let port = free_port();
    let run_as = compute_ctl::testing::process::RunAs::detect("postgres").unwrap();
    let started = Instant::now();
    // The fastest copy we have (compute_ctl's own: parallel copy_file_range);
    // `cp -a` is several times slower here.
    std::fs::create_dir(&pgdata).unwrap();
    chmod(&pgdata, 0o700);
    chown_r(&pgdata, user);
    compute_ctl::testing::pgdata::copy_template(ready, &pgdata, run_as.as_ref()).unwrap();
    let copied = started.elapsed();
    let pg = start_postgres(bindir, &pgdata, port, &dir, user);
    loop {
        let pid_file = std::fs::read_to_string(pgdata.join("postmaster.pid")).unwrap_or_default();
        if pid_file.lines().nth(7).map(str::trim) == Some("ready") {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let up = started.elapsed();
    let connected = rt.block_on(run_sql(port)) - started;
    let elapsed = started.elapsed();
    stop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    let phases = Phases {
        copy: ms(copied),
        postgres: ms(up - copied),
        connect: ms(connected - up),
        catalog: ms(elapsed - connected),
        ..Phases::default()
    };
    (elapsed, phases)
}
