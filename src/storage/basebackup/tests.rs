//! Unit tests of the basebackup: commands, paths, unpacking.

use super::*;

fn request(lsn: Option<Lsn>, replica: bool) -> BasebackupRequest<'static> {
    BasebackupRequest {
        pageserver_connstring: Secret::new(
            "postgresql://no_user@ps0:6400,postgresql://no_user@ps1:6400",
        ),
        auth_token: None,
        tenant_id: "0123456789abcdef0123456789abcdef",
        timeline_id: "fedcba9876543210fedcba9876543210",
        lsn,
        replica,
    }
}

#[test]
fn commands() {
    let lsn = Some(Lsn(0x1_0000_0028));
    assert_eq!(
        request(lsn, false).command().unwrap(),
        "basebackup 0123456789abcdef0123456789abcdef fedcba9876543210fedcba9876543210 1/28 --gzip"
    );
    assert_eq!(
        request(None, true).command().unwrap(),
        "basebackup 0123456789abcdef0123456789abcdef fedcba9876543210fedcba9876543210 --gzip --replica"
    );
    assert_eq!(
        request(lsn, true).command().unwrap(),
        "basebackup 0123456789abcdef0123456789abcdef fedcba9876543210fedcba9876543210 1/28 --gzip --replica",
        "a static compute"
    );
    assert_eq!(
        request(lsn, false).shard0(),
        "postgresql://no_user@ps0:6400"
    );
    let mut secret = request(lsn, false);
    secret.auth_token = Some(Secret::new("sekrit"));
    secret.pageserver_connstring = Secret::new("postgresql://u:pw@h:1");
    let debug = format!("{secret:?}");
    assert!(
        !debug.contains("sekrit") && !debug.contains("pw@"),
        "{debug}"
    );
    let mut bad = request(lsn, false);
    bad.tenant_id = "x; drop";
    assert!(bad.command().unwrap_err().to_string().contains("tenant"));
}

#[test]
fn destinations() {
    let d = Path::new("/pg");
    assert_eq!(within(d, Path::new("./base/1")), Some("/pg/base/1".into()));
    assert_eq!(within(d, Path::new("/global")), None);
    assert_eq!(within(d, Path::new("a/../../x")), None);
    assert!(link_descends(Path::new("base/1")));
    assert!(link_descends(Path::new("./x")));
    for escaping in ["/etc", "..", "a/../..", "a/..", ""] {
        assert!(!link_descends(Path::new(escaping)), "{escaping}");
    }
}

fn gz_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn unpack_bytes(dir: &Path, data: Vec<u8>) -> Result<Unpacked> {
    let (tx, rx) = mpsc::channel(data.len() / 100 + 2);
    for piece in data.chunks(100) {
        tx.try_send(Bytes::copy_from_slice(piece)).unwrap();
    }
    drop(tx);
    let (tar_tx, tar_rx) = mpsc::channel(CHANNEL_CHUNKS);
    let gunzipper = std::thread::spawn(move || gunzip(ChannelReader::new(rx), tar_tx));
    let unpacked = unpack(ChannelReader::new(tar_rx), dir, None);
    gunzipper.join().unwrap()?;
    unpacked
}

