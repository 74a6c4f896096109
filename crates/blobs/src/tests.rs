use std::io::Write as _;

use super::*;
use zip::write::SimpleFileOptions;

enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

fn make_zip(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for e in entries {
        match e {
            Entry::File(name, data, mode) => {
                let opts = SimpleFileOptions::default().unix_permissions(*mode);
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
            Entry::Dir(name) => {
                w.add_directory(*name, SimpleFileOptions::default())
                    .unwrap();
            }
            Entry::Link(name, target) => {
                w.add_symlink(*name, *target, SimpleFileOptions::default())
                    .unwrap();
            }
        }
    }
    w.finish().unwrap().into_inner()
}

fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = BlobStore::open(dir.path()).unwrap();
    (dir, s)
}

fn nothing_left(dir: &Path) {
    let code: Vec<_> = fs::read_dir(dir.join("code")).unwrap().collect();
    let tmp: Vec<_> = fs::read_dir(dir.join("tmp")).unwrap().collect();
    assert!(
        code.is_empty() && tmp.is_empty(),
        "code: {code:?} tmp: {tmp:?}"
    );
}

#[test]
fn unpacks_valid_package_read_only_with_exec_bits() {
    let (dir, s) = store();
    let zip = make_zip(&[
        Entry::File("bootstrap", b"#!/bin/sh\necho hi\n", 0o755),
        Entry::Dir("lib/"),
        Entry::File("lib/data.txt", b"data", 0o4777),
        Entry::Link("current", "lib/data.txt"),
    ]);
    let info = s
        .put_package(&zip, model::limits::UNZIPPED_MAX_BYTES)
        .unwrap();
    assert_eq!(info.zipped_size, zip.len() as u64);
    assert_eq!(info.unzipped_size, 18 + 4 + "lib/data.txt".len() as u64);
    assert_eq!(info.digest, Digest256::of(&zip));
    let code = s.code_dir(&info.digest.hex);
    let mode = |p: &str| fs::metadata(code.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bootstrap"), 0o555);
    assert_eq!(
        mode("lib/data.txt"),
        0o555,
        "setuid dropped, write bits cleared"
    );
    assert_eq!(fs::read(code.join("current")).unwrap(), b"data");
    assert_eq!(s.read(&info.digest.hex).unwrap(), zip);
    // The same bytes again: same identity, still one copy.
    let again = s
        .put_package(&zip, model::limits::UNZIPPED_MAX_BYTES)
        .unwrap();
    assert_eq!(again, info);
    assert!(
        fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    s.delete(&info.digest.hex).unwrap();
    assert!(!code.exists());
    nothing_left(dir.path());
}

#[test]
fn rejects_what_is_not_a_zip() {
    let (dir, s) = store();
    for junk in [&b"this is not a zipfile"[..], b"", b"PK\x03\x04garbage"] {
        let err = s.put_package(junk, 1 << 20).unwrap_err();
        assert!(matches!(err, PackageError::NotAZip), "{err:?}");
        assert_eq!(
            err.to_string(),
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        );
    }
    nothing_left(dir.path());
}

#[test]
fn rejects_escaping_entries_and_writes_nothing() {
    let (dir, s) = store();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            make_zip(&[
                Entry::File("ok.txt", b"x", 0o644),
                Entry::File("../evil", b"x", 0o644),
            ]),
            "../evil",
        ),
        (
            make_zip(&[Entry::File("a/../../evil", b"x", 0o644)]),
            "a/../../evil",
        ),
        (
            make_zip(&[Entry::File("/etc/evil", b"x", 0o644)]),
            "/etc/evil",
        ),
        (make_zip(&[Entry::Link("l", "../../etc/passwd")]), "l"),
        (make_zip(&[Entry::Link("l", "/etc/passwd")]), "l"),
        (make_zip(&[Entry::Link("sub/l", "../../x")]), "sub/l"),
        (
            make_zip(&[
                Entry::Dir("real/"),
                Entry::Link("lib", "real"),
                Entry::File("lib/x", b"x", 0o644),
            ]),
            "lib/x",
        ),
    ];
    for (zip, entry) in cases {
        match s.put_package(&zip, 1 << 20) {
            Err(PackageError::UnsafeEntry { entry: e, .. }) => assert_eq!(e, entry),
            other => panic!("{entry}: {other:?}"),
        }
        nothing_left(dir.path());
    }
    // A link that goes up and comes back down stays inside and is fine.
    let ok = make_zip(&[
        Entry::File("a/b.txt", b"x", 0o644),
        Entry::Link("a/c", "../a/b.txt"),
    ]);
    s.put_package(&ok, 1 << 20).unwrap();
}

