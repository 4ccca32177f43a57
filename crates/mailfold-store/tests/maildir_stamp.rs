//! Directory stamps and the scan that skips `lstat` for known files.

use std::time::{Duration, SystemTime};

use mailfold_store::{DirStamp, Folder, Maildir, MessageBase, RelPath};

fn folder(root: &std::path::Path, name: &str) -> Folder {
    let md = Maildir::open(root, Default::default()).unwrap();
    md.create_folder_at(&RelPath::parse(name).unwrap()).unwrap()
}

fn stamp(f: &Folder) -> DirStamp {
    f.stamp().unwrap().unwrap()
}

/// Sets both directories' times back, as if the last change were long ago
/// (the ctime cannot be set back, so this is about mtime only).
fn age(f: &Folder) {
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 123);
    for sub in ["cur", "new"] {
        filetime::set_file_mtime(f.path().join(sub), old).unwrap();
    }
}

#[test]
fn every_mutt_like_change_moves_the_stamp() {
    let tmp = tempfile::tempdir().unwrap();
    let a = folder(tmp.path(), "A");
    let b = folder(tmp.path(), "B");
    std::fs::write(a.path().join("cur/1.M1P1.h,S=5:2,"), b"hello").unwrap();
    let mut last = (stamp(&a), stamp(&b));
    let mut step = |what: &str, f: &dyn Fn()| {
        // Directory times have the kernel's tick as resolution.
        std::thread::sleep(Duration::from_millis(15));
        f();
        let now = (stamp(&a), stamp(&b));
        assert_ne!(now, last, "{what} left the stamps alone");
        last = now;
    };
    step("a flag rename", &|| {
        std::fs::rename(
            a.path().join("cur/1.M1P1.h,S=5:2,"),
            a.path().join("cur/1.M1P1.h,S=5:2,S"),
        )
        .unwrap()
    });
    step("a delivery into new/", &|| {
        std::fs::write(a.path().join("new/2.M2P2.h,S=2"), b"hi").unwrap()
    });
    step("a move between folders", &|| {
        std::fs::rename(
            a.path().join("cur/1.M1P1.h,S=5:2,S"),
            b.path().join("cur/1.M1P1.h,S=5:2,S"),
        )
        .unwrap()
    });
    let before_b = stamp(&b);
    step("a deletion", &|| {
        std::fs::remove_file(b.path().join("cur/1.M1P1.h,S=5:2,S")).unwrap()
    });
    assert_ne!(stamp(&b), before_b);
    // Setting the mtime back does not restore the stamp: the ctime moved.
    let s = stamp(&a);
    age(&a);
    assert_ne!(stamp(&a), s);
    // No stamp for a folder without new/.
    std::fs::remove_dir(b.path().join("new")).unwrap();
    assert_eq!(b.stamp().unwrap(), None);
}

#[test]
fn a_fresh_stamp_is_not_settled_an_old_one_is() {
    let tmp = tempfile::tempdir().unwrap();
    let a = folder(tmp.path(), "A");
    let now = SystemTime::now();
    let s = stamp(&a);
    assert!(!s.is_settled(now), "just created");
    assert!(s.is_settled(now + DirStamp::SETTLE + Duration::from_millis(50)));
    assert!(!s.is_settled(now + DirStamp::SETTLE - Duration::from_millis(500)));
}

#[test]
fn scan_with_describes_known_files_from_their_names() {
    let tmp = tempfile::tempdir().unwrap();
    let a = folder(tmp.path(), "A");
    std::fs::write(a.path().join("cur/1.M1P1.h,S=5:2,S"), b"hello").unwrap();
    std::fs::write(a.path().join("new/2.M2P2.h,S=2"), b"hi").unwrap();
    // No size in the name: always looked at.
    std::fs::write(a.path().join("cur/3.M3P3.h:2,"), b"three").unwrap();
    // A symbolic link is never a message, known or not.
    std::os::unix::fs::symlink("/etc/hostname", a.path().join("cur/4.M4P4.h,S=9:2,")).unwrap();
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let known = |b: &MessageBase| (b.as_str() != "2.M2P2.h,S=2").then_some(date);
    let mut got = a.scan_with(&known).unwrap();
    got.sort_by(|x, y| x.base.as_str().cmp(y.base.as_str()));
    let names: Vec<&str> = got.iter().map(|e| e.base.as_str()).collect();
    assert_eq!(names, ["1.M1P1.h,S=5", "2.M2P2.h,S=2", "3.M3P3.h"]);
    // Known with a size in the name: the caller's date, the name's size.
    assert_eq!((got[0].size, got[0].mtime), (5, date));
    // Unknown or without a size: stat.
    assert_eq!(got[1].size, 2);
    assert_ne!(got[1].mtime, date);
    assert_eq!(got[2].size, 5);
    assert_ne!(got[2].mtime, date);
    // The same files as a plain scan.
    let mut plain = a.scan().unwrap();
    plain.sort_by(|x, y| x.base.as_str().cmp(y.base.as_str()));
    assert_eq!(
        plain
            .iter()
            .map(|e| (&e.base, &e.path, e.size))
            .collect::<Vec<_>>(),
        got.iter()
            .map(|e| (&e.base, &e.path, e.size))
            .collect::<Vec<_>>()
    );
}