#[test]
fn unpacks_with_pgdata_modes_and_names_bad_archives() {
    let dir = tempfile::tempdir().unwrap();
    let archive = gz_tar(&[("PG_VERSION", b"15\n"), ("base/1/1259", &[7u8; 10000])]);
    let stats = unpack_bytes(dir.path(), archive.clone()).unwrap();
    assert_eq!((stats.entries, stats.bytes), (2, 10003));
    let meta = std::fs::metadata(dir.path().join("base/1/1259")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read(dir.path().join("PG_VERSION")).unwrap(),
        b"15\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let truncated = archive[..archive.len() - 30].to_vec();
    let e = unpack_bytes(dir.path(), truncated).err().unwrap();
    assert!(format!("{e:#}").contains("truncated archive"), "{e:#}");

    let dir = tempfile::tempdir().unwrap();
    let mut corrupt = archive.clone();
    corrupt[0] = b'x';
    let e = unpack_bytes(dir.path(), corrupt).err().unwrap();
    assert!(format!("{e:#}").contains("corrupt archive"), "{e:#}");

    let dir = tempfile::tempdir().unwrap();
    let mut bad_crc = archive;
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let e = unpack_bytes(dir.path(), bad_crc).err().unwrap();
    assert!(format!("{e:#}").contains("corrupt archive"), "{e:#}");
}

/// A tar of directories, symlinks and files, gzip'd.
fn gz_tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            h.set_size(0);
            b.append_link(&mut h, name, std::str::from_utf8(data).unwrap())
                .unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn files_written_directly_replace_and_never_go_through_a_symlink() {
    use tar::EntryType::{Directory, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let big = vec![5u8; 3 * WRITE_BUFFER + 17];
    let archive = gz_tar_of(&[
        ("base/", Directory, b""),
        ("base/1/", Directory, b""),
        ("base/1/2", Regular, b"old"),
        ("base/1/2", Regular, b"new"),
        ("base/1/3", Regular, &big),
        ("base/1/empty", Regular, b""),
    ]);
    let stats = unpack_bytes(dir.path(), archive).unwrap();
    assert_eq!(stats.entries, 6);
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    assert_eq!(read("base/1/2"), b"new", "a later entry replaces the file");
    assert_eq!(read("base/1/3"), big);
    assert!(read("base/1/empty").is_empty());
    for p in ["base/1/2", "base/1/3"] {
        let mode = std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{p}");
    }

    // A file under a symlink to a directory the archive made is not written
    // directly: tar follows the link, inside PGDATA.
    let dir = tempfile::tempdir().unwrap();
    let archive = gz_tar_of(&[
        ("base/", Directory, b""),
        ("base/real/", Directory, b""),
        ("base/link", Symlink, b"real"),
        ("base/link/f", Regular, b"x"),
    ]);
    unpack_bytes(dir.path(), archive).unwrap();
    assert_eq!(std::fs::read(dir.path().join("base/real/f")).unwrap(), b"x");
    assert!(std::fs::symlink_metadata(dir.path().join("base/link"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A directory made by the archive, then replaced by a symlink out of
    // PGDATA: a file under it must not land outside.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    for entries in [
        vec![
            ("base/", Directory, &b""[..]),
            ("base/evil", Symlink, target.as_bytes()),
            ("base/evil/f", Regular, &b"x"[..]),
        ],
        vec![
            ("base/", Directory, &b""[..]),
            ("base/evil", Symlink, target.as_bytes()),
            ("base/evil/", Directory, &b""[..]),
            ("base/evil/f", Regular, &b"x"[..]),
        ],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let before = mode(outside.path());
        let result = unpack_bytes(dir.path(), gz_tar_of(&entries));
        assert!(result.is_err(), "{entries:?}");
        assert!(!outside.path().join("f").exists(), "{entries:?}");
        assert_eq!(mode(outside.path()), before, "{entries:?}");
    }
}

#[test]
fn many_small_files_are_each_written_whole_and_in_order() {
    use tar::EntryType::{Directory, Regular};
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("base/{}/{i}", i % 3)).collect();
    let datas: Vec<Vec<u8>> = (0..300).map(|i| vec![(i % 251) as u8; i * 37]).collect();
    let mut entries: Vec<(&str, tar::EntryType, &[u8])> = vec![("base/", Directory, b"")];
    for d in ["base/0/", "base/1/", "base/2/"] {
        entries.push((d, Directory, b""));
    }
    for (n, d) in names.iter().zip(&datas) {
        entries.push((n, Regular, d));
    }
    // A later entry for a file still queued replaces it.
    entries.push(("base/0/0", Regular, b"last"));
    let stats = unpack_bytes(dir.path(), gz_tar_of(&entries)).unwrap();
    assert_eq!(stats.entries, 305);
    for (i, (n, d)) in names.iter().zip(&datas).enumerate().skip(1) {
        assert_eq!(&std::fs::read(dir.path().join(n)).unwrap(), d, "{i}");
    }
    assert_eq!(std::fs::read(dir.path().join("base/0/0")).unwrap(), b"last");

    // A failure to write a file (here: one over a directory) fails the unpacking.
    let dir = tempfile::tempdir().unwrap();
    let archive = gz_tar_of(&[
        ("base/", Directory, b""),
        ("base/d/", Directory, b""),
        ("base/d", Regular, b"x"),
        ("base/f", Regular, b"y"),
    ]);
    let e = unpack_bytes(dir.path(), archive).err().unwrap();
    assert!(format!("{e:#}").contains("base/d"), "{e:#}");
}
