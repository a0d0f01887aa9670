//! Spares on real files: what a claim gives, who gets it, what is cleaned.

use super::*;
use crate::pgdata::{from_template, Prepared};
use std::os::unix::fs::PermissionsExt;

/// A small template: nested directories, modes, an empty file, a symlink,
/// and the stamp (which a spare must not keep).
fn template(cache: &Path) -> PathBuf {
    let t = cache.join("pg15-0123456789abcdef");
    std::fs::create_dir_all(t.join("base/1")).unwrap();
    std::fs::create_dir_all(t.join("pg_wal/archive_status")).unwrap();
    std::fs::write(t.join("PG_VERSION"), b"15\n").unwrap();
    std::fs::set_permissions(t.join("PG_VERSION"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(t.join("base/1/1259"), vec![7u8; 3 * 8192]).unwrap();
    std::fs::write(t.join("base/1/empty"), b"").unwrap();
    std::fs::write(t.join("pg_wal/000000010000000000000001"), vec![1u8; 65536]).unwrap();
    std::os::unix::fs::symlink("base/1", t.join("link")).unwrap();
    std::fs::write(t.join(crate::pgdata::STAMP), b"stamp").unwrap();
    t
}

/// Each entry: path, kind, mode, owner, size (a symlink: its target).
fn manifest(root: &Path) -> Vec<(PathBuf, String, u32, u32, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String, u32, u32, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(crate::pgdata::STAMP) {
                continue;
            }
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                out.push((rel, "dir".into(), mode, meta.uid(), 0));
                walk(root, &e.path(), out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.push((rel, target.display().to_string(), 0, meta.uid(), 0));
            } else {
                let content = std::fs::read(e.path()).unwrap();
                let sum = content.iter().map(|b| u64::from(*b)).sum::<u64>();
                out.push((rel, format!("file {sum}"), mode, meta.uid(), meta.len()));
            }
        }
    }
    let mut out = vec![];
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The postgres user when we are root (files get its uid), else none.
fn owner() -> Option<RunAs> {
    nix::unistd::Uid::effective()
        .is_root()
        .then(|| RunAs::detect("postgres").ok().flatten())
        .flatten()
}

fn ready_spares(template: &Path) -> Vec<String> {
    std::fs::read_dir(spares_dir(template))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ready-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_claimed_spare_is_the_template_as_pgdata() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    let owner = owner();
    assert!(make(&t, owner.as_ref()).unwrap().is_some());
    let pgdata = work.path().join("data/pgdata");
    let (prepared, maker) = from_template(&t, &pgdata, owner.as_ref(), true).unwrap();
    assert_eq!(prepared, Prepared::Claimed);
    maker.unwrap().make_in_background().join().unwrap();
    let uid = uid_of(owner.as_ref());
    let meta = std::fs::symlink_metadata(&pgdata).unwrap();
    assert!(meta.is_dir());
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o700, uid));
    let got = manifest(&pgdata);
    // The template's own entries, given to the owner, directories 0700.
    let want: Vec<_> = manifest(&t)
        .into_iter()
        .map(|(p, kind, mode, _, len)| {
            let mode = if kind == "dir" { 0o700 } else { mode };
            (p, kind, mode, uid, len)
        })
        .collect();
    assert_eq!(got, want);
    assert!(!pgdata.join(crate::pgdata::STAMP).exists());
    // The next spare was made meanwhile.
    assert_eq!(ready_spares(&t).len(), 1);
}

