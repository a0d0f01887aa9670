//! Extensions on demand (the reference's remote extensions): a compute
//! image cannot ship every extension, so what the spec's
//! `remote_extensions` allows is fetched from an extension store (any
//! static HTTP server, `-r/--remote-ext-base-url`) when it is needed. At
//! start, before postgres: the spec's control files are written where the
//! installation has none, and the libraries `shared_preload_libraries`
//! takes from the store are downloaded, concurrently. Later, Neon's postgres
//! asks for a missing file through the internal `/extension_server/` route.
//!
//! An archive lives at `<base>/<build tag>/<arch>/v<major>/extensions/<extension>.tar.zst`.
//! One archive is fetched once: a second request for it while it downloads
//! waits for that download (within a bound, where the reference can wait
//! forever), and one completed is not fetched again.

mod archive;
mod fetch;
mod resolve;
#[cfg(test)]
mod tests;

pub use fetch::{count as count_request, parse_base_url, register, Limits};
pub use resolve::NotFound;

use crate::pgbin::PgBin;
use crate::safe_fs::Dir;
use crate::spec::{RemoteExtensions, ValidSpec};
use anyhow::{anyhow, bail, Context, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The extension store and what was fetched from it.
pub struct Store {
    /// The store's URL and the client that fetches from it; none when `-r`
    /// named no store, so that a compute without one builds no HTTP client
    /// (which reads the system's CA certificates: ~25 ms of every start).
    remote: Option<Remote>,
    /// `<build tag>/<arch>/v<major>/extensions/`.
    prefix: String,
    pg_config: PathBuf,
    /// The installation's directories, read from `pg_config` once.
    dirs: OnceCell<Dirs>,
    limits: Limits,
    /// Per archive name: held by its download; true once completed.
    downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<bool>>>>,
}

/// Where the store is and how it is reached.
struct Remote {
    base: reqwest::Url,
    client: reqwest::Client,
}

/// Where archives are unpacked and where their files go.
#[derive(Debug, Clone)]
struct Dirs {
    /// `<sharedir>/extension`.
    extension: PathBuf,
    /// `<pkglibdir>`.
    lib: PathBuf,
    /// The installation's `download_extensions` (beside its `bin`).
    download: PathBuf,
}

/// Why [`Store::download`] gave no archive.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No `-r`.
    #[error("remote storage is not configured")]
    NotConfigured,
    /// The spec has no `remote_extensions`.
    #[error("information about remote extensions is unavailable")]
    NoRemoteExtensions,
    /// Not allowed, or unknown.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// The download or the unpacking failed.
    #[error("error downloading extension {extension:?}: {cause:#}")]
    Failed {
        /// The extension.
        extension: String,
        /// Why.
        cause: anyhow::Error,
    },
}

/// The startup figures of `/metrics.json`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Milliseconds the control files and preload libraries took.
    pub load_ms: u64,
    /// Archives downloaded (or found downloaded already).
    pub downloaded: u64,
    /// Largest archive, compressed bytes.
    pub largest: u64,
    /// All archives, compressed bytes.
    pub total: u64,
}

