//! A local process racing the store: a folder directory (or its `cur/`) checked when the
//! folder was opened is swapped for a symbolic link to a directory outside the root. Every
//! later message operation must act on the directory that was checked, never through the
//! link. Listed in docs/reliability.md ("Hostile server cases (sync data)").

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use mailfold_store::{
    CaseMode, Folder, FolderName, Maildir, MaildirFlags, MaildirOptions, MemoryAliases, NewMessage,
    Subdir,
};

const WIRE: &[u8] = b"From: a@example.org\r\nSubject: race\r\n\r\nbody\r\n";

fn open(root: &Path) -> Maildir {
    Maildir::open(
        root,
        MaildirOptions {
            fsync: true,
            case: CaseMode::Sensitive,
            ..MaildirOptions::default()
        },
    )
    .unwrap()
}

fn inbox(md: &Maildir) -> Folder {
    let n = FolderName::new(vec!["INBOX".to_owned()]).unwrap();
    md.ensure_folder(&n, &mut MemoryAliases::new()).unwrap()
}

/// A Maildir outside the root, where a swapped-in link points.
fn outside(base: &Path) -> PathBuf {
    let o = base.join("outside");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(o.join(sub)).unwrap();
    }
    o
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_cur_swapped_for_a_link_after_the_folder_was_opened_is_never_written_through() {
    let base = tempfile::tempdir().unwrap();
    let md = open(&base.path().join("mail"));
    let out = outside(base.path());
    let f = inbox(&md);
    let mut w = f
        .create_message(NewMessage {
            flags: MaildirFlags::parse("S"),
            internaldate: Some(1_700_000_000),
        })
        .unwrap();
    w.write_chunk(WIRE).unwrap();
    // The racer: the checked `cur/` moves aside, a link to elsewhere takes its name.
    let cur = f.path().join("cur");
    fs::rename(&cur, f.path().join("cur.held")).unwrap();
    symlink(out.join("cur"), &cur).unwrap();
    let _ = w.commit();
    assert!(
        names(&out.join("cur")).is_empty(),
        "written through the link"
    );
    assert_eq!(names(&f.path().join("cur.held")).len(), 1);
    // Scans, too, read the directory that was checked.
    fs::write(out.join("cur").join("1.decoy,S=5:2,S"), b"decoy").unwrap();
    let seen = f.scan().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(!seen[0].base.as_str().contains("decoy"));
}

#[test]
fn a_folder_swapped_for_a_link_is_never_read_changed_or_written_through() {
    let base = tempfile::tempdir().unwrap();
    let md = open(&base.path().join("mail"));
    let out = outside(base.path());
    let f = inbox(&md);
    let mut w = f.create_message(NewMessage::default()).unwrap();
    w.write_chunk(WIRE).unwrap();
    let kept = w.commit_to(Subdir::Cur).unwrap().entry;
    let name = kept.path.file_name().unwrap().to_owned();
    // A decoy with the same name outside, then the whole folder swapped for a link to it.
    fs::write(out.join("cur").join(&name), b"decoy, not to be touched\n").unwrap();
    let dir = f.path().to_path_buf();
    let held = dir.with_file_name("INBOX.held");
    fs::rename(&dir, &held).unwrap();
    symlink(&out, &dir).unwrap();

    // An upload reads the checked file, not the decoy.
    let mut text = String::new();
    f.open_upload(&kept)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("Subject: race"), "{text}");
    // A flag change renames the checked file.
    let flagged = f.set_flags(&kept, &MaildirFlags::parse("FS")).unwrap();
    assert_eq!(
        names(&out.join("cur")),
        [name.to_string_lossy().into_owned()],
        "renamed through the link"
    );
    assert_eq!(names(&held.join("cur")).len(), 1);
    // A new message goes to the checked folder.
    let mut w = f.create_message(NewMessage::default()).unwrap();
    w.write_chunk(WIRE).unwrap();
    let _ = w.commit_to(Subdir::New);
    assert!(
        names(&out.join("new")).is_empty(),
        "written through the link"
    );
    assert!(
        names(&out.join("tmp")).is_empty(),
        "written through the link"
    );
    assert_eq!(names(&held.join("new")).len(), 1);
    // A deletion removes the checked file and leaves the decoy alone.
    assert!(f.delete(&flagged).unwrap());
    assert_eq!(
        fs::read(out.join("cur").join(&name)).unwrap(),
        b"decoy, not to be touched\n"
    );
    assert!(names(&held.join("cur")).is_empty());
    // Opening the folder again checks it again: the link is refused.
    assert!(md
        .folder(&mailfold_store::RelPath::parse("INBOX").unwrap())
        .is_err());
}
