use super::*;
use std::os::unix::fs::PermissionsExt;

/// A small tree as initdb leaves it: directories and files of another user
/// (nobody's, standing for postgres'), modes 0700 and 0600.
fn built_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("base/1")).unwrap();
    std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
    std::fs::write(dir.join("base/1/1259"), vec![7u8; 8192]).unwrap();
    std::os::unix::fs::symlink("base", dir.join("link")).unwrap();
    if nix::unistd::Uid::effective().is_root() {
        for p in ["", "base", "base/1", "PG_VERSION", "base/1/1259", "link"] {
            std::os::unix::fs::lchown(dir.join(p), Some(65534), Some(65534)).unwrap();
        }
    }
}

#[test]
fn a_sealed_tree_is_ours_and_closed() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tpl");
    built_tree(&tree);
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        tree.join("PG_VERSION"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    seal(&tree).unwrap();
    for p in ["", "base", "base/1", "PG_VERSION", "base/1/1259", "link"] {
        let meta = std::fs::symlink_metadata(tree.join(p)).unwrap();
        check_sealed(&tree.join(p), &meta).unwrap();
        if meta.is_dir() {
            assert_eq!(meta.mode() & 0o7777, 0o700, "{p}");
        }
    }
    assert_eq!(unsealed(&tree), None);
    assert!(manifest(&tree).is_ok());
}

#[test]
fn sealing_refuses_what_is_neither_file_directory_nor_symlink() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tpl");
    built_tree(&tree);
    nix::unistd::mkfifo(&tree.join("base/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    let e = seal(&tree).unwrap_err();
    assert!(format!("{e:#}").contains("base/fifo"), "{e:#}");
}

#[test]
fn a_tree_changed_after_its_seal_is_not_sealed() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // giving a file to another user needs root
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tpl");
    built_tree(&tree);
    seal(&tree).unwrap();
    // Another user's file inside: the walk that checks the stamp fails.
    std::os::unix::fs::lchown(tree.join("base/1/1259"), Some(65534), None).unwrap();
    let e = manifest(&tree).unwrap_err();
    assert!(format!("{e:#}").contains("uid 65534"), "{e:#}");
    std::os::unix::fs::lchown(tree.join("base/1/1259"), Some(0), None).unwrap();
    // A directory others can write.
    std::fs::set_permissions(tree.join("base"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(manifest(&tree).is_err());
    std::fs::set_permissions(tree.join("base"), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Read by a group (as an image gives its template to group 0) is no change.
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o750)).unwrap();
    assert_eq!(unsealed(&tree), None);
    assert!(manifest(&tree).is_ok());
    // The top directory writable by its group.
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert!(unsealed(&tree).unwrap().contains("not ours alone"));
}

#[test]
fn a_cache_of_another_user_is_taken_back() {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
    let owner = crate::process::RunAs::detect("nobody").unwrap();
    let dir = secure_dir(&cache, owner.as_ref()).unwrap();
    assert!(dir.ours_alone().unwrap());
    let meta = std::fs::metadata(&cache).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755));
}

#[test]
fn a_maker_is_alive_only_with_its_start_time() {
    let me = maker();
    assert!(maker_alive(&format!("{me}-7")), "{me}");
    let pid = std::process::id();
    assert!(!maker_alive(&format!("{pid}-1-7")));
    assert!(!maker_alive("2147483647-1-7"));
    assert!(!maker_alive("garbage"));
}

#[test]
fn leftovers_of_dead_makers_go_and_live_ones_stay() {
    let t = tempfile::tempdir().unwrap();
    let mine = format!(".tmp-{}-1", maker());
    for name in [
        mine.as_str(),
        ".tmp-2147483647-1-1",
        ".stale-2147483647-1-2",
        "pg15-x",
    ] {
        std::fs::create_dir_all(t.path().join(name).join("base")).unwrap();
    }
    remove_leftovers(&Dir::open(t.path()).unwrap());
    let mut left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [mine, "pg15-x".to_string()]);
}