#[test]
fn zip_bomb_stops_at_the_unzipped_limit() {
    let (dir, s) = store();
    let zeros = vec![0u8; 8 << 20];
    let zip = make_zip(&[
        Entry::File("a", &zeros, 0o644),
        Entry::File("b", &zeros, 0o644),
    ]);
    assert!(zip.len() < 100 << 10, "compresses well: {}", zip.len());
    let err = s.put_package(&zip, 10 << 20).unwrap_err();
    assert!(
        matches!(err, PackageError::UnzippedTooLarge { limit } if limit == 10 << 20),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Unzipped size must be smaller than 10485760 bytes"
    );
    nothing_left(dir.path());
}

#[test]
fn zipped_size_limit() {
    let (dir, s) = store();
    let big = vec![0u8; model::limits::ZIP_MAX_BYTES as usize + 1];
    let err = s.put_package(&big, u64::MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Zipped size must be smaller than 52428800 bytes"
    );
    nothing_left(dir.path());
}

#[test]
fn entry_paths() {
    assert_eq!(entry_path("a/./b").unwrap(), PathBuf::from("a/b"));
    assert!(entry_path("a/../b").is_err());
    assert!(entry_path("/a").is_err());
    assert!(link_stays_inside(Path::new("a/b/l"), "../../x"));
    assert!(!link_stays_inside(Path::new("a/b/l"), "../../../x"));
    assert!(!link_stays_inside(Path::new("l"), ".."));
    assert!(link_stays_inside(Path::new("l"), "."));
}

