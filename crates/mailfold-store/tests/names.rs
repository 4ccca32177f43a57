//! Folder name mapping: round trips, hostile names and the name seeds
//! (V0016, V0018, V0020), on a real directory tree.

use std::collections::HashSet;
use std::path::Path;

use mailfold_store::name::{decode_component, encode_component, is_alias, MAX_DIR_NAME};
use mailfold_store::{
    AliasRegistry, CaseMode, Error, FolderName, Maildir, MaildirOptions, MemoryAliases, NameError,
    StateDb,
};
use proptest::prelude::*;

fn store(root: &Path, case: CaseMode) -> Maildir {
    Maildir::open(
        root,
        MaildirOptions {
            fsync: false,
            case,
            ..MaildirOptions::default()
        },
    )
    .unwrap()
}

fn name(parts: &[&str]) -> FolderName {
    FolderName::new(parts.iter().map(|s| s.to_string()).collect()).unwrap()
}

/// Every directory level is a plain, visible, non-reserved name.
fn assert_safe_dir(d: &str) {
    assert!(!d.is_empty() && d.len() <= MAX_DIR_NAME, "{d:?}");
    assert!(!d.starts_with('.'), "{d:?}");
    assert!(!d.contains('/') && !d.contains('\0'), "{d:?}");
    assert!(!d.chars().any(char::is_control), "{d:?}");
    assert!(
        !["cur", "new", "tmp"].contains(&d.to_ascii_lowercase().as_str()),
        "{d:?}"
    );
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,12}",
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just(String::new()),
        1 => Just("cur".to_owned()),
        1 => Just("NEW".to_owned()),
        1 => "[\\x00-\\x1f/%.#a-zA-Z\\x7f\\u{80}-\\u{9f}]{0,8}",
        1 => "[a-zA-Z]{1,4}",
        1 => "\\PC{200,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_component_round_trips_and_is_safe(c in component()) {
        let enc = encode_component(&c);
        prop_assert!(!is_alias(&enc));
        prop_assert_eq!(decode_component(&enc).unwrap(), c.clone());
        if enc.len() <= MAX_DIR_NAME {
            assert_safe_dir(&enc);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any set of names maps to directories inside the root and back to the
    /// same names; distinct names get distinct directories, also when the
    /// names are equal but for case and the file system folds case.
    #[test]
    fn any_names_map_inside_root_and_back(
        names in proptest::collection::vec(proptest::collection::vec(component(), 1..4), 1..5),
        insensitive in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("local");
        let mode = if insensitive { CaseMode::Insensitive } else { CaseMode::Sensitive };
        let md = store(&root, mode);
        let mut reg = MemoryAliases::new();
        // Add a case-swapped twin of every name, the hard case for V0016.
        let mut all: Vec<FolderName> = Vec::new();
        for n in &names {
            let twin: Vec<String> = n.iter().map(|c| c.chars().map(|ch| {
                if ch.is_uppercase() { ch.to_lowercase().next().unwrap_or(ch) }
                else { ch.to_uppercase().next().unwrap_or(ch) }
            }).collect()).collect();
            for cand in [n.clone(), twin] {
                let f = FolderName::new(cand).unwrap();
                if !all.contains(&f) { all.push(f); }
            }
        }
        let mut seen = HashSet::new();
        let mut seen_folded = HashSet::new();
        for n in &all {
            let folder = md.ensure_folder(n, &mut reg).unwrap();
            let canon = std::fs::canonicalize(folder.path()).unwrap();
            prop_assert!(canon.starts_with(md.root()), "{:?} escapes", canon);
            for d in folder.rel().dirs() { assert_safe_dir(d); }
            prop_assert_eq!(&md.name_of(folder.rel(), &reg).unwrap(), n);
            let located = md.locate_folder(n, &reg).unwrap();
            prop_assert_eq!(located.as_ref(), Some(folder.rel()));
            prop_assert!(seen.insert(folder.rel().clone()), "two names share {}", folder.rel());
            if insensitive {
                // Parents are shared by design; the full paths must differ
                // even after folding.
                seen_folded.insert(folder.rel().as_str().to_lowercase());
            }
        }
        if insensitive {
            prop_assert_eq!(seen_folded.len(), all.len());
        }
        // Listing the tree finds every name again.
        let listed = md.list_folders(&reg).unwrap();
        prop_assert!(listed.skipped.is_empty());
        for n in &all {
            prop_assert!(listed.folders.iter().any(|f| &f.name == n && f.is_maildir && f.canonical));
        }
    }
}

