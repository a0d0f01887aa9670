//! The archive's path rules and the installation moves, on real archives
//! built here; the resolution of names against a spec.

use super::archive::{install, unpack, Installed};
use super::resolve::{
    control_files_allowed, extension_for, library_stem, preload_libraries, NotFound,
};
use crate::spec::{RemoteExtensions, ValidSpec};
use serde_json::json;
use std::path::Path;

/// One entry of a test archive.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

/// A zstd-compressed tar of `entries`, names written raw into the headers
/// (so `../x` and `/x` get in, as a hostile store would send them).
fn archive(entries: &[E]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], Option<&str>) = match e {
            E::Dir(n) => (n, tar::EntryType::Directory, b"", None),
            E::File(n, d) => (n, tar::EntryType::Regular, d, None),
            E::Link(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
            E::HardLink(n, t) => (n, tar::EntryType::Link, b"", Some(t)),
        };
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(t) = link {
            h.as_gnu_mut().unwrap().linkname[..t.len()].copy_from_slice(t.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, data).unwrap();
    }
    zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
}

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn an_archive_unpacks_and_moves_into_the_installation() {
    let staging = tempfile::tempdir().unwrap();
    let share = tempfile::tempdir().unwrap();
    let lib = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("kept.control"), "local\n").unwrap();
    let bytes = archive(&[
        E::Dir("share/"),
        E::Dir("share/extension/"),
        E::File("share/extension/ext.control", b"comment = 'x'\n"),
        E::File("share/extension/ext--1.0.sql", b"SELECT 1;\n"),
        E::File("share/extension/kept.control", b"remote\n"),
        E::File("lib/ext.so", b"\x7fELF"),
        E::Link("lib/ext.so.1", "ext.so"),
        E::File("README", b"not moved\n"),
    ]);
    let unpacked = unpack(&bytes, staging.path(), 1 << 20).unwrap();
    assert_eq!(unpacked.entries, 8);
    let installed = install(
        staging.path(),
        &[("share/extension", share.path()), ("lib", lib.path())],
    )
    .unwrap();
    let mut moved = installed.moved.clone();
    moved.sort();
    assert_eq!(moved, ["ext--1.0.sql", "ext.control", "ext.so", "ext.so.1"]);
    assert_eq!(installed.kept, ["kept.control"]);
    // The installation's own file wins.
    assert_eq!(
        std::fs::read_to_string(share.path().join("kept.control")).unwrap(),
        "local\n"
    );
    assert_eq!(
        std::fs::read(lib.path().join("ext.so.1")).unwrap(),
        b"\x7fELF"
    );
    assert_eq!(
        tree(share.path()),
        ["ext--1.0.sql", "ext.control", "kept.control"]
    );
}

#[test]
fn a_sql_only_archive_has_no_lib_and_moves_all_the_same() {
    let staging = tempfile::tempdir().unwrap();
    let share = tempfile::tempdir().unwrap();
    let lib = tempfile::tempdir().unwrap();
    let bytes = archive(&[E::File("./share/extension/only--1.0.sql", b"SELECT 1;\n")]);
    unpack(&bytes, staging.path(), 1 << 20).unwrap();
    let installed = install(
        staging.path(),
        &[("share/extension", share.path()), ("lib", lib.path())],
    )
    .unwrap();
    assert_eq!(
        installed,
        Installed {
            moved: vec!["only--1.0.sql".into()],
            kept: vec![]
        }
    );
    assert!(tree(lib.path()).is_empty());
}

#[test]
fn hostile_archives_are_refused_and_write_nothing_outside() {
    let cases: Vec<(&str, Vec<E>, &str)> = vec![
        (
            "dotdot",
            vec![E::File("share/../../escaped", b"x")],
            "leaves the archive's directory",
        ),
        (
            "absolute",
            vec![E::File("/tmp/escaped-abs", b"x")],
            "leaves the archive's directory",
        ),
        (
            "link out",
            vec![E::Link("lib/out", "/etc")],
            "may point outside",
        ),
        (
            "link up",
            vec![E::Link("lib/up", "../..")],
            "may point outside",
        ),
        (
            "through a link",
            vec![E::Link("lib/sub", "x"), E::File("lib/sub/file", b"x")],
            "goes through a symlink",
        ),
        (
            "hard link",
            vec![E::HardLink("lib/h", "/etc/passwd")],
            "unexpected Link entry",
        ),
        (
            "too large",
            vec![E::File("lib/big", &[0u8; 4096])],
            "more than 1024 bytes",
        ),
        ("empty", vec![], "empty archive"),
    ];
    for (what, entries, expected) in cases {
        let outer = tempfile::tempdir().unwrap();
        let staging = outer.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let e = unpack(&archive(&entries), &staging, 1024).unwrap_err();
        assert!(format!("{e:#}").contains(expected), "{what}: {e:#}");
        // Nothing beside the staging directory, nothing escaped into /tmp.
        assert_eq!(
            tree(outer.path()).first().map(String::as_str),
            Some("staging"),
            "{what}"
        );
        assert!(
            tree(outer.path()).iter().all(|p| p.starts_with("staging")),
            "{what}"
        );
        assert!(!Path::new("/tmp/escaped-abs").exists(), "{what}");
    }
    let staging = tempfile::tempdir().unwrap();
    let e = unpack(b"not zstd at all", staging.path(), 1024).unwrap_err();
    assert!(format!("{e:#}").contains("corrupt archive"), "{e:#}");
}

