//! The image in a real container runtime: podman with runc, offline. Shared
//! by the container tests (container/image.rs) and benches/container.rs.
//!
//! The base is a Debian trixie (the Dockerfile's default, with PostgreSQL 17)
//! made by `mmdebstrap` (its tarball cached in
//! `target/container/`), the binary the one cargo built on the host for this
//! target (the test profile's for the tests, so CI builds nothing more; the
//! release one for the benchmark); the image is built from the repository's
//! Dockerfile with those as its base images.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The image the tests build.
pub const IMAGE: &str = "localhost/compute_ctl:test";
/// The Debian base, made by mmdebstrap.
pub const BASE: &str = "localhost/debian:trixie";
/// The Debian release of the base (the Dockerfile's default runtime's).
const SUITE: &str = "trixie";
const BUILDER: &str = "localhost/compute_ctl-builder:test";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn work() -> PathBuf {
    root().join("target/container")
}

/// Whether the runtime is usable here. Without root or the tools, says so
/// loudly and returns false, unless `CI` is set: then it panics, so CI never
/// passes without having run the container tests.
pub fn available() -> bool {
    let missing: Vec<&str> = ["podman", "runc", "mmdebstrap"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    let is_root = crate::needs::is_root();
    let why = format!(
        "the container tests need root and podman, runc, mmdebstrap (missing: {missing:?}, root: {is_root}); \
         .ci/run installs them"
    );
    crate::needs::needs(missing.is_empty() && is_root, &why)
}

/// Runs podman (runc, cgroupfs: what works on these machines) with `args`.
pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running podman")
}

/// Runs podman and panics with its output unless it succeeds; its stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawning a build tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Debian base image, imported from a cached mmdebstrap tarball (once
/// per process).
fn base_image() {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(make_base_image);
}

fn make_base_image() {
    if podman(&["image", "exists", BASE]).status.success() {
        return;
    }
    let tarball = work().join(format!("rootfs-{SUITE}.tar"));
    if !tarball.exists() {
        std::fs::create_dir_all(work()).unwrap();
        let partial = work().join(format!("rootfs-{SUITE}.partial.tar"));
        eprintln!(
            "making the Debian base with mmdebstrap (once; cached in {})",
            tarball.display()
        );
        run_ok(Command::new("mmdebstrap").args([
            "--variant=minbase",
            "--format=tar",
            SUITE,
            &partial.display().to_string(),
        ]));
        std::fs::rename(&partial, &tarball).unwrap();
    }
    podman_ok(&["import", &tarball.display().to_string(), BASE]);
}

/// One image build at a time: a Dockerfile build prunes the untagged images after it.
static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A builder image for the Dockerfile's build stage: the Debian base plus
/// `files` (absolute path, content, mode).
pub fn builder_image(tag: &str, files: &[(&str, &[u8], u32)]) {
    use std::os::unix::fs::PermissionsExt;
    base_image();
    let dir = tempfile::tempdir().unwrap();
    let mut containerfile = format!("FROM {BASE}\n");
    for (i, (dest, content, mode)) in files.iter().enumerate() {
        let path = dir.path().join(format!("file{i}"));
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        containerfile.push_str(&format!("COPY file{i} {dest}\n"));
    }
    std::fs::write(dir.path().join("Containerfile"), containerfile).unwrap();
    // Under the Dockerfile builds' lock: their prune must not remove the
    // layers this build is using ("layer not known", seen in CI).
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    podman_ok(&["build", "-t", tag, &dir.path().display().to_string()]);
}

/// The host's binary (built by cargo for this test or bench), stripped, in a
/// builder image: the build stage takes it instead of compiling.
fn binary_builder_image() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("compute_ctl");
    std::fs::copy(env!("CARGO_BIN_EXE_compute_ctl"), &bin).unwrap();
    // Debug symbols are not shipped (the Dockerfile's build stage strips too).
    let _ = Command::new("strip").arg(&bin).status();
    builder_image(
        BUILDER,
        &[("/compute_ctl", &std::fs::read(&bin).unwrap(), 0o755)],
    );
}

