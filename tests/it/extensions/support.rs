//! The stand-ins of the remote-extension tests: a private copy of the
//! PostgreSQL installation (the system one stays untouched), archives built
//! from real extension files, and an extension store of the test's own (a
//! small HTTP server that can answer 503 first, never answer, or serve a
//! hostile archive).

use crate::common::test_dir;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The system's PostgreSQL 15, which the copy is made of.
pub const MAJOR: &str = "15";
const SYSTEM_LIB: &str = "/usr/lib/postgresql/15";
const SYSTEM_SHARE: &str = "/usr/share/postgresql/15";

/// A copy of the installation in a temporary directory, laid out as the
/// system's (`<root>/usr/lib/postgresql/15`, `<root>/usr/share/postgresql/15`):
/// postgres (and its `pg_config`) find their share and library directories
/// relative to the binary, so the copy uses its own.
pub struct Install {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Install {
    /// Copies the installation, without the files of `without` (extensions
    /// and libraries the store is to provide).
    pub fn copy(without: &[&str]) -> Install {
        let dir = test_dir();
        let root = dir.path().to_path_buf();
        for (from, parent) in [
            (SYSTEM_LIB, root.join("usr/lib/postgresql")),
            (SYSTEM_SHARE, root.join("usr/share/postgresql")),
        ] {
            std::fs::create_dir_all(&parent).unwrap();
            let status = std::process::Command::new("cp")
                .args(["-a", from])
                .arg(&parent)
                .status()
                .unwrap();
            assert!(status.success(), "cp -a {from}");
        }
        let install = Install { _dir: dir, root };
        for name in without {
            for dir in [install.extension_dir(), install.lib_dir()] {
                for e in std::fs::read_dir(&dir).unwrap() {
                    let e = e.unwrap();
                    let file = e.file_name().into_string().unwrap();
                    if file == format!("{name}.so")
                        || file == format!("{name}.control")
                        || file.starts_with(&format!("{name}--"))
                    {
                        std::fs::remove_file(e.path()).unwrap();
                    }
                }
            }
        }
        install
    }

    /// Its postgres, for `-b`.
    pub fn postgres(&self) -> PathBuf {
        self.root
            .join(format!("usr/lib/postgresql/{MAJOR}/bin/postgres"))
    }

    /// `<sharedir>/extension`.
    pub fn extension_dir(&self) -> PathBuf {
        self.root
            .join(format!("usr/share/postgresql/{MAJOR}/extension"))
    }

    /// `<pkglibdir>`.
    pub fn lib_dir(&self) -> PathBuf {
        self.root.join(format!("usr/lib/postgresql/{MAJOR}/lib"))
    }

    /// Where archives are unpacked.
    pub fn download_dir(&self) -> PathBuf {
        self.root
            .join(format!("usr/lib/postgresql/{MAJOR}/download_extensions"))
    }

    /// The whole copy, path by path (what a refused archive must not change).
    pub fn tree(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }
}

/// One entry of an archive: a path (written raw, so `../` and `/` get in)
/// and a file's bytes.
pub struct Entry {
    pub path: String,
    pub data: Vec<u8>,
}

/// A zstd-compressed tar of `entries`, each a regular file.
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, &e.data[..]).unwrap();
    }
    zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
}

/// The installed files of the system's `extension` (control, scripts,
/// library), as an archive's entries.
pub fn system_extension(extension: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("{SYSTEM_SHARE}/extension")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name == format!("{extension}.control") || name.starts_with(&format!("{extension}--")) {
            out.push(Entry {
                path: format!("share/extension/{name}"),
                data: std::fs::read(e.path()).unwrap(),
            });
        }
    }
    let lib = format!("{SYSTEM_LIB}/lib/{extension}.so");
    if Path::new(&lib).exists() {
        out.push(Entry {
            path: format!("lib/{extension}.so"),
            data: std::fs::read(&lib).unwrap(),
        });
    }
    out
}

/// What the store answers for one archive, in turn; the last one repeats.
#[derive(Clone)]
pub enum Answer {
    /// A status with no body.
    Status(u16),
    /// 200 with this archive.
    Archive(Arc<Vec<u8>>),
    /// Reads the request and never answers.
    Hang,
    /// Reads the request and closes the connection (a transport error).
    Close,
}

/// An extension store: any path whose last part names an archive it has.
pub struct Store {
    pub url: String,
    answers: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    /// Every request's path, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// Listens on a free loopback port.
    pub async fn start() -> Store {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/store/", listener.local_addr().unwrap());
        let answers: Arc<Mutex<HashMap<String, Vec<Answer>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (a, r) = (answers.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(conn, a.clone(), r.clone()));
            }
        });
        Store {
            url,
            answers,
            requests,
            task,
        }
    }

    /// What to answer for `filename` (`<extension>.tar.zst`), in turn.
    pub fn set(&self, filename: &str, answers: Vec<Answer>) {
        self.answers
            .lock()
            .unwrap()
            .insert(filename.to_string(), answers);
    }

    /// Requests for `filename` so far.
    pub fn count(&self, filename: &str) -> usize {
        let suffix = format!("/{filename}");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.ends_with(&suffix))
            .count()
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    answers: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    requests.lock().unwrap().push(path.clone());
    let filename = path.rsplit('/').next().unwrap_or_default().to_string();
    let answer = {
        let mut all = answers.lock().unwrap();
        match all.get_mut(&filename) {
            Some(queue) if queue.len() > 1 => queue.remove(0),
            Some(queue) => queue[0].clone(),
            None => Answer::Status(404),
        }
    };
    let (status, body): (u16, &[u8]) = match &answer {
        Answer::Status(s) => (*s, b""),
        Answer::Archive(bytes) => (200, bytes),
        Answer::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            return;
        }
        Answer::Close => return,
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(header.as_bytes()).await;
    let _ = conn.write_all(body).await;
    let _ = conn.shutdown().await;
}
