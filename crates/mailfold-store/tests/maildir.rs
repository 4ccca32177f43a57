//! Message files: streaming writes, scans, flag renames, moves, uploads,
//! crash safety, and the promise that only mail lands under the root.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use mailfold_store::crlf::ContentHash;
use mailfold_store::{
    CaseMode, Folder, FolderName, Maildir, MaildirFlags, MaildirOptions, MemoryAliases,
    MessageBase, NewMessage, Subdir,
};
use sha2::{Digest, Sha256};

const WIRE: &[u8] = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody line 1\r\nbody\rline 2\r\n";

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

fn folder(md: &Maildir, parts: &[&str]) -> Folder {
    let n = FolderName::new(parts.iter().map(|s| s.to_string()).collect()).unwrap();
    md.ensure_folder(&n, &mut MemoryAliases::new()).unwrap()
}

fn write(
    f: &Folder,
    wire: &[u8],
    flags: &str,
    date: Option<i64>,
) -> mailfold_store::WrittenMessage {
    let mut w = f
        .create_message(NewMessage {
            flags: MaildirFlags::parse(flags),
            internaldate: date,
        })
        .unwrap();
    w.write_chunk(wire).unwrap();
    w.commit().unwrap()
}

fn lf(wire: &[u8]) -> Vec<u8> {
    String::from_utf8(wire.to_vec())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes()
}

#[test]
fn writer_converts_crlf_across_every_chunk_split() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    let expect_hash = ContentHash(Sha256::digest(WIRE).into());
    for split in 0..=WIRE.len() {
        let mut w = inbox.create_message(NewMessage::default()).unwrap();
        w.write_chunk(&WIRE[..split]).unwrap();
        w.write_chunk(&WIRE[split..]).unwrap();
        let done = w.commit().unwrap();
        assert_eq!(
            std::fs::read(&done.entry.path).unwrap(),
            lf(WIRE),
            "split at {split}"
        );
        assert_eq!(done.hash, expect_hash);
        assert_eq!(done.crlf_size, WIRE.len() as u64);
        assert_eq!(done.entry.size, lf(WIRE).len() as u64);
        assert_eq!(done.entry.base.size_field(), Some(done.entry.size));
        assert_eq!(done.entry.base.crlf_size_field(), Some(WIRE.len() as u64));
    }
    // Byte by byte through io::Write.
    let mut w = inbox.create_message(NewMessage::default()).unwrap();
    for b in WIRE {
        w.write_all(std::slice::from_ref(b)).unwrap();
    }
    let done = w.commit().unwrap();
    assert_eq!(std::fs::read(&done.entry.path).unwrap(), lf(WIRE));
    assert_eq!(inbox.scan().unwrap().len(), WIRE.len() + 2);
}

#[test]
fn v0006_mtime_is_internaldate() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    let date = 1_136_214_245; // 2006-01-02T15:04:05Z
    let done = write(&inbox, WIRE, "S", Some(date));
    let mtime = std::fs::metadata(&done.entry.path)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime,
        SystemTime::UNIX_EPOCH + Duration::from_secs(date as u64)
    );
    let scanned = inbox.scan().unwrap();
    assert_eq!(scanned[0].mtime, mtime);
    // The date survives a flag rename and a move.
    let other = folder(&md, &["Archive"]);
    let renamed = inbox
        .set_flags(&scanned[0], &MaildirFlags::parse("FS"))
        .unwrap();
    let moved = inbox.move_to(&renamed, &other).unwrap();
    assert_eq!(
        std::fs::metadata(&moved.path).unwrap().modified().unwrap(),
        mtime
    );
}

#[test]
fn upload_reader_restores_crlf_with_length_known_first() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let drafts = folder(&md, &["Drafts"]);
    let done = write(&drafts, WIRE, "D", None);
    let mut up = drafts.open_upload(&done.entry).unwrap();
    assert_eq!(up.crlf_len, WIRE.len() as u64);
    assert_eq!(up.hash, done.hash);
    let mut sent = Vec::new();
    up.read_to_end(&mut sent).unwrap();
    assert_eq!(sent, WIRE);
    // A file dropped by a user (LF only, no headers: an incomplete draft).
    std::fs::write(
        drafts.path().join("new/1700000000.x.host"),
        b"just text\nmore\n",
    )
    .unwrap();
    let entry = drafts
        .scan()
        .unwrap()
        .into_iter()
        .find(|e| e.subdir == Subdir::New)
        .unwrap();
    let mut up = drafts.open_upload(&entry).unwrap();
    let mut sent = Vec::new();
    up.read_to_end(&mut sent).unwrap();
    assert_eq!(sent, b"just text\r\nmore\r\n");
    assert_eq!(up.crlf_len, sent.len() as u64);
}

