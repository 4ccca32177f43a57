//! The three tree layouts (nested, flat, Maildir++): every folder name maps to
//! one directory and back (a bijection), on a real directory tree, and nothing
//! lands outside the root.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use mailfold_store::{CaseMode, FolderName, Layout, Maildir, MaildirOptions, MemoryAliases};
use proptest::prelude::*;

fn store(root: &Path, layout: Layout) -> Maildir {
    Maildir::open(
        root,
        MaildirOptions {
            fsync: false,
            case: CaseMode::Sensitive,
            layout,
        },
    )
    .unwrap()
}

fn name(parts: &[&str]) -> FolderName {
    FolderName::new(parts.iter().map(|s| s.to_string()).collect()).unwrap()
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 äß]{1,6}",
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just(String::new()),
        1 => Just("cur".to_owned()),
        1 => Just("INBOX".to_owned()),
        1 => "[\\x00-\\x1f/%.#_+a-zA-Z\\x7f\\u{80}-\\u{9f}]{0,6}",
    ]
}

fn folder_name() -> impl Strategy<Value = FolderName> {
    prop::collection::vec(component(), 1..4).prop_map(|c| FolderName::new(c).unwrap())
}

fn layouts() -> Vec<Layout> {
    vec![
        Layout::Nested,
        Layout::flat('.').unwrap(),
        Layout::flat('_').unwrap(),
        Layout::MaildirPlusPlus,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Creating any set of folders and listing the tree gives back exactly those
    /// names, each at its own directory, in every layout.
    #[test]
    fn every_layout_is_a_bijection(names in prop::collection::btree_set(folder_name(), 1..8)) {
        for layout in layouts() {
            let tmp = tempfile::tempdir().unwrap();
            let md = store(tmp.path(), layout);
            let mut aliases = MemoryAliases::new();
            let mut paths = HashSet::new();
            for n in &names {
                let f = md.ensure_folder(n, &mut aliases).unwrap();
                prop_assert!(f.path().starts_with(md.root()), "{:?} {:?}", layout, f.path());
                prop_assert!(paths.insert(f.path().to_path_buf()), "{:?}: two names at {:?}", layout, f.path());
                prop_assert_eq!(&md.name_of(f.rel(), &aliases).unwrap(), n);
                let located = md.locate_folder(n, &aliases).unwrap();
                prop_assert_eq!(located.as_ref(), Some(f.rel()));
            }
            let listing = md.list_folders(&aliases).unwrap();
            prop_assert!(listing.skipped.is_empty(), "{:?} {:?}", layout, listing.skipped);
            let found: BTreeSet<FolderName> = listing
                .folders
                .iter()
                .filter(|f| f.is_maildir)
                .map(|f| { assert!(f.canonical, "{:?} {:?}", layout, f); f.name.clone() })
                .collect();
            prop_assert_eq!(&found, &names, "{:?}", layout);
        }
    }
}

#[test]
fn flat_and_maildirpp_trees_look_like_offlineimap_and_dovecot() {
    let tmp = tempfile::tempdir().unwrap();
    let flat = store(&tmp.path().join("flat"), Layout::flat('.').unwrap());
    let pp = store(&tmp.path().join("pp"), Layout::MaildirPlusPlus);
    let mut a = MemoryAliases::new();
    for md in [&flat, &pp] {
        for n in [
            name(&["INBOX"]),
            name(&["Work", "Projects"]),
            name(&["INBOX", "Sub"]),
        ] {
            md.ensure_folder(&n, &mut a).unwrap();
        }
    }
    for d in ["INBOX/cur", "Work.Projects/new", "INBOX.Sub/tmp"] {
        assert!(flat.root().join(d).is_dir(), "{d}");
    }
    for d in ["cur", ".Work.Projects/new", "..Sub/tmp"] {
        assert!(pp.root().join(d).is_dir(), "{d}");
    }
    // A folder renamed in a one-level layout is one directory rename.
    let from = flat
        .locate_folder(&name(&["Work", "Projects"]), &a)
        .unwrap()
        .unwrap();
    flat.rename_folder(&from, &name(&["Old"]), &mut a).unwrap();
    assert!(flat.root().join("Old/cur").is_dir());
    // On a case-insensitive file system a name differing only in case is refused, not shared.
    let ci = Maildir::open(
        &tmp.path().join("ci"),
        MaildirOptions {
            fsync: false,
            case: CaseMode::Insensitive,
            layout: Layout::flat('.').unwrap(),
        },
    )
    .unwrap();
    ci.ensure_folder(&name(&["Work"]), &mut a).unwrap();
    assert!(ci.ensure_folder(&name(&["work"]), &mut a).is_err());
    ci.ensure_folder(&name(&["Work"]), &mut a).unwrap();
    // The Maildir++ root is INBOX and is never deleted.
    let inbox = pp.locate_folder(&FolderName::inbox(), &a).unwrap().unwrap();
    assert!(pp.delete_folder(&inbox, true).is_err());
    assert!(pp.root().join("cur").is_dir());
}

/// The listing reads each folder's stamp through the handle it lists the folder with, in
/// every layout and at every depth; it is the stamp `Folder::stamp` reads by path and the one
/// `Maildir::folder_stamped` reads at the end of a run (stamps recorded by one are compared
/// with stamps read by another), and `Maildir::listed_folder` is the folder `Maildir::folder`
/// opens. A change in one folder moves its listed stamp only.
#[test]
fn listed_stamps_are_the_folders_stamps_in_every_layout() {
    for layout in layouts() {
        let tmp = tempfile::tempdir().unwrap();
        let md = store(tmp.path(), layout);
        let mut aliases = MemoryAliases::new();
        let names = [
            name(&["INBOX"]),
            name(&["Work"]),
            name(&["Work", "Projects"]),
            name(&["Work", "Projects", "Old"]),
        ];
        for n in &names {
            md.ensure_folder(n, &mut aliases).unwrap();
        }
        let listed = |md: &Maildir| {
            let listing = md.list_folders(&aliases).unwrap();
            let maildirs: Vec<_> = listing
                .folders
                .into_iter()
                .filter(|f| f.is_maildir)
                .collect();
            assert_eq!(maildirs.len(), names.len(), "{layout:?}");
            maildirs
        };
        let before = listed(&md);
        for lf in &before {
            let opened = md.folder(&lf.rel).unwrap();
            let stamp = opened.stamp().unwrap();
            assert!(stamp.is_some(), "{layout:?} {lf:?}");
            assert_eq!(lf.stamp, stamp, "{layout:?} {lf:?}");
            let (f, s) = md.folder_stamped(&lf.rel).unwrap();
            assert_eq!(s, stamp, "{layout:?} {lf:?}");
            assert_eq!(f.path(), opened.path());
            let from_listing = md.listed_folder(lf).unwrap();
            assert_eq!(from_listing.path(), opened.path());
            assert_eq!(from_listing.rel(), opened.rel());
        }
        // A new file in `new/` of the deepest folder.
        let deep = md.folder(&before[before.len() - 1].rel).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(15));
        std::fs::write(deep.path().join("new/1.M1P1.h"), b"hello").unwrap();
        let after = listed(&md);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.rel, a.rel);
            let moved = b.stamp != a.stamp;
            assert_eq!(moved, b.rel == *deep.rel(), "{layout:?} {:?}", b.rel);
        }
    }
}