#[test]
fn layers_merge_in_order_and_go_with_their_packages() {
    let (dir, s) = store();
    let a = s
        .put_package(
            &make_zip(&[
                Entry::File("python/a.py", b"A = 1", 0o644),
                Entry::File("lib/x", b"from a", 0o644),
                Entry::Dir("lib/sub/"),
            ]),
            u64::MAX,
        )
        .unwrap();
    let b = s
        .put_package(
            &make_zip(&[
                Entry::File("lib/x", b"from b", 0o644),
                Entry::File("bin/tool", b"#!/bin/sh\n", 0o755),
                Entry::Link("lib/sub", "../python"),
            ]),
            u64::MAX,
        )
        .unwrap();
    assert_eq!(s.ensure_merged(&[]).unwrap(), None);
    assert_eq!(
        s.ensure_merged(std::slice::from_ref(&a.digest.hex))
            .unwrap(),
        Some(s.code_dir(&a.digest.hex))
    );
    let order = [a.digest.hex.clone(), b.digest.hex.clone()];
    let m = s.ensure_merged(&order).unwrap().unwrap();
    assert_eq!(fs::read(m.join("python/a.py")).unwrap(), b"A = 1");
    assert_eq!(
        fs::read(m.join("lib/x")).unwrap(),
        b"from b",
        "the later layer wins"
    );
    assert_eq!(
        fs::read_link(m.join("lib/sub")).unwrap(),
        Path::new("../python")
    );
    assert_eq!(
        fs::metadata(m.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0o111
    );
    assert!(fs::metadata(&m).unwrap().permissions().readonly());
    assert_eq!(s.ensure_merged(&order).unwrap().unwrap(), m, "built once");
    let reversed = s
        .ensure_merged(&[b.digest.hex.clone(), a.digest.hex.clone()])
        .unwrap()
        .unwrap();
    assert_eq!(fs::read(reversed.join("lib/x")).unwrap(), b"from a");
    s.delete(&a.digest.hex).unwrap();
    assert!(!m.exists() && !reversed.exists());
    let left: Vec<_> = fs::read_dir(dir.path().join("merged")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_chain_of_links_that_climbs_out_is_refused() {
    // Each link on its own looks inside (`lN -> l(N-1)/..` climbs one level
    // from a directory one level down), but followed through each other
    // `l6` is six levels above the package, so `x` would read the host's
    // /etc/passwd when the platform opens it.
    let (dir, s) = store();
    let mut entries = vec![Entry::Link("l0", ".")];
    let names: Vec<String> = (1..=6).map(|n| format!("l{n}")).collect();
    let targets: Vec<String> = (1..=6).map(|n| format!("l{}/..", n - 1)).collect();
    for (name, target) in names.iter().zip(&targets) {
        entries.push(Entry::Link(name, target));
    }
    entries.push(Entry::Link("x", "l6/etc/passwd"));
    let zip = make_zip(&entries);
    match s.put_package(&zip, 1 << 20) {
        Err(e @ PackageError::UnsafeEntry { .. }) => {
            let PackageError::UnsafeEntry { entry, reason } = &e else {
                unreachable!()
            };
            assert_eq!(entry, "l1", "l1 -> l0/.. is the package's parent: {e}");
            assert_eq!(*reason, "is a link that resolves outside the package root");
        }
        other => panic!("accepted a chain of links leaving the package: {other:?}"),
    }
    nothing_left(dir.path());
    // The same shape pointing back down stays inside and is fine, and so are
    // dangling links and loops (the kernel fails those inside the package).
    let ok = make_zip(&[
        Entry::Dir("a/b/"),
        Entry::Link("a/b/up", ".."),
        Entry::Link("a/up2", "b/up/.."),
        Entry::Link("here", "a/up2/a/b"),
        Entry::Link("dangling", "nope/x"),
        Entry::Link("loop1", "loop2"),
        Entry::Link("loop2", "loop1/x"),
    ]);
    s.put_package(&ok, 1 << 20).unwrap();
}

#[test]
fn links_resolve_through_links_created_later() {
    let (dir, s) = store();
    // `a -> b/..` reads as the package root, and b is not there yet; once
    // `b -> e/..` and `e -> .` exist, a resolves to the package's parent.
    let zip = make_zip(&[
        Entry::Link("a", "b/.."),
        Entry::Link("b", "e/.."),
        Entry::Link("e", "."),
    ]);
    match s.put_package(&zip, 1 << 20) {
        Err(PackageError::UnsafeEntry { entry, .. }) => assert_eq!(entry, "a"),
        other => panic!("{other:?}"),
    }
    nothing_left(dir.path());
}

#[test]
fn deep_and_numerous_entries_get_a_clear_refusal() {
    let (dir, s) = store();
    let deep = "d/".repeat(3000) + "f";
    let err = s
        .put_package(&make_zip(&[Entry::File(&deep, b"x", 0o644)]), 1 << 20)
        .unwrap_err();
    assert!(
        matches!(err, PackageError::UnsafeEntry { .. }),
        "a client error, not an I/O failure: {err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("Could not unzip uploaded file: the entry 'd/d/d/"),
        "{msg}"
    );
    assert!(
        msg.len() < 400,
        "the message quotes a bounded part of the name: {msg}"
    );
    nothing_left(dir.path());
    // 129 directories deep is refused, 128 is fine.
    let at = |n: usize| "d/".repeat(n) + "f";
    let err = s
        .put_package(
            &make_zip(&[Entry::File(&at(MAX_DEPTH + 1), b"x", 0o644)]),
            1 << 20,
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("is nested more than 128 directories deep."),
        "{err}"
    );
    nothing_left(dir.path());
    s.put_package(
        &make_zip(&[Entry::File(&at(MAX_DEPTH), b"x", 0o644)]),
        1 << 20,
    )
    .unwrap();
    // Too many entries: refused before anything is written.
    let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("{i}")).collect();
    let many: Vec<Entry<'_>> = names.iter().map(|n| Entry::File(n, b"", 0o644)).collect();
    let (dir2, s2) = store();
    let err = s2.put_package(&make_zip(&many), 1 << 20).unwrap_err();
    assert!(
        matches!(err, PackageError::TooManyEntries { limit: MAX_ENTRIES }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Could not unzip uploaded file: the package has more than 100000 entries (files, directories and links)."
    );
    nothing_left(dir2.path());
    // A long component is a client error too.
    let long = "n".repeat(300);
    let err = s2
        .put_package(&make_zip(&[Entry::File(&long, b"x", 0o644)]), 1 << 20)
        .unwrap_err();
    assert!(matches!(err, PackageError::UnsafeEntry { .. }), "{err:?}");
}