#[test]
fn scan_ignores_tmp_dotfiles_and_artefacts_and_reads_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    let a = write(&inbox, WIRE, "SR", None);
    let d = inbox.path();
    std::fs::write(d.join("tmp/1.2.host"), b"half").unwrap();
    std::fs::write(d.join("cur/.hidden:2,S"), b"x").unwrap();
    std::fs::write(d.join("dovecot-uidlist"), b"x").unwrap();
    std::fs::create_dir(d.join("cur/subdir")).unwrap();
    std::fs::write(d.join("new/17.M1P2.host"), b"Subject: new\n\nx\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("cur/link:2,S")).unwrap();
    let mut got = inbox.scan().unwrap();
    got.sort_by(|x, y| x.base.cmp(&y.base));
    assert_eq!(got.len(), 2, "{got:#?}");
    let mine = got.iter().find(|e| e.base == a.entry.base).unwrap();
    assert_eq!(mine.flags.to_string(), "RS");
    assert_eq!(mine.subdir, Subdir::Cur);
    let fresh = got.iter().find(|e| e.subdir == Subdir::New).unwrap();
    assert_eq!(fresh.base.as_str(), "17.M1P2.host");
    assert!(fresh.flags.is_empty());
}

#[test]
fn flag_renames_keep_the_base_and_follow_mutt_renames() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    std::fs::write(inbox.path().join("new/42.M1P1.host"), b"x\n").unwrap();
    let entry = inbox.scan().unwrap().pop().unwrap();
    let seen = inbox.set_flags(&entry, &MaildirFlags::parse("S")).unwrap();
    assert_eq!(seen.subdir, Subdir::Cur);
    assert!(inbox.path().join("cur/42.M1P1.host:2,S").is_file());
    assert!(!entry.path.exists());
    // mutt renames the file behind our back; set_flags finds it by base.
    std::fs::rename(&seen.path, inbox.path().join("cur/42.M1P1.host:2,FS")).unwrap();
    let replied = inbox.set_flags(&seen, &MaildirFlags::parse("RS")).unwrap();
    assert_eq!(replied.path, inbox.path().join("cur/42.M1P1.host:2,RS"));
    assert_eq!(inbox.scan().unwrap().len(), 1);
    // Delete, twice: the second reports it was already gone.
    assert!(inbox.delete(&replied).unwrap());
    assert!(!inbox.delete(&replied).unwrap());
    assert!(inbox.scan().unwrap().is_empty());
}

#[test]
fn move_between_folders_keeps_base_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    let archive = folder(&md, &["Archive", "2024"]);
    let done = write(&inbox, WIRE, "FS", None);
    let moved = inbox.move_to(&done.entry, &archive).unwrap();
    assert_eq!(moved.base, done.entry.base);
    assert_eq!(moved.flags, done.entry.flags);
    assert!(inbox.scan().unwrap().is_empty());
    let there = archive.scan().unwrap();
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].base, done.entry.base);
    assert_eq!(std::fs::read(&there[0].path).unwrap(), lf(WIRE));
    // Refuses to overwrite.
    let again = write(&inbox, WIRE, "", None);
    std::fs::copy(
        &again.entry.path,
        archive
            .path()
            .join("cur")
            .join(again.entry.path.file_name().unwrap()),
    )
    .unwrap();
    assert!(inbox.move_to(&again.entry, &archive).is_err());
}

