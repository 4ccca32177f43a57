//! A local process racing the store: a folder directory (or its `cur/`) checked when the
//! folder was opened is swapped for a symbolic link to a directory outside the root. Every
//! later message operation must act on the directory that was checked, never through the
//! link. The same for folder operations (create, rename, delete, list): a level swapped for
//! a link in the middle of one is never followed. Listed in docs/reliability.md ("Hostile
//! server cases (sync data)").

use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mailfold_store::{
    AliasRegistry, CaseMode, Error, Folder, FolderName, Maildir, MaildirFlags, MaildirOptions,
    MemoryAliases, NewMessage, RelPath, Subdir,
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

fn fname(parts: &[&str]) -> FolderName {
    FolderName::new(parts.iter().map(|p| p.to_string()).collect()).unwrap()
}

/// Every path below `dir` (not following links), with each file's contents: what must stay
/// exactly as it was outside the Maildir.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let body = if ft.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if ft.is_dir() {
                todo.push(p.clone());
            }
            out.push((p.strip_prefix(dir).unwrap().to_path_buf(), body));
        }
    }
    out.sort();
    out
}

/// The racer's move: `dir` goes aside to `<dir>.held` (still in the root) and a link to
/// `target` takes its name.
fn swap_for_link(dir: &Path, target: &Path) {
    let mut held = dir.as_os_str().to_owned();
    held.push(".held");
    fs::rename(dir, &held).unwrap();
    symlink(target, dir).unwrap();
}

type Race = Box<dyn FnOnce()>;

/// An alias registry through which a racing local process acts at a chosen point of a
/// folder operation: the first time the store asks about `at` (a parent directory's relative
/// path and a component or alias directory in it), `race` runs, once. The store asks just
/// before it creates or chooses that level (or, listing, while it decodes the parent's
/// entries), after it checked the levels above.
struct RaceAt {
    inner: MemoryAliases,
    at: (String, String),
    race: RefCell<Option<Race>>,
}

impl RaceAt {
    fn new(inner: MemoryAliases, parent: &str, what: &str, race: impl FnOnce() + 'static) -> Self {
        RaceAt {
            inner,
            at: (parent.to_owned(), what.to_owned()),
            race: RefCell::new(Some(Box::new(race))),
        }
    }

    fn fire(&self, parent: &str, what: &str) {
        if (parent, what) == (self.at.0.as_str(), self.at.1.as_str()) {
            if let Some(race) = self.race.borrow_mut().take() {
                race();
            }
        }
    }

    fn fired(&self) -> bool {
        self.race.borrow().is_none()
    }
}

impl AliasRegistry for RaceAt {
    fn component_of(&self, parent: &str, dir: &str) -> mailfold_store::Result<Option<String>> {
        self.fire(parent, dir);
        self.inner.component_of(parent, dir)
    }
    fn alias_of(&self, parent: &str, component: &str) -> mailfold_store::Result<Option<String>> {
        self.fire(parent, component);
        self.inner.alias_of(parent, component)
    }
    fn record_alias(&mut self, parent: &str, dir: &str, c: &str) -> mailfold_store::Result<()> {
        self.inner.record_alias(parent, dir, c)
    }
    fn rename_alias_prefix(&mut self, from: &str, to: &str) -> mailfold_store::Result<()> {
        self.inner.rename_alias_prefix(from, to)
    }
}

fn assert_refused_link(err: &Error) {
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[test]
fn a_parent_swapped_for_a_link_while_a_folder_is_created_gets_nothing_created_outside() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("mail");
    let md = open(&root);
    let out = outside(base.path());
    inbox(&md);
    let mut reg = MemoryAliases::new();
    md.ensure_folder(&fname(&["Work"]), &mut reg).unwrap();
    let before = tree(&out);
    // `Work` is checked, then swapped just before `Sub` is created in it.
    let (work, target) = (root.join("Work"), out.clone());
    let mut racer = RaceAt::new(reg, "Work", "Sub", move || swap_for_link(&work, &target));
    let err = md
        .ensure_folder(&fname(&["Work", "Sub"]), &mut racer)
        .unwrap_err();
    assert!(racer.fired());
    assert_refused_link(&err);
    assert_eq!(tree(&out), before, "created through the link");
    // The rest of the Maildir is as it was; `Sub` went to the directory that was checked.
    assert!(md.folder(&RelPath::parse("INBOX").unwrap()).is_ok());
    assert!(root.join("Work.held/Sub/cur").is_dir());
    let err = md.folder(&RelPath::parse("Work/Sub").unwrap()).unwrap_err();
    assert_refused_link(&err);
}

#[test]
fn a_parent_swapped_for_a_link_while_a_folder_is_renamed_gets_nothing_moved_outside() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("mail");
    let md = open(&root);
    let out = outside(base.path());
    inbox(&md);
    let mut reg = MemoryAliases::new();
    let old = md.ensure_folder(&fname(&["Old"]), &mut reg).unwrap();
    let mut w = old.create_message(NewMessage::default()).unwrap();
    w.write_chunk(WIRE).unwrap();
    w.commit_to(Subdir::Cur).unwrap();
    md.ensure_folder(&fname(&["Dest"]), &mut reg).unwrap();
    let before = tree(&out);
    // `Dest` is checked (and held), then swapped just before the new name is chosen in it.
    let (dest, target) = (root.join("Dest"), out.clone());
    let mut racer = RaceAt::new(reg, "Dest", "Sub", move || swap_for_link(&dest, &target));
    let err = md
        .rename_folder(old.rel(), &fname(&["Dest", "Sub"]), &mut racer)
        .unwrap_err();
    assert!(racer.fired());
    assert_refused_link(&err);
    assert_eq!(tree(&out), before, "moved through the link");
    // The folder and its message went to the directory that was checked, in the root.
    assert_eq!(names(&root.join("Dest.held/Sub/cur")).len(), 1);
    assert!(!root.join("Old").exists());
    assert!(md.folder(&RelPath::parse("INBOX").unwrap()).is_ok());
}