#[test]
fn v0016_names_equal_but_for_case_are_distinct_folders() {
    for mode in [CaseMode::Sensitive, CaseMode::Insensitive] {
        let tmp = tempfile::tempdir().unwrap();
        let md = store(tmp.path(), mode);
        let mut reg = MemoryAliases::new();
        let upper = md.ensure_folder(&name(&["Work"]), &mut reg).unwrap();
        let lower = md.ensure_folder(&name(&["work"]), &mut reg).unwrap();
        let mixed = md.ensure_folder(&name(&["WORK", "Sub"]), &mut reg).unwrap();
        assert_eq!(
            upper.rel().as_str(),
            "Work",
            "the first name keeps its plain directory"
        );
        let rels = [
            upper.rel().clone(),
            lower.rel().clone(),
            mixed.rel().parent().unwrap(),
        ]
        .map(|r| r.as_str().to_owned());
        if mode == CaseMode::Insensitive {
            let folded: HashSet<String> = rels.iter().map(|r| r.to_lowercase()).collect();
            assert_eq!(folded.len(), 3, "{rels:?}");
            assert!(is_alias(lower.rel().as_str()));
        } else {
            assert_eq!(lower.rel().as_str(), "work");
        }
        assert_eq!(md.name_of(lower.rel(), &reg).unwrap(), name(&["work"]));
        assert_eq!(
            md.name_of(mixed.rel(), &reg).unwrap(),
            name(&["WORK", "Sub"])
        );
        // Mapping again is stable.
        let again = md.ensure_folder(&name(&["work"]), &mut reg).unwrap();
        assert_eq!(again.rel(), lower.rel());
    }
}

#[test]
fn case_probe_matches_the_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let md = store(tmp.path(), CaseMode::Probe);
    // Decide independently: does an upper-case spelling find a file?
    std::fs::write(tmp.path().join("x"), b"").unwrap();
    let folds = tmp.path().join("X").exists();
    std::fs::remove_file(tmp.path().join("x")).unwrap();
    assert_eq!(md.case_insensitive(), folds);
    // The probe left nothing behind.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn v0018_control_characters_rejected_from_user_and_escaped_from_server() {
    let user = name(&["Bad\u{7}Name"]);
    match user.validate_user() {
        Err(NameError::ControlCharacter { code, .. }) => assert_eq!(code, 7),
        other => panic!("expected a control character error, got {other:?}"),
    }
    assert!(name(&["Fine name"]).validate_user().is_ok());
    assert!(matches!(
        name(&["a", ""]).validate_user(),
        Err(NameError::EmptyComponent)
    ));
    // The same name from a server is stored safely and reversibly.
    let tmp = tempfile::tempdir().unwrap();
    let md = store(tmp.path(), CaseMode::Sensitive);
    let mut reg = MemoryAliases::new();
    let server = name(&["Bad\u{7}Name\r\n\u{9b}"]);
    let f = md.ensure_folder(&server, &mut reg).unwrap();
    assert_eq!(f.rel().as_str(), "Bad%07Name%0D%0A%C2%9B");
    assert_eq!(md.name_of(f.rel(), &reg).unwrap(), server);
}

#[test]
fn v0020_component_with_delimiter_is_refused_and_kept_in_one_level() {
    // A server name with '/' inside a component (delimiter '.') stays one
    // directory level.
    let n = FolderName::split("Reports 1/2.Q3", Some('.')).unwrap();
    assert_eq!(n.components(), ["Reports 1/2", "Q3"]);
    let tmp = tempfile::tempdir().unwrap();
    let md = store(tmp.path(), CaseMode::Sensitive);
    let mut reg = MemoryAliases::new();
    let f = md.ensure_folder(&n, &mut reg).unwrap();
    assert_eq!(f.rel().as_str(), "Reports 1%2F2/Q3");
    // A local folder whose name holds the server's delimiter cannot be
    // created on that server.
    std::fs::create_dir_all(tmp.path().join("a.b/cur")).unwrap();
    std::fs::create_dir_all(tmp.path().join("a.b/new")).unwrap();
    let listed = md.list_folders(&reg).unwrap();
    let local = listed
        .folders
        .iter()
        .find(|f| f.rel.as_str() == "a.b")
        .unwrap();
    match local.name.join(Some('.')) {
        Err(NameError::ContainsDelimiter {
            component,
            delimiter,
        }) => {
            assert_eq!((component.as_str(), delimiter), ("a.b", '.'));
        }
        other => panic!("expected a delimiter error, got {other:?}"),
    }
    assert_eq!(local.name.join(Some('/')).unwrap(), "a.b");
}