#[test]
fn a_crash_mid_write_leaves_no_visible_message() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    let mut w = inbox.create_message(NewMessage::default()).unwrap();
    w.write_chunk(&WIRE[..20]).unwrap();
    // A crash: no destructor, no commit. The file being written has no name (`O_TMPFILE`,
    // which this file system has), so nothing at all is left, not even in tmp/.
    std::mem::forget(w);
    assert!(inbox.scan().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(inbox.path().join("tmp")).unwrap().count(),
        0
    );
    // What a writer without unnamed files (another program, another file system) leaves:
    // stale leftovers are cleaned, young ones are left for their writer.
    std::fs::write(
        inbox.path().join("tmp").join("1700000000.M1P1.other"),
        b"half",
    )
    .unwrap();
    assert!(inbox.scan().unwrap().is_empty());
    assert_eq!(inbox.clean_tmp(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(inbox.clean_tmp(Duration::ZERO).unwrap(), 1);
    // Dropping or aborting a writer removes its file.
    let mut w = inbox.create_message(NewMessage::default()).unwrap();
    w.write_chunk(WIRE).unwrap();
    drop(w);
    let w = inbox.create_message(NewMessage::default()).unwrap();
    w.abort().unwrap();
    assert_eq!(
        std::fs::read_dir(inbox.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(inbox.scan().unwrap().is_empty());
}

#[test]
fn folder_create_rename_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let mut reg = MemoryAliases::new();
    let n = |p: &[&str]| FolderName::new(p.iter().map(|s| s.to_string()).collect()).unwrap();
    let work = md.ensure_folder(&n(&["Work"]), &mut reg).unwrap();
    let proj = md
        .ensure_folder(&n(&["Work", "Projects"]), &mut reg)
        .unwrap();
    write(&proj, WIRE, "S", None);
    // Rename the parent: the child moves with it.
    let renamed = md
        .rename_folder(work.rel(), &n(&["Job"]), &mut reg)
        .unwrap();
    assert_eq!(renamed.rel().as_str(), "Job");
    let moved_child = md.folder(&renamed.rel().join("Projects").unwrap()).unwrap();
    assert_eq!(moved_child.scan().unwrap().len(), 1);
    // Renaming onto an existing folder is refused.
    md.ensure_folder(&n(&["Other"]), &mut reg).unwrap();
    assert!(md
        .rename_folder(renamed.rel(), &n(&["Other"]), &mut reg)
        .is_err());
    // A non-empty folder is kept unless forced.
    let err = md.delete_folder(moved_child.rel(), false).unwrap_err();
    assert!(matches!(err, mailfold_store::Error::NotEmpty { .. }));
    md.delete_folder(moved_child.rel(), true).unwrap();
    assert!(!moved_child.path().exists());
    // Job is empty now and goes without force.
    md.delete_folder(renamed.rel(), false).unwrap();
    let names: Vec<String> = md
        .list_folders(&reg)
        .unwrap()
        .folders
        .into_iter()
        .map(|f| f.name.to_string())
        .collect();
    assert_eq!(names, ["Other"]);
}

#[test]
fn deleting_a_parent_keeps_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let parent = folder(&md, &["Work"]);
    let child = folder(&md, &["Work", "Projects"]);
    write(&child, WIRE, "", None);
    md.delete_folder(parent.rel(), false).unwrap();
    assert!(!parent.path().join("cur").exists());
    assert_eq!(child.scan().unwrap().len(), 1);
    let listing = md.list_folders(&MemoryAliases::new()).unwrap();
    let p = listing
        .folders
        .iter()
        .find(|f| f.rel.as_str() == "Work")
        .unwrap();
    assert!(!p.is_maildir);
}

#[test]
fn message_base_rules() {
    assert!(MessageBase::new("").is_err());
    assert!(MessageBase::new(".x").is_err());
    assert!(MessageBase::new("a/b").is_err());
    assert!(MessageBase::new("a:b").is_err());
    let (b, f) = MessageBase::parse_file_name("1.M2P3.host,S=10,W=12:2,SF").unwrap();
    assert_eq!(b.as_str(), "1.M2P3.host,S=10,W=12");
    assert_eq!(f.to_string(), "FS");
    assert_eq!(b.size_field(), Some(10));
    assert_eq!(b.crlf_size_field(), Some(12));
    assert_eq!(b.file_name(&f), "1.M2P3.host,S=10,W=12:2,FS");
}

/// What `notmuch new` would see: after a busy session, every regular file
/// under the root is a message in some `cur/` or `new/`; nothing else.
#[test]
fn only_mail_is_written_under_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("local");
    let md = Maildir::open(&root, MaildirOptions::default()).unwrap(); // probes case
    let mut reg = MemoryAliases::new();
    let n = |p: &[&str]| FolderName::new(p.iter().map(|s| s.to_string()).collect()).unwrap();
    let inbox = md.ensure_folder(&FolderName::inbox(), &mut reg).unwrap();
    let a = md.ensure_folder(&n(&["A", "B"]), &mut reg).unwrap();
    let long = md.ensure_folder(&n(&[&"x".repeat(300)]), &mut reg).unwrap();
    for f in [&inbox, &a, &long] {
        for i in 0..5 {
            write(
                f,
                WIRE,
                if i % 2 == 0 { "S" } else { "" },
                Some(1_700_000_000),
            );
        }
    }
    let e = inbox.scan().unwrap().pop().unwrap();
    let e = inbox.set_flags(&e, &MaildirFlags::parse("FS")).unwrap();
    inbox.move_to(&e, &a).unwrap();
    let w = inbox.create_message(NewMessage::default()).unwrap();
    w.abort().unwrap();
    md.rename_folder(a.rel(), &n(&["C"]), &mut reg).unwrap();

    let mut stack = vec![root.clone()];
    let mut messages = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let ft = entry.file_type().unwrap();
            let name = entry.file_name().into_string().unwrap();
            assert!(!name.starts_with('.'), "hidden entry {:?}", entry.path());
            if ft.is_dir() {
                stack.push(entry.path());
            } else {
                assert!(ft.is_file(), "{:?}", entry.path());
                let parent = dir.file_name().unwrap().to_str().unwrap();
                assert!(
                    parent == "cur" || parent == "new",
                    "non-mail file {:?}",
                    entry.path()
                );
                assert!(MessageBase::parse_file_name(&name).is_some());
                assert_eq!(std::fs::read(entry.path()).unwrap(), lf(WIRE));
                messages += 1;
            }
        }
    }
    assert_eq!(messages, 15);
}