/// A folder with this many files takes long enough to delete that the racing thread below
/// swaps its parent while the deletion is under way.
const MANY: usize = 3000;

#[test]
fn a_parent_swapped_for_a_link_while_a_folder_is_deleted_gets_nothing_removed_outside() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("mail");
    let md = open(&root);
    inbox(&md);
    let mut reg = MemoryAliases::new();
    md.ensure_folder(&fname(&["Work", "Keep"]), &mut reg)
        .unwrap();
    let sub = md
        .ensure_folder(&fname(&["Work", "Sub"]), &mut reg)
        .unwrap();
    // Outside: a decoy of the folder, with files of the same names, and what another tool
    // would keep beside them.
    let out = base.path().join("outside");
    for d in ["Sub/cur", "Sub/new", "Sub/tmp"] {
        fs::create_dir_all(out.join(d)).unwrap();
    }
    fs::write(out.join("Sub/dovecot-uidlist"), b"3 V1 N1\n").unwrap();
    for i in 0..MANY {
        let name = format!("{i}.race,S=5:2,S");
        fs::write(sub.path().join("cur").join(&name), b"mine\n").unwrap();
        fs::write(out.join("Sub/cur").join(&name), b"decoy\n").unwrap();
    }
    let before = tree(&out);
    // The racer: as soon as the deletion has removed its first file, `Work` goes aside
    // and a link to the decoy's parent takes its name. (The deletion reads `cur/` in the
    // order read here.)
    let first = fs::read_dir(sub.path().join("cur"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let done = Arc::new(AtomicBool::new(false));
    let racer = {
        let (done, work, target) = (Arc::clone(&done), root.join("Work"), out.clone());
        std::thread::spawn(move || {
            while first.exists() && !done.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            swap_for_link(&work, &target);
        })
    };
    let deleted = md.delete_folder(sub.rel(), true);
    done.store(true, Ordering::SeqCst);
    racer.join().unwrap();
    assert_eq!(tree(&out), before, "removed through the link");
    deleted.unwrap();
    // The folder checked is gone whole; its sibling and INBOX are as they were.
    assert!(!root.join("Work.held/Sub").exists());
    assert!(root.join("Work.held/Keep/cur").is_dir());
    assert!(md.folder(&RelPath::parse("INBOX").unwrap()).is_ok());
}

#[test]
fn a_folder_swapped_for_a_link_while_the_tree_is_listed_is_skipped_not_read() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("mail");
    let md = open(&root);
    inbox(&md);
    let mut reg = MemoryAliases::new();
    md.ensure_folder(&fname(&["Work", "Deep", "Inner"]), &mut reg)
        .unwrap();
    let long = "x".repeat(300);
    md.ensure_folder(&fname(&["Work", &long]), &mut reg)
        .unwrap();
    let alias = names(&root.join("Work"))
        .into_iter()
        .find(|n| n.contains("%#"))
        .unwrap();
    // Outside: a Maildir that must never show up as a folder.
    let out = base.path().join("outside");
    for d in ["Planted/cur", "Planted/new", "Planted/tmp"] {
        fs::create_dir_all(out.join(d)).unwrap();
    }
    // `Work` has been read when its alias entry is decoded; `Work/Deep` is swapped then.
    let (deep, target) = (root.join("Work/Deep"), out.clone());
    let racer = RaceAt::new(reg, "Work", &alias, move || swap_for_link(&deep, &target));
    let listing = md.list_folders(&racer).unwrap();
    assert!(racer.fired());
    let rels: Vec<&str> = listing.folders.iter().map(|f| f.rel.as_str()).collect();
    assert!(
        rels.iter().all(|r| !r.contains("Planted")),
        "listed through the link: {rels:?}"
    );
    assert!(!rels.contains(&"Work/Deep/Inner"), "{rels:?}");
    // Skipped the way an unusable name is (the caller warns), the rest listed.
    assert!(
        listing.skipped.contains(&root.join("Work/Deep")),
        "{:?}",
        listing.skipped
    );
    for r in ["INBOX", "Work", &format!("Work/{alias}")] {
        assert!(rels.contains(&r), "{r} missing from {rels:?}");
    }
}

/// A message file swapped for a link to a file outside the Maildir between the scan that
/// found it and the read that hashes it (the sync's gather and adoption read through
/// `Folder::open_message`): the read is refused, the outside file never read.
#[test]
fn a_message_file_swapped_for_a_link_after_the_scan_is_not_read_through() {
    let base = tempfile::tempdir().unwrap();
    let md = open(&base.path().join("mail"));
    let f = inbox(&md);
    let mut w = f.create_message(NewMessage::default()).unwrap();
    w.write_chunk(WIRE).unwrap();
    let entry = w.commit_to(Subdir::Cur).unwrap().entry;
    let found = f.scan().unwrap();
    assert_eq!(found.len(), 1);
    let mut body = Vec::new();
    f.open_message(&found[0])
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body.len() as u64, entry.size);
    // The racer: the file is replaced by a link to a secret outside the Maildir.
    let secret = base.path().join("secret");
    fs::write(&secret, b"not mail").unwrap();
    fs::remove_file(&entry.path).unwrap();
    symlink(&secret, &entry.path).unwrap();
    let err = f.open_message(&found[0]).unwrap_err();
    assert!(err.to_string().contains("open message"), "{err}");
}
