//! The postgres installation compute_ctl drives: where its binaries are,
//! which version it is, and which settings it accepts.

use crate::process;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The `postgres` binary and its siblings (`initdb`, `pg_ctl`, `pg_dump`, ...).
#[derive(Debug, Clone)]
pub struct PgBin {
    postgres: PathBuf,
    /// What `postgres --version` printed, e.g. `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub version: String,
    /// Major version, e.g. 15.
    pub major: u32,
}

impl PgBin {
    /// Finds postgres: `explicit` (`-b` or `POSTGRES_PATH`), else `postgres`
    /// on `PATH`, else `pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`. Checks it runs and reads its version.
    pub async fn resolve(explicit: Option<&Path>) -> Result<PgBin> {
        Self::with_version_of(locate(explicit).await?).await
    }

    /// [`PgBin::resolve`], with the version remembered in `cache_dir` for
    /// this binary (its path, device, inode, size, modification and change
    /// times): `postgres --version` costs a process of ~12 ms, on every
    /// start's path otherwise. Believed and written as the settings are (see
    /// [`PgBin::known_settings_cached`]); a cache that cannot be read or
    /// written only costs that process. A binary replaced or touched is a
    /// new entry, and one that no longer runs is found out by the first
    /// thing that runs it (initdb or postgres), with its own error.
    pub async fn resolve_cached(explicit: Option<&Path>, cache_dir: &Path) -> Result<PgBin> {
        let postgres = locate(explicit).await?;
        let (name, header) = version_cache_entry(&postgres);
        let dir = trusted_dir(cache_dir);
        let cached = dir
            .as_ref()
            .and_then(|d| d.read_string(&name).ok().flatten())
            .and_then(|text| Some(text.strip_prefix(&header)?.trim().to_string()))
            .and_then(|version| Some((parse_major(&version)?, version)));
        if let Some((major, version)) = cached {
            return Ok(PgBin {
                postgres,
                version,
                major,
            });
        }
        let bin = Self::with_version_of(postgres).await?;
        let text = format!("{header}{}\n", bin.version);
        write_cache(
            dir.as_ref(),
            &cache_dir.join(&name),
            &text,
            "postgres' version",
        );
        Ok(bin)
    }

