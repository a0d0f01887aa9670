//! The template copy reads back byte for byte as its source, holes or not.

use super::*;
use std::os::unix::fs::PermissionsExt;

const MIB: usize = 1024 * 1024;

/// What a tree holds: each entry's path, kind, mode (files) and content
/// (its length and hash; a symlink's target).
type Entry = (PathBuf, String, u32, (usize, u64));

fn digest(bytes: &[u8]) -> (usize, u64) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    (bytes.len(), h.finish())
}

fn snapshot(dir: &Path) -> Vec<Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                out.push((rel, "dir".into(), 0, (0, 0)));
                walk(root, &e.path(), out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.push((
                    rel,
                    "link".into(),
                    0,
                    digest(&target.into_os_string().into_vec()),
                ));
            } else {
                out.push((
                    rel,
                    "file".into(),
                    mode,
                    digest(&std::fs::read(e.path()).unwrap()),
                ));
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_sparse_template_copies_byte_for_byte() {
    let template = tempfile::tempdir().unwrap();
    let t = template.path();
    std::fs::create_dir_all(t.join("pg_wal/archive_status")).unwrap();
    std::fs::create_dir_all(t.join("base/1")).unwrap();
    // A WAL segment as initdb leaves it: records, then zeros to the end.
    let mut wal = vec![0u8; 16 * MIB];
    for (i, b) in wal[..3 * MIB + 100].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    // Zeros in the middle too, and data in the last block.
    wal[8 * MIB] = 7;
    *wal.last_mut().unwrap() = 9;
    std::fs::write(t.join("pg_wal/000000010000000000000001"), &wal).unwrap();
    // A segment that is all zeros, and one shorter than a block.
    std::fs::write(t.join("pg_wal/000000010000000000000002"), vec![0u8; MIB]).unwrap();
    std::fs::write(t.join("pg_wal/short"), [0u8; 100]).unwrap();
    std::fs::write(t.join("base/1/1259"), vec![3u8; 3 * 8192]).unwrap();
    std::fs::write(t.join("base/1/empty"), b"").unwrap();
    std::fs::write(t.join("PG_VERSION"), b"15\n").unwrap();
    std::fs::set_permissions(t.join("PG_VERSION"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("base/1", t.join("link")).unwrap();

    let before = snapshot(t);
    let freed = punch_zero_blocks(&t.join("pg_wal")).unwrap();
    assert_eq!(snapshot(t), before, "punching holes changes no content");
    let wal_path = t.join("pg_wal/000000010000000000000001");
    if freed > 0 {
        // The file system makes holes (ext4, XFS, btrfs, tmpfs do).
        assert!(allocated(&wal_path) < wal.len() as u64 / 2);
    }

    let dest = tempfile::tempdir().unwrap();
    let copied = copy_tree(t, dest.path(), None).unwrap();
    assert_eq!(
        snapshot(dest.path()),
        before,
        "the copy reads as the template"
    );
    assert_eq!(copied.files, 6);
    assert_eq!(
        copied.bytes,
        (16 + 1) as u64 * MIB as u64 + 100 + 3 * 8192 + 3
    );
    if freed > 0 {
        assert!(copied.data_bytes < copied.bytes / 2, "{copied:?}");
        let copy = dest.path().join("pg_wal/000000010000000000000001");
        assert!(
            allocated(&copy) < wal.len() as u64 / 2,
            "the copy is sparse"
        );
    }
    // Directories are 0700 whatever the template's.
    let meta = std::fs::metadata(dest.path().join("pg_wal/archive_status")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);

    // A copy onto an existing file fails rather than writing through it.
    let again = copy_tree(t, dest.path(), None);
    assert!(again.is_err());
}

#[test]
fn ranges_of_a_file_without_holes_are_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![1u8; 10_000]).unwrap();
    let file = File::open(&path).unwrap();
    assert_eq!(data_ranges(&file, 10_000).unwrap(), vec![(0, 10_000)]);
}