/// `podman build` of the repository's Dockerfile with these build
/// arguments (and the CA bundle as a secret) into `tag`.
pub fn build_dockerfile(tag: &str, build_args: &[String]) -> String {
    // One build at a time: the prune below must not race with another build.
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = vec![
        "build".to_string(),
        "--network".into(),
        "host".into(),
        "--format".into(),
        "docker".into(),
        "-t".into(),
        tag.into(),
    ];
    for a in build_args {
        args.push("--build-arg".into());
        args.push(a.clone());
    }
    if Path::new(CA_BUNDLE).exists() {
        // For HTTPS mirrors; a build secret is never stored in the image.
        args.push("--secret".into());
        args.push(format!("id=ca-bundle,src={CA_BUNDLE}"));
    }
    args.push(root().display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = podman_ok(&args);
    // Earlier builds, now untagged.
    let _ = podman(&["image", "prune", "-f"]);
    out
}

/// Builds the image once per process (apt's layer is cached by podman
/// between runs); returns its name.
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        base_image();
        binary_builder_image();
        build_dockerfile(
            IMAGE,
            &[
                format!("BUILDER_IMAGE={BUILDER}"),
                format!("RUNTIME_IMAGE={BASE}"),
            ],
        );
        eprintln!("image {IMAGE} ready in {:?}", started.elapsed());
    });
    IMAGE
}

pub use crate::ports::free_port;

/// A spec for the container: no roles, no databases, postgres on loopback.
pub fn small_spec() -> serde_json::Value {
    serde_json::json!({
        "format_version": 1.0,
        "cluster": {
            "cluster_id": "container", "name": "container",
            "roles": [], "databases": [],
            "settings": [{"name": "listen_addresses", "value": "127.0.0.1", "vartype": "string"}]
        }
    })
}

/// GET `path` on `127.0.0.1:port`: (status, body); None when nobody answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let resp = client.get(url).send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.unwrap_or_default()))
    })
}

/// A container of the image, removed (with its volumes) when dropped.
pub struct Container {
    /// Its name.
    pub name: String,
    /// Postgres' port.
    pub pg_port: u16,
    /// The external HTTP port.
    pub http_port: u16,
    _spec_dir: tempfile::TempDir,
}

impl Container {
    /// Starts the image detached, with `spec` mounted as a file and
    /// `podman run` options `extra` (e.g. `--user`).
    pub fn run(spec: &serde_json::Value, extra: &[&str]) -> Container {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "compute-ctl-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let spec_dir = tempfile::tempdir().unwrap();
        let spec_path = spec_dir.path().join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&spec_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (pg_port, http_port, internal) = (free_port(), free_port(), free_port());
        let mount = format!("{}:/etc/compute/spec.json:ro", spec_path.display());
        let env = [
            format!("COMPUTE_CTL_CONNSTR=postgresql://cloud_admin@127.0.0.1:{pg_port}/postgres"),
            format!("COMPUTE_CTL_EXTERNAL_HTTP_PORT={http_port}"),
            format!("COMPUTE_CTL_INTERNAL_HTTP_PORT={internal}"),
            "COMPUTE_CTL_SPEC_PATH=/etc/compute/spec.json".into(),
        ];
        let mut args: Vec<&str> = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            "-v",
            &mount,
        ];
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        args.extend(extra);
        args.push(image());
        podman_ok(&args);
        Container {
            name,
            pg_port,
            http_port,
            _spec_dir: spec_dir,
        }
    }

    /// GET `path` on the external port: (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }

    /// Waits until `/readyz` answers 200 (Running, postgres answering); the
    /// time it took.
    pub fn wait_ready(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.get("/readyz").is_some_and(|(code, _)| code == 200) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "container {} not ready after {timeout:?}; its log:\n{}",
                self.name,
                self.logs()
            );
            assert!(
                self.running(),
                "container {} exited:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the container is running.
    pub fn running(&self) -> bool {
        podman_ok(&["inspect", "--format", "{{.State.Running}}", &self.name]).trim() == "true"
    }

    /// Its exit code (once stopped).
    pub fn exit_code(&self) -> i32 {
        podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &self.name])
            .trim()
            .parse()
            .unwrap()
    }

    /// Everything it wrote on stdout and stderr.
    pub fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `podman stop` (SIGTERM, then SIGKILL after `grace`); how long it took.
    pub fn stop(&self, grace: u32) -> Duration {
        let started = Instant::now();
        podman_ok(&["stop", "-t", &grace.to_string(), &self.name]);
        started.elapsed()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-v", &self.name]);
    }
}
