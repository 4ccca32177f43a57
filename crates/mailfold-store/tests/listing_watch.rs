//! `ListingWatch`: the digest and count it folds from the kernel's reports equal those of a
//! fresh listing of the folder, whoever changed it (this process through `Folder`, another
//! one through plain file operations), and what it cannot follow it says it does not know.

use std::fs;
use std::path::Path;

use mailfold_store::{
    fold_listing_keys, listing_key_of_file, CaseMode, Folder, FolderId, FolderName, ListingWatch,
    Maildir, MaildirFlags, MaildirOptions, MemoryAliases, NewMessage,
};

const WIRE: &[u8] = b"From: a@example.org\r\nSubject: watch\r\n\r\nbody\r\n";

fn open(root: &Path) -> Maildir {
    Maildir::open(
        root,
        MaildirOptions {
            fsync: false,
            case: CaseMode::Sensitive,
            ..MaildirOptions::default()
        },
    )
    .unwrap()
}

fn folder(md: &Maildir, name: &str) -> Folder {
    let n = FolderName::new(vec![name.to_owned()]).unwrap();
    md.ensure_folder(&n, &mut MemoryAliases::new()).unwrap()
}

/// What a listing of the folder gives, as the end-of-run check computes it.
fn listed(f: &Folder) -> (i64, u64) {
    let files = f.scan().unwrap();
    let keys = files.iter().map(|e| listing_key_of_file(&e.base, &e.flags));
    (fold_listing_keys(keys), files.len() as u64)
}

fn deliver(f: &Folder, flags: &str) -> mailfold_store::MessageEntry {
    let mut w = f
        .create_message(NewMessage {
            flags: MaildirFlags::parse(flags),
            internaldate: Some(1_700_000_000),
        })
        .unwrap();
    w.write_chunk(WIRE).unwrap();
    w.commit().unwrap().entry
}

#[test]
fn the_followed_listing_is_the_listing_whoever_changed_the_folder() {
    let base = tempfile::tempdir().unwrap();
    let md = open(&base.path().join("mail"));
    let f = folder(&md, "Work");
    let a = deliver(&f, "");
    let b = deliver(&f, "S");
    let c = deliver(&f, "F");
    let watch = ListingWatch::new();
    assert!(
        watch.is_active(),
        "inotify is available on the test machine"
    );
    let (digest, count) = listed(&f);
    let id = FolderId(7);
    let at_start = watch.add(id, &f, digest, count).expect("followed");
    assert_eq!(Some(at_start), f.stamp().unwrap());

    // This process: a flag change (a rename), a delivery, a deletion.
    f.set_flags(&a, &MaildirFlags::parse("RS")).unwrap();
    deliver(&f, "");
    f.delete(&b).unwrap();
    // Another one: a mail reader's rename into cur/, a new file dropped into new/, a file
    // removed, and what a listing does not count (a hidden file, a directory).
    let dir = f.path();
    let c_name = c.path.file_name().unwrap().to_string_lossy().into_owned();
    let c_base = c_name.split(':').next().unwrap().to_owned();
    fs::rename(&c.path, dir.join("cur").join(format!("{c_base}:2,FS"))).unwrap();
    fs::write(dir.join("new").join("1700000001.M1P1.mutt"), WIRE).unwrap();
    fs::write(dir.join("cur").join(".hidden"), b"x").unwrap();
    fs::create_dir(dir.join("cur").join("sub")).unwrap();

    watch.drain();
    let now = f.stamp().unwrap().unwrap();
    assert_eq!(watch.listing(id, &now), Some(listed(&f)));
    assert!(watch.follows(id));

    // Forgotten (its stamp did not prove the listing): nothing is known any more.
    watch.forget(id);
    assert_eq!(watch.listing(id, &now), None);
}

#[test]
fn a_replaced_directory_is_no_longer_followed() {
    let base = tempfile::tempdir().unwrap();
    let md = open(&base.path().join("mail"));
    let f = folder(&md, "Lists");
    deliver(&f, "S");
    let watch = ListingWatch::new();
    let (digest, count) = listed(&f);
    let id = FolderId(3);
    watch.add(id, &f, digest, count).expect("followed");
    // `cur/` moved aside and a new one put in its place: the watched directory is gone
    // from the folder, so what the reports say no longer describes it.
    let dir = f.path();
    fs::rename(dir.join("cur"), base.path().join("old-cur")).unwrap();
    fs::create_dir(dir.join("cur")).unwrap();
    watch.drain();
    let now = f.stamp().unwrap().unwrap();
    assert_eq!(watch.listing(id, &now), None);
    assert!(!watch.follows(id));
}

#[test]
fn a_folder_is_followed_once() {
    let base = tempfile::tempdir().unwrap();
    let md = open(&base.path().join("mail"));
    let f = folder(&md, "Once");
    let watch = ListingWatch::new();
    let (digest, count) = listed(&f);
    assert!(watch.add(FolderId(1), &f, digest, count).is_some());
    assert!(watch.add(FolderId(1), &f, digest, count).is_none());
    assert!(watch.follows(FolderId(1)));
    // The same directories under another id: refused, and neither id is trusted (their
    // reports could not be told apart).
    assert!(watch.add(FolderId(2), &f, digest, count).is_none());
    assert!(!watch.follows(FolderId(1)));
    assert!(!watch.follows(FolderId(2)));
}