#[test]
fn hostile_names_stay_inside_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("local");
    let md = store(&root, CaseMode::Sensitive);
    let mut reg = MemoryAliases::new();
    for parts in [
        vec![".."],
        vec!["..", "..", "etc"],
        vec!["/"],
        vec!["/etc/passwd"],
        vec!["cur"],
        vec!["INBOX", "new"],
        vec!["."],
        vec![""],
        vec![".notmuch"],
        vec!["a\0b"],
    ] {
        let n = name(&parts);
        let f = md.ensure_folder(&n, &mut reg).unwrap();
        let canon = std::fs::canonicalize(f.path()).unwrap();
        assert!(canon.starts_with(md.root()), "{parts:?} -> {canon:?}");
        assert_eq!(md.name_of(f.rel(), &reg).unwrap(), n);
    }
    // Nothing appeared next to the root.
    let siblings: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(siblings.len(), 1);
    // INBOX/new as a folder did not touch INBOX's own new/ directory.
    assert!(root.join("INBOX/%6Eew/cur").is_dir());
}

#[test]
fn a_thousand_levels_deep() {
    let tmp = tempfile::tempdir().unwrap();
    let md = store(tmp.path(), CaseMode::Sensitive);
    let mut reg = MemoryAliases::new();
    let parts: Vec<String> = (0..1000)
        .map(|i| if i % 2 == 0 { "..".into() } else { "a".into() })
        .collect();
    let n = FolderName::new(parts).unwrap();
    match md.ensure_folder(&n, &mut reg) {
        Ok(f) => {
            assert!(f.path().starts_with(md.root()));
            assert_eq!(md.name_of(f.rel(), &reg).unwrap(), n);
        }
        // Path length limits may stop it; then it is a clean error.
        Err(Error::Io { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
    }
    // Listing a deep tree does not recurse on the stack.
    let listed = md.list_folders(&reg).unwrap();
    assert!(listed.folders.len() <= 1000);
    assert!(listed.folders.iter().all(|f| f.canonical));
}

#[test]
fn symlinked_folder_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let root = tmp.path().join("local");
    let md = store(&root, CaseMode::Sensitive);
    let mut reg = MemoryAliases::new();
    std::os::unix::fs::symlink(&outside, root.join("Evil")).unwrap();
    let err = md
        .ensure_folder(&name(&["Evil", "Sub"]), &mut reg)
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    let err = md
        .folder(&mailfold_store::RelPath::parse("Evil").unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    // The listing skips the link too.
    assert!(md.list_folders(&reg).unwrap().folders.is_empty());
}

#[test]
fn over_long_components_are_shortened_through_the_state_database() {
    let tmp = tempfile::tempdir().unwrap();
    let md = store(&tmp.path().join("local"), CaseMode::Sensitive);
    let mut db = StateDb::create(&tmp.path().join("state.sqlite")).unwrap();
    let long_a = "ü".repeat(200);
    let long_b = format!("{}x", "ü".repeat(199));
    let fa = md
        .ensure_folder(&name(&["Archive", &long_a]), &mut db)
        .unwrap();
    let fb = md
        .ensure_folder(&name(&["Archive", &long_b]), &mut db)
        .unwrap();
    assert_ne!(fa.rel(), fb.rel());
    for (f, c) in [(&fa, &long_a), (&fb, &long_b)] {
        assert!(f.rel().last().len() <= MAX_DIR_NAME);
        assert!(is_alias(f.rel().last()));
        assert_eq!(
            db.component_of("Archive", f.rel().last())
                .unwrap()
                .as_deref(),
            Some(c.as_str())
        );
    }
    drop(db);
    // After reopening, the alias still decodes.
    let db = StateDb::open(&tmp.path().join("state.sqlite")).unwrap();
    assert_eq!(
        md.name_of(fa.rel(), &db).unwrap(),
        name(&["Archive", &long_a])
    );
    // Renaming the parent carries the alias along.
    let mut db = db;
    let moved = md
        .rename_folder(&fa.rel().parent().unwrap(), &name(&["Old"]), &mut db)
        .unwrap();
    assert_eq!(moved.rel().as_str(), "Old");
    let rel = moved.rel().join(fa.rel().last()).unwrap();
    assert_eq!(md.name_of(&rel, &db).unwrap(), name(&["Old", &long_a]));
}