fn remote(v: serde_json::Value) -> RemoteExtensions {
    serde_json::from_value(v).unwrap()
}

#[test]
fn names_resolve_as_the_reference_resolves_them() {
    let r = remote(json!({
        "public_extensions": ["anon"],
        "custom_extensions": null,
        "library_index": {"anon": "anon", "postgis-3": "postgis", "ghost": "ghost"},
        "extension_data": {
            "anon": {"control_data": {"anon.control": "x"}, "archive_path": ""},
            "postgis": {"control_data": {}, "archive_path": ""}
        }
    }));
    assert_eq!(library_stem("postgis-3.so.1"), "postgis-3");
    assert_eq!(extension_for(&r, "anon", false).unwrap(), "anon");
    assert_eq!(extension_for(&r, "anon.so", true).unwrap(), "anon");
    assert_eq!(
        extension_for(&r, "nope.so", true),
        Err(NotFound::Library("nope".into()))
    );
    assert_eq!(
        extension_for(&r, "postgis-3.so", true),
        Err(NotFound::Extension("postgis".into()))
    );
    let r2 = remote(json!({
        "custom_extensions": ["ghost"], "library_index": {}, "extension_data": {}
    }));
    assert_eq!(
        extension_for(&r2, "ghost", false),
        Err(NotFound::Data("ghost".into()))
    );
    // Control files: a null list allows everything, as the reference.
    assert!(control_files_allowed(&r, "postgis"));
    let both = remote(json!({
        "public_extensions": ["a"], "custom_extensions": ["b"],
        "library_index": {}, "extension_data": {}
    }));
    assert!(control_files_allowed(&both, "b") && !control_files_allowed(&both, "c"));
}

#[test]
fn preload_libraries_come_from_the_setting_and_the_last_conf_line() {
    let spec = ValidSpec::from_json(
        &json!({
            "format_version": 1.0,
            "cluster": {
                "settings": [{"name": "shared_preload_libraries", "value": "neon,anon, 'local'", "vartype": "string"}],
                "postgresql_conf": "shared_preload_libraries='old'\nshared_preload_libraries='postgis-3,pg_cron'\n"
            },
            "remote_extensions": {
                "public_extensions": ["anon"],
                "library_index": {"anon": "anon", "postgis-3": "postgis", "old": "old", "neon": "neon"},
                "extension_data": {}
            }
        })
        .to_string(),
    )
    .unwrap();
    let r = spec.remote_extensions.clone().unwrap();
    assert_eq!(preload_libraries(&spec, &r), ["anon", "postgis-3"]);
}

#[test]
fn names_that_would_be_paths_are_refused_by_the_spec_check() {
    for (remote, field) in [
        (
            json!({"public_extensions": ["../x"], "library_index": {}, "extension_data": {}}),
            "remote_extensions.public_extensions[0]",
        ),
        (
            json!({"library_index": {"a": "b/c"}, "extension_data": {}}),
            "remote_extensions.library_index.a",
        ),
        (
            json!({"library_index": {}, "extension_data": {"e": {"control_data": {"../e.control": ""}, "archive_path": ""}}}),
            "remote_extensions.extension_data.e.control_data.../e.control",
        ),
        (
            json!({"library_index": {}, "extension_data": {"e": {"control_data": {"e--1.0.sql": ""}, "archive_path": ""}}}),
            "remote_extensions.extension_data.e.control_data.e--1.0.sql",
        ),
    ] {
        let text =
            json!({"format_version": 1.0, "cluster": {}, "remote_extensions": remote}).to_string();
        let e = ValidSpec::from_json(&text).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}
