use super::*;
use std::os::unix::fs::MetadataExt;

fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, "precious\n").unwrap();
    v
}

#[test]
fn replace_goes_over_a_planted_symlink_not_through_it() {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let v = victim(t.path());
    std::os::unix::fs::symlink(&v, work.join("postgresql.conf")).unwrap();
    let d = Dir::open(&work).unwrap();
    d.replace("postgresql.conf", b"port = 1\n", 0o600, None)
        .unwrap();
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "precious\n");
    let new = work.join("postgresql.conf");
    let meta = std::fs::symlink_metadata(&new).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read_to_string(&new).unwrap(), "port = 1\n");
    // Nothing left beside it.
    let names: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["postgresql.conf"]);
}

#[test]
fn a_symlinked_directory_is_refused() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("real")).unwrap();
    std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
    let e = Dir::open(&t.path().join("link")).unwrap_err();
    assert!(format!("{e:#}").contains("not a directory"), "{e:#}");
    let top = Dir::open(t.path()).unwrap();
    assert!(top.open_dir("link").is_err());
    assert!(top.open_dir("real").unwrap().is_some());
    assert!(top.open_dir("missing").unwrap().is_none());
}

#[test]
fn reading_refuses_symlinks_and_what_is_not_a_file() {
    let t = tempfile::tempdir().unwrap();
    let v = victim(t.path());
    std::os::unix::fs::symlink(&v, t.path().join("link")).unwrap();
    nix::unistd::mkfifo(&t.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    let d = Dir::open(t.path()).unwrap();
    assert_eq!(
        d.read_string("victim").unwrap().as_deref(),
        Some("precious\n")
    );
    assert!(d.read("missing").unwrap().is_none());
    let e = d.read("link").unwrap_err();
    assert!(format!("{e:#}").contains("symlink"), "{e:#}");
    let e = d.read("fifo").unwrap_err();
    assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
    assert!(d.read("../victim").is_err());
}

#[test]
fn removing_files_removes_links_not_their_targets() {
    let t = tempfile::tempdir().unwrap();
    let v = victim(t.path());
    let work = t.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("a"), "x").unwrap();
    std::os::unix::fs::symlink(&v, work.join("b")).unwrap();
    Dir::open(&work).unwrap().remove_files().unwrap();
    let names: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["sub"]);
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "precious\n");
}

#[test]
fn a_private_temporary_directory_is_ours_alone() {
    let d = private_temp_dir("cc-test-", None).unwrap();
    let meta = std::fs::symlink_metadata(d.path()).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert!(Dir::open(d.path()).unwrap().ours_alone().unwrap());
}
