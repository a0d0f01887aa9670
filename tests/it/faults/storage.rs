//! Faults of the storage a compute starts from, end to end (compute_ctl,
//! the test pageserver, a control-plane stand-in): a pageserver that stalls,
//! sends corrupt gzip, or an archive that reaches out of PGDATA; a control
//! plane that fails, answers garbage or a huge body, or nothing. Each ends
//! in a clear error, with nothing written outside PGDATA and nothing
//! half-written left in it. (A stream closed mid-way and an error after the
//! archive are in neon/.)

use crate::common::*;
use crate::fake_pageserver::{Archive, Behaviour, FakePageserver, Options};
use crate::neon_support::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Starts a primary on `ps`, expects it to fail its start with `needle` in
/// the log and exit 1, with PGDATA left empty.
async fn start_fails(ps: &FakePageserver, extra: &[&str], needle: &str) -> Compute {
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let mut c = start(neon_spec(ps, json!("Primary")), &pgbin, extra);
    let status = c.wait_exit(Duration::from_secs(90));
    assert_eq!(status.code(), Some(1), "{}", c.log());
    let log = c.log();
    assert!(
        log.contains("to=failed") && log.contains(needle),
        "no {needle:?} in:\n{log}"
    );
    assert!(!log.contains("postgres is ready"), "postgres started");
    let left: Vec<_> = std::fs::read_dir(c.pgdata())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "PGDATA holds {left:?}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_basebackup_times_out_and_is_retried_then_fails() {
    let ps = pageserver(Behaviour::Hang).await;
    let c = start_fails(
        &ps,
        &["--storage-stall-timeout", "1", "--storage-attempts", "2"],
        "stalled",
    )
    .await;
    c.assert_logged("basebackup failed after 2 attempts");
    assert_eq!(ps.recorded().connections, 2, "each attempt connects anew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_gzip_fails_the_start_naming_it() {
    // A gzip header, then bytes that are no deflate stream.
    let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    bytes.extend((0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let ps = FakePageserver::start(Options::new(Archive::Bytes(Arc::new(bytes)))).await;
    start_fails(&ps, &["--storage-attempts", "2"], "corrupt archive").await;
}

/// A tar header whose name and link name are written byte for byte (the tar
/// crate refuses to make `..` and absolute names, which is the point here).
fn raw_header(name: &str, kind: tar::EntryType, link: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// An archive entry: name, kind, link target.
type Entry = (String, tar::EntryType, String);

/// A gzip'd tar: `PG_VERSION`, then `entries`.
fn evil_archive(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut pg = tar::Header::new_gnu();
    pg.set_size(3);
    pg.set_mode(0o600);
    b.append_data(&mut pg, "PG_VERSION", &b"15\n"[..]).unwrap();
    for (name, kind, link) in entries {
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"escaped\n"
        } else {
            b""
        };
        let h = raw_header(name, *kind, link, data.len() as u64);
        b.append(&h, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn files_under(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_reaching_out_of_pgdata_are_refused_and_write_nothing_outside() {
    use tar::EntryType::{Regular, Symlink};
    let outside = test_dir();
    let out = outside.path().display().to_string();
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "a ../ path",
            vec![("../escaped".into(), Regular, String::new())],
            "outside PGDATA",
        ),
        (
            "a deeper ../ path",
            vec![("base/../../escaped".into(), Regular, String::new())],
            "outside PGDATA",
        ),
        (
            "an absolute path",
            vec![(format!("{out}/absolute"), Regular, String::new())],
            "outside PGDATA",
        ),
        (
            "a symlink to an absolute directory, then a file through it",
            vec![
                ("evil".into(), Symlink, out.clone()),
                ("evil/through-link".into(), Regular, String::new()),
            ],
            "may point outside PGDATA",
        ),
        (
            "a symlink to .., then a file through it",
            vec![
                ("up".into(), Symlink, "..".into()),
                ("up/escaped-by-link".into(), Regular, String::new()),
            ],
            "may point outside PGDATA",
        ),
        (
            "a symlink to a file outside",
            vec![("passwd".into(), Symlink, "/etc/passwd".into())],
            "may point outside PGDATA",
        ),
    ];
    for (what, entries, needle) in cases {
        println!("case: {what}");
        let archive = evil_archive(&entries);
        let ps = FakePageserver::start(Options::new(Archive::Bytes(Arc::new(archive)))).await;
        let c = start_fails(&ps, &["--storage-attempts", "1"], needle).await;
        assert!(
            files_under(outside.path()).is_empty(),
            "{what}: written outside PGDATA: {:?}",
            files_under(outside.path())
        );
        // PGDATA's parent holds only what the harness put there.
        for f in files_under(c.dir.path()) {
            assert!(
                ["pgdata", "sock", "spec.json"]
                    .iter()
                    .any(|k| f.ends_with(&format!("/{k}"))),
                "{what}: {f} was written next to PGDATA"
            );
        }
    }
}