#[test]
fn two_claims_at_once_never_get_the_same_spare() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    for round in 0..10 {
        make(&t, None).unwrap().unwrap();
        let results: Vec<Claim> = std::thread::scope(|s| {
            let claims: Vec<_> = (0..2)
                .map(|i| {
                    let (t, pgdata) = (&t, work.path().join(format!("pg-{round}-{i}")));
                    s.spawn(move || claim(t, &pgdata, None).unwrap())
                })
                .collect();
            claims.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let claimed = results.iter().filter(|c| **c == Claim::Claimed).count();
        assert_eq!(claimed, 1, "round {round}: {results:?}");
        assert!(results.contains(&Claim::NoSpare), "{results:?}");
    }
}

#[test]
fn a_spare_of_another_boot_is_not_claimed_and_is_removed() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    let dir = spares_dir(&t);
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    let other = dir.join(format!(
        "ready-00000000-0000-0000-0000-000000000000-{}-1",
        uid_of(None)
    ));
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("PG_VERSION"), b"15\n").unwrap();
    let pgdata = work.path().join("pgdata");
    assert_eq!(claim(&t, &pgdata, None).unwrap(), Claim::NoSpare);
    assert!(!pgdata.exists());
    make(&t, None).unwrap().unwrap();
    assert!(!other.exists(), "the other boot's spare was removed");
    assert_eq!(ready_spares(&t).len(), 1);
}

#[test]
fn a_half_made_spare_of_a_dead_maker_is_removed() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    let dir = spares_dir(&t);
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let boot = boot_id().unwrap();
    let half = dir.join(format!(".tmp-{boot}-{dead}-1"));
    std::fs::create_dir(&half).unwrap();
    // One of a live maker (us) stays.
    let live = dir.join(format!(".tmp-{boot}-{}-2", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    assert_eq!(make(&t, None).unwrap(), None, "a live maker is at work");
    assert!(!half.exists(), "the dead maker's spare was removed");
    assert!(live.exists());
    std::fs::remove_dir(&live).unwrap();
    assert!(make(&t, None).unwrap().is_some());
}

#[test]
fn at_most_one_spare_is_kept_ready() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    assert!(make(&t, None).unwrap().is_some());
    assert_eq!(make(&t, None).unwrap(), None);
    assert_eq!(ready_spares(&t).len(), 1);
}

#[test]
fn a_spare_dir_others_can_write_is_not_used() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    make(&t, None).unwrap().unwrap();
    let dir = spares_dir(&t);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = claim(&t, &work.path().join("pgdata"), None).unwrap_err();
    assert!(format!("{err:#}").contains("not ours alone"), "{err:#}");
    // A start copies instead.
    let (prepared, _) = from_template(&t, &work.path().join("pgdata"), None, true).unwrap();
    assert!(matches!(prepared, Prepared::Copied(_)), "{prepared:?}");
}

#[test]
fn pgdata_on_another_file_system_is_copied_and_makes_no_spare() {
    let shm = Path::new("/dev/shm");
    let work = tempfile::tempdir().unwrap();
    let (Ok(a), Ok(b)) = (std::fs::metadata(shm), std::fs::metadata(work.path())) else {
        println!("skipped: no /dev/shm");
        return;
    };
    if a.dev() == b.dev() {
        println!(
            "skipped: /dev/shm and {} are one file system",
            work.path().display()
        );
        return;
    }
    let t = template(&work.path().join("cache"));
    make(&t, None).unwrap().unwrap();
    let elsewhere = tempfile::tempdir_in(shm).unwrap();
    let pgdata = elsewhere.path().join("pgdata");
    // The claim itself sees EXDEV.
    assert_eq!(claim(&t, &pgdata, None).unwrap(), Claim::CrossDevice);
    let spares = std::fs::read_dir(spares_dir(&t)).unwrap().count();
    let (prepared, maker) = from_template(&t, &pgdata, None, true).unwrap();
    assert!(matches!(prepared, Prepared::Copied(_)), "{prepared:?}");
    assert!(maker.is_none(), "no spare is made for another file system");
    assert_eq!(std::fs::read_dir(spares_dir(&t)).unwrap().count(), spares);
    assert_eq!(ready_spares(&t).len(), 1, "the ready spare stays");
}

#[test]
fn a_spare_being_made_is_finished_before_exit() {
    let work = tempfile::tempdir().unwrap();
    let t = template(&work.path().join("cache"));
    let maker = super::NextSpare::new(t.clone(), None).make_in_background();
    super::finish_before_exit(std::time::Duration::from_secs(60));
    // Done by then: the thread has nothing left but to end.
    assert_eq!(ready_spares(&t).len(), 1);
    maker.join().unwrap();
}
