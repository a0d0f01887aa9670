//! PGDATA's own name sits in a directory postgres may write (the image's
//! `/var/lib/compute`, the reference's `/var/db/postgres`): what root puts in
//! a PGDATA it has just made must reach that directory, whatever postgres'
//! user does to the name meanwhile.

use super::*;
use std::os::unix::fs::MetadataExt;

/// A template of a few files and a subdirectory, as the cache holds one.
fn template(root: &Path) -> PathBuf {
    let t = root.join("template");
    std::fs::create_dir_all(t.join("base/1")).unwrap();
    std::fs::write(t.join("PG_VERSION"), "15\n").unwrap();
    std::fs::write(t.join("base/1/1259"), vec![7u8; 8192]).unwrap();
    std::fs::write(t.join(STAMP), "stamp").unwrap();
    t
}

fn postgres_user() -> Option<RunAs> {
    RunAs::detect("postgres").ok().flatten()
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// The attack: between the moment root makes PGDATA and the moment it fills
/// it, the parent's owner renames the new directory away and puts a symlink
/// to a directory of root's at its name. Root's copy (and the chown after
/// it) must still go into the directory it made, never through the link.
#[test]
fn a_pgdata_swapped_for_a_symlink_after_it_is_made_is_filled_through_its_handle() {
    let root = tempfile::tempdir().unwrap();
    let template = template(root.path());
    let parent = root.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let victim_owner = std::fs::metadata(&victim).unwrap().uid();
    let pgdata = parent.join("pgdata");
    let owner = postgres_user();

    let dir = wipe(&pgdata, None).unwrap();
    // The parent's owner moves the new directory and plants the link.
    let moved = parent.join("moved");
    std::fs::rename(&pgdata, &moved).unwrap();
    std::os::unix::fs::symlink(&victim, &pgdata).unwrap();

    let copied = copy_then_hand_over(&template, &dir, &pgdata, owner.as_ref()).unwrap();

    assert!(copied.files >= 2, "{copied:?}");
    assert!(is_empty(&victim), "root wrote through the planted symlink");
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), victim_owner);
    assert_eq!(std::fs::read(moved.join("PG_VERSION")).unwrap(), b"15\n");
    assert!(!moved.join(STAMP).exists(), "the stamp is not copied");
    if let Some(u) = &owner {
        assert_eq!(std::fs::metadata(&moved).unwrap().uid(), u.uid);
        assert_eq!(
            std::fs::metadata(moved.join("base/1/1259")).unwrap().uid(),
            u.uid
        );
    }
}

/// The same for a directory wiped and made for its owner at once (the Neon
/// and replica starts): it is chowned through its handle, and what goes in
/// through `pinned_path` lands in it.
#[test]
fn a_wiped_pgdata_is_chowned_and_reached_through_its_handle() {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let pgdata = parent.join("pgdata");
    std::fs::create_dir(&pgdata).unwrap();
    std::fs::write(pgdata.join("old"), "old cluster").unwrap();
    let owner = postgres_user();

    let dir = wipe(&pgdata, owner.as_ref()).unwrap();
    let moved = parent.join("moved");
    std::fs::rename(&pgdata, &moved).unwrap();
    std::os::unix::fs::symlink(&victim, &pgdata).unwrap();
    std::fs::write(dir.pinned_path().join("PG_VERSION"), "15\n").unwrap();

    assert!(is_empty(&victim), "written through the planted symlink");
    assert!(!moved.join("old").exists(), "the old cluster was wiped");
    assert_eq!(std::fs::read(moved.join("PG_VERSION")).unwrap(), b"15\n");
    let mode = std::fs::metadata(&moved).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    if let Some(u) = &owner {
        assert_eq!(std::fs::metadata(&moved).unwrap().uid(), u.uid);
    }
}

/// A symlink planted at PGDATA's name before the start is removed (the
/// link, not what it points to), and PGDATA is made anew in its place.
#[test]
fn a_symlink_planted_at_pgdata_is_replaced_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    let pgdata = parent.join("pgdata");
    std::os::unix::fs::symlink(&victim, &pgdata).unwrap();

    let dir = wipe(&pgdata, postgres_user().as_ref()).unwrap();

    assert_eq!(std::fs::read(victim.join("precious")).unwrap(), b"keep me");
    let meta = std::fs::symlink_metadata(&pgdata).unwrap();
    assert!(meta.is_dir(), "PGDATA is a directory of its own again");
    assert_eq!(dir.stat().unwrap().st_ino, meta.ino());
}

/// In a set-group-id parent (the image's `/var/lib/compute`, 2775, for a
/// container run as an arbitrary uid of group 0), PGDATA keeps the group
/// and the set-group-id bit a plain mkdir gives it, so that the files made
/// in it get the group too.
#[test]
fn pgdata_in_a_set_group_id_parent_keeps_its_group() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    let gid = postgres_user().map(|u| u.gid);
    if let Some(gid) = gid {
        std::os::unix::fs::chown(&parent, None, Some(gid)).unwrap();
    }
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let pgdata = parent.join("pgdata");

    let dir = wipe(&pgdata, None).unwrap();

    let meta = std::fs::metadata(&pgdata).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o2700);
    if let Some(gid) = gid {
        assert_eq!(meta.gid(), gid);
    }
    assert_eq!(dir.stat().unwrap().st_ino, meta.ino());
}