/// A message the plan places in `new/` (no flags: delivered, not yet seen) lies there without
/// an info suffix, as a delivery agent would leave it, and a scan finds it there.
#[test]
fn writer_commits_into_new_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let inbox = folder(&md, &["INBOX"]);
    let mut w = inbox
        .create_message(NewMessage {
            flags: MaildirFlags::parse("S"),
            internaldate: Some(1_700_000_000),
        })
        .unwrap();
    w.write_chunk(WIRE).unwrap();
    let done = w.commit_to(Subdir::New).unwrap();
    assert_eq!(done.entry.subdir, Subdir::New);
    assert_eq!(
        done.entry.path.parent().unwrap().file_name().unwrap(),
        "new"
    );
    let name = done.entry.path.file_name().unwrap().to_str().unwrap();
    assert!(!name.contains(":2,"), "{name}");
    assert_eq!(name, done.entry.base.as_str());
    assert_eq!(std::fs::read(&done.entry.path).unwrap(), lf(WIRE));
    let mtime = std::fs::metadata(&done.entry.path)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_700_000_000
    );
    let scanned = inbox.scan().unwrap();
    assert!(scanned
        .iter()
        .any(|e| e.base == done.entry.base && e.subdir == Subdir::New));
}

#[test]
fn entry_named_finds_a_regular_file_by_name_in_its_subdirectory_only() {
    let tmp = tempfile::tempdir().unwrap();
    let md = open(tmp.path());
    let f = folder(&md, &["INBOX"]);
    let m = write(&f, WIRE, "S", Some(1_600_000_000));
    let name = m
        .entry
        .path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let found = f.entry_named(Subdir::Cur, &name).unwrap().unwrap();
    assert_eq!(found.base, m.entry.base);
    assert_eq!(found.path, m.entry.path);
    assert_eq!(found.size, m.entry.size);
    assert_eq!(
        found.mtime,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
    );
    // Not in new/, and no file of another name.
    assert!(f.entry_named(Subdir::New, &name).unwrap().is_none());
    assert!(f
        .entry_named(Subdir::Cur, "1.M1P1.nowhere:2,S")
        .unwrap()
        .is_none());
    // A directory under a message's name is no message.
    std::fs::create_dir(f.path().join("cur").join("2.M2P2.host:2,")).unwrap();
    assert!(f
        .entry_named(Subdir::Cur, "2.M2P2.host:2,")
        .unwrap()
        .is_none());
}