    /// `postgres` with the version it prints.
    async fn with_version_of(postgres: PathBuf) -> Result<PgBin> {
        let out = process::output(Command::new(&postgres).arg("--version"))
            .await
            .with_context(|| format!("running {} --version", postgres.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version failed: {}",
                postgres.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = parse_major(&version)
            .with_context(|| format!("cannot read the major version from {version:?}"))?;
        Ok(PgBin {
            postgres,
            version,
            major,
        })
    }

    /// The `postgres` binary.
    pub fn postgres(&self) -> &Path {
        &self.postgres
    }

    /// A sibling binary in the same directory, e.g. `initdb`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.postgres.with_file_name(name)
    }

    /// [`PgBin::known_settings`], remembered in `cache_dir` for this binary
    /// (its version, size and modification time): describing them costs a
    /// process of about 30 ms, on every start's path otherwise. A cache that
    /// cannot be read or written only costs that process. As root, the file
    /// is believed only in a directory nobody else can write; it is written
    /// through a handle on it, under an unpredictable temporary name, then
    /// renamed (a reader sees all of it or none).
    pub async fn known_settings_cached(&self, cache_dir: &Path) -> Result<HashSet<String>> {
        let (file, header) = self.settings_cache_entry(cache_dir);
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let dir = trusted_dir(cache_dir);
        if let Some(d) = &dir {
            if let Ok(Some(text)) = d.read_string(&name) {
                if let Some(names) = text.strip_prefix(&header) {
                    return Ok(names.lines().map(str::to_string).collect());
                }
            }
        }
        let known = self.known_settings().await?;
        let mut text = header;
        for name in &known {
            text.push_str(name);
            text.push('\n');
        }
        write_cache(dir.as_ref(), &file, &text, "postgres' settings");
        Ok(known)
    }

    /// Where the settings of this binary are cached, and the first line the
    /// file must have.
    fn settings_cache_entry(&self, cache_dir: &Path) -> (PathBuf, String) {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let identity = std::fs::metadata(&self.postgres)
            .map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
            .unwrap_or_default();
        let header = format!("{} {identity:?}\n", self.version);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        header.hash(&mut h);
        let name = format!("settings-pg{}-{:016x}", self.major, h.finish());
        (cache_dir.join(name), header)
    }

    /// The names of the settings `postgres --describe-config` prints,
    /// lowercased (it leaves some out: [`PgBin::undescribed_settings`]).
    pub async fn known_settings(&self) -> Result<HashSet<String>> {
        let out = process::output(Command::new(&self.postgres).arg("--describe-config"))
            .await
            .context("running postgres --describe-config")?;
        if !out.status.success() {
            bail!(
                "postgres --describe-config failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|n| !n.is_empty())
            .map(str::to_ascii_lowercase)
            .collect())
    }
}

/// Settings postgres accepts in postgresql.conf that `postgres
/// --describe-config` does not print, with the first and last major version
/// that has each. `--describe-config` leaves out every setting flagged
/// `GUC_NOT_IN_SAMPLE` (developer options, and session ones such as
/// `application_name`), `GUC_NO_SHOW_ALL` or `GUC_DISALLOW_IN_FILE`
/// (`transaction_*`, `config_file`), yet postgres starts with these in its
/// file (where `config_file` and the `transaction_*` ones are ignored). Read
/// from the `pg_settings` of 15 and 17, each tried in a file (16 in between
/// from its release notes; 15 is the oldest looked at). Left out: the
/// read-only ones (`block_size`, `server_version`, ...), which postgres
/// refuses in a file.
const UNDESCRIBED: &[(&str, u32, u32)] = &[
    ("allow_in_place_tablespaces", 15, u32::MAX),
    ("allow_system_table_mods", 15, u32::MAX),
    ("application_name", 15, u32::MAX),
    ("backtrace_functions", 15, u32::MAX),
    // Read from Debian trixie's 17 (17.x); not in 15.
    ("composite_type_mismatch", 17, 17),
    ("config_file", 15, u32::MAX),
    ("debug_discard_caches", 15, u32::MAX),
    ("debug_io_direct", 16, u32::MAX),
    ("debug_logical_replication_streaming", 16, u32::MAX),
    ("debug_parallel_query", 16, u32::MAX),
    // Renamed debug_parallel_query in 16.
    ("force_parallel_mode", 15, 15),
    ("ignore_checksum_failure", 15, u32::MAX),
    ("ignore_invalid_pages", 15, u32::MAX),
    ("ignore_system_indexes", 15, u32::MAX),
    ("jit_debugging_support", 15, u32::MAX),
    ("jit_dump_bitcode", 15, u32::MAX),
    ("jit_expressions", 15, u32::MAX),
    ("jit_profiling_support", 15, u32::MAX),
    ("jit_tuple_deforming", 15, u32::MAX),
    ("post_auth_delay", 15, u32::MAX),
    ("pre_auth_delay", 15, u32::MAX),
    ("remove_temp_files_after_crash", 15, u32::MAX),
    ("restrict_nonsystem_relation_kind", 15, u32::MAX),
    ("send_abort_for_crash", 16, u32::MAX),
    ("send_abort_for_kill", 16, u32::MAX),
    ("trace_connection_negotiation", 17, u32::MAX),
    ("trace_notify", 15, u32::MAX),
    ("trace_recovery_messages", 15, 16),
    ("trace_sort", 15, u32::MAX),
    ("transaction_deferrable", 15, u32::MAX),
    ("transaction_isolation", 15, u32::MAX),
    ("transaction_read_only", 15, u32::MAX),
    ("wal_consistency_checking", 15, u32::MAX),
    ("zero_damaged_pages", 15, u32::MAX),
];

impl PgBin {
    /// The settings this postgres accepts in postgresql.conf beyond those
    /// `--describe-config` prints (see `UNDESCRIBED`: which, and why).
    pub fn undescribed_settings(&self) -> impl Iterator<Item = &'static str> + '_ {
        UNDESCRIBED
            .iter()
            .filter(|(_, first, last)| (*first..=*last).contains(&self.major))
            .map(|(name, _, _)| *name)
    }
}

/// Where postgres is: `explicit`, else found (see [`PgBin::resolve`]).
async fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let postgres = match explicit {
        Some(p) => {
            if !p.is_file() {
                bail!(
                    "postgres binary {} does not exist (from -b / POSTGRES_PATH)",
                    p.display()
                );
            }
            p.to_path_buf()
        }
        None => autodetect().await.context(
            "no postgres binary found on PATH, via pg_config, or under /usr/lib/postgresql; \
             pass -b /path/to/postgres or set POSTGRES_PATH",
        )?,
    };
    Ok(with_siblings(postgres))
}

/// The name under which `postgres`' version is cached, and the first line
/// the file must have: the binary's path and identity.
fn version_cache_entry(postgres: &Path) -> (String, String) {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let identity = std::fs::metadata(postgres)
        .map(|m| {
            let times = (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
            (m.dev(), m.ino(), m.len(), times)
        })
        .unwrap_or_default();
    let header = format!("{} {identity:?}\n", postgres.display());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    header.hash(&mut h);
    (format!("version-{:016x}", h.finish()), header)
}

/// `cache_dir`, if it exists and nobody but us can write it.
fn trusted_dir(cache_dir: &Path) -> Option<crate::safe_fs::Dir> {
    crate::safe_fs::Dir::open(cache_dir)
        .ok()
        .filter(|d| d.trusted().unwrap_or(false))
}

/// Writes `text` as `file` in `dir` (through a handle on it, under an
/// unpredictable temporary name, then renamed); what could not be written
/// is only logged: the cache is an optimisation.
fn write_cache(dir: Option<&crate::safe_fs::Dir>, file: &Path, text: &str, what: &str) {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let written = match dir {
        Some(d) => d.replace(name, text.as_bytes(), 0o644, None),
        None => Err(anyhow::anyhow!(
            "the directory is missing or not ours alone"
        )),
    };
    if let Err(e) = written {
        tracing::debug!("not caching {what} in {}: {e:#}", file.display());
    }
}

/// The tools are looked up next to postgres. When postgres is a symlink
/// (e.g. `/usr/local/bin/postgres`), follow it to the real installation
/// directory, where all the tools are. A wrapper script is used as given.
fn with_siblings(postgres: PathBuf) -> PathBuf {
    let is_link = std::fs::symlink_metadata(&postgres).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        if let Ok(real) = std::fs::canonicalize(&postgres) {
            return real;
        }
    }
    postgres
}

fn parse_major(version: &str) -> Option<u32> {
    // "postgres (PostgreSQL) 15.18 (Debian ...)" or "postgres (PostgreSQL) 17devel"
    let rest = version.split(')').nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn autodetect() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("postgres");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    if let Ok(out) = process::output(Command::new("pg_config").arg("--bindir")).await {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("postgres").is_file() {
                return Some(dir.join("postgres"));
            }
        }
    }
    newest_debian_postgres(Path::new("/usr/lib/postgresql"))
}

/// `/usr/lib/postgresql/<major>/bin/postgres` with the highest major.
fn newest_debian_postgres(root: &Path) -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin/postgres");
            bin.is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

#[cfg(test)]
mod tests;