impl Store {
    /// A store at `base` (None: not configured) for `pgbin`'s installation,
    /// whose archives are those of `build_tag`.
    pub fn new(
        base: Option<reqwest::Url>,
        pgbin: &PgBin,
        build_tag: &str,
        limits: Limits,
    ) -> Result<Store> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let remote = match base {
            Some(base) => {
                // TLS through rustls with the ring provider (already in the
                // tree for JWT).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .connect_timeout(limits.timeout)
                    .build()
                    .context("building the HTTP client of the extension store")?;
                Some(Remote { base, client })
            }
            None => None,
        };
        Ok(Store {
            remote,
            prefix: format!("{build_tag}/{arch}/v{}/extensions/", pgbin.major),
            pg_config: pgbin.tool("pg_config"),
            dirs: OnceCell::new(),
            limits,
            downloads: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `-r` named a store.
    pub fn configured(&self) -> bool {
        self.remote.is_some()
    }

    /// The archive that `name` asks for (a library when `is_library`),
    /// fetched and installed unless it was already; its compressed size
    /// (0 when nothing was fetched).
    pub async fn request(
        &self,
        remote: Option<&RemoteExtensions>,
        name: &str,
        is_library: bool,
    ) -> Result<u64, Refused> {
        if !self.configured() {
            return Err(Refused::NotConfigured);
        }
        let remote = remote.ok_or(Refused::NoRemoteExtensions)?;
        let extension = resolve::extension_for(remote, name, is_library)?;
        self.download(&extension)
            .await
            .map_err(|cause| Refused::Failed { extension, cause })
    }

    /// Downloads and installs `extension`'s archive, once.
    async fn download(&self, extension: &str) -> Result<u64> {
        let Remote { base, client } = self
            .remote
            .as_ref()
            .ok_or_else(|| anyhow!("remote storage is not configured"))?;
        let filename = format!("{extension}.tar.zst");
        let slot = self
            .downloads
            .lock()
            .entry(filename.clone())
            .or_default()
            .clone();
        // A download of it in progress: waited for, within its own bound
        // and a little more; then this request fails rather than hang.
        let wait = self.limits.timeout + Duration::from_secs(5);
        let mut completed = tokio::time::timeout(wait, slot.lock()).await.map_err(|_| {
            anyhow!("{filename} is still being downloaded by another request after {wait:?}")
        })?;
        if *completed {
            return Ok(0);
        }
        let url = base
            .join(&format!("{}{filename}", self.prefix))
            .with_context(|| format!("joining {filename} to the store's URL"))?;
        let began = Instant::now();
        let body = fetch::get(client, &url, &filename, &self.limits).await?;
        let size = body.len() as u64;
        let dirs = self.dirs().await?.clone();
        let max_unpacked = self.limits.max_bytes.saturating_mul(UNPACKED_RATIO);
        let installed = tokio::task::spawn_blocking(move || {
            let staging = staging_dir(&dirs.download)?;
            archive::unpack(&body, staging.path(), max_unpacked)?;
            archive::install(
                staging.path(),
                &[("share/extension", &dirs.extension), ("lib", &dirs.lib)],
            )
        })
        .await
        .context("unpacking the archive")??;
        *completed = true;
        tracing::info!(
            %url, bytes = size, ms = began.elapsed().as_millis() as u64,
            moved = installed.moved.len(), kept = installed.kept.len(),
            "remote extension {extension} installed"
        );
        Ok(size)
    }

    /// The installation's directories, as its `pg_config` reports them (it
    /// follows a copied installation as postgres does: paths relative to
    /// its binary).
    async fn dirs(&self) -> Result<&Dirs> {
        self.dirs
            .get_or_try_init(|| async {
                let out = crate::process::output(
                    tokio::process::Command::new(&self.pg_config)
                        .arg("--sharedir")
                        .arg("--pkglibdir"),
                )
                .await
                .with_context(|| format!("running {}", self.pg_config.display()))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let mut lines = text.lines();
                let (Some(share), Some(lib), true) =
                    (lines.next(), lines.next(), out.status.success())
                else {
                    bail!(
                        "{} --sharedir --pkglibdir failed: {}",
                        self.pg_config.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                };
                // <install>/bin/pg_config: the download directory is <install>/download_extensions.
                let install = self
                    .pg_config
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("/"));
                Ok(Dirs {
                    extension: PathBuf::from(share).join("extension"),
                    lib: PathBuf::from(lib),
                    download: install.join("download_extensions"),
                })
            })
            .await
    }

    /// Before postgres starts: the spec's control files where the
    /// installation has none, then the preload libraries the store provides,
    /// downloaded concurrently. A library the spec does not allow fails the
    /// start with its name, and so does one whose download failed and that
    /// the installation lacks.
    pub async fn before_start(self: Arc<Self>, spec: Arc<ValidSpec>) -> Result<Figures> {
        let began = Instant::now();
        let mut figures = Figures::default();
        let Some(remote) = &spec.remote_extensions else {
            return Ok(figures);
        };
        let dirs = self.dirs().await?.clone();
        let control = remote.clone();
        let written = tokio::task::spawn_blocking(move || write_control_files(&control, &dirs))
            .await
            .context("writing the control files")??;
        if written > 0 {
            tracing::info!(
                files = written,
                "control files of remote extensions written"
            );
        }
        if self.configured() {
            let libraries = resolve::preload_libraries(&spec, remote);
            let mut wanted = Vec::new();
            for library in &libraries {
                let extension = resolve::extension_for(remote, library, true).map_err(|e| {
                    anyhow!("shared_preload_libraries names {library}, which remote_extensions does not allow: {e}")
                })?;
                wanted.push((library, extension));
            }
            let downloads = wanted.iter().map(|(_, extension)| self.download(extension));
            let results = futures_util::future::join_all(downloads).await;
            let lib_dir = &self.dirs().await?.lib;
            for ((library, extension), result) in wanted.iter().zip(results) {
                match result {
                    Ok(size) => {
                        figures.downloaded += 1;
                        figures.largest = figures.largest.max(size);
                        figures.total += size;
                    }
                    Err(e) if lib_dir.join(format!("{library}.so")).is_file() => tracing::warn!(
                        "downloading {extension} for the preload library {library}: {e:#}; the installation's is used"
                    ),
                    Err(e) => bail!("downloading {extension} for the preload library {library}: {e:#}"),
                }
            }
        }
        figures.load_ms = began.elapsed().as_millis() as u64;
        Ok(figures)
    }
}

/// How much larger than the download limit an archive may unpack to.
const UNPACKED_RATIO: u64 = 8;

/// A fresh staging directory in `download` (made if missing), removed when
/// dropped. As root, `download` is made ours alone first: nothing else may
/// change what is unpacked before it moves into the installation.
fn staging_dir(download: &Path) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(download) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", download.display())),
    }
    let dir = Dir::open(download)?;
    if nix::unistd::geteuid().is_root() && !dir.ours_alone()? {
        nix::unistd::fchown(
            dir.fd(),
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .and_then(|()| {
            nix::sys::stat::fchmod(dir.fd(), nix::sys::stat::Mode::from_bits_truncate(0o700))
        })
        .with_context(|| format!("taking {} back", download.display()))?;
    }
    tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(download)
        .with_context(|| format!("creating a staging directory in {}", download.display()))
}

/// Writes each allowed extension's control files where the installation
/// has no such file (the local one wins); how many were written.
fn write_control_files(remote: &RemoteExtensions, dirs: &Dirs) -> Result<usize> {
    let target = Dir::open(&dirs.extension)?;
    let staging = staging_dir(&dirs.download)?;
    let staged = Dir::open(staging.path())?;
    let mut written = 0;
    for (extension, data) in &remote.extension_data {
        if !resolve::control_files_allowed(remote, extension) {
            continue;
        }
        for (file, content) in &data.control_data {
            staged.replace(file, content.as_bytes(), 0o644, None)?;
            if archive::place(&staged, file, &target)? {
                written += 1;
            } else {
                tracing::warn!(
                    file = %dirs.extension.join(file).display(),
                    "control file exists both locally and remotely; the local one is kept"
                );
            }
        }
    }
    Ok(written)
}
