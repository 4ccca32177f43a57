//! Names: the account's root on the server (V0022), server wire names ↔ local folder paths
//! (modified UTF-7, the hierarchy delimiter: V0020), flags in wire text ↔ the planner's sets,
//! and Maildir bases ↔ the planner's ids.

use mailfold_proto::core::Mailbox;
use mailfold_store::{FolderName, MessageBase, MessageRecord};

use super::Gathered;
use crate::account::AccountSpec;
use crate::folder_root::FolderRoot;
use crate::plan::{FlagSet, FolderPath, LocalId};
use crate::remote::{ListEntry, Remote, RemoteError};
use crate::report::SyncReport;

/// The account's root: `root_folder` when configured, else the first personal namespace
/// (seed V0022), with other users' and shared namespaces excluded either way.
pub(super) fn folder_root(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    delimiter: Option<char>,
) -> Result<FolderRoot, RemoteError> {
    let ns = remote.namespace()?;
    // One rule for the sync and the CLI's commands (they name folders the same way).
    Ok(crate::account::folder_root(
        account.root_folder.as_deref(),
        ns.as_ref(),
        delimiter,
    ))
}

/// The folder path of a wire name.
pub fn path_of_wire(wire: &[u8], delimiter: Option<char>) -> Result<FolderPath, String> {
    let decoded = Mailbox::from_wire(wire.to_vec())
        .to_utf8()
        .map_err(|e| format!("{}: {e}", String::from_utf8_lossy(wire)))?;
    let name = FolderName::split(&decoded, delimiter).map_err(|e| e.to_string())?;
    Ok(FolderPath(name.components().to_vec()))
}

/// The wire name of a folder path; refuses a component holding the delimiter (V0020).
pub fn wire_of_path(path: &FolderPath, delimiter: Option<char>) -> Result<Mailbox, String> {
    let name = FolderName::new(path.0.clone()).map_err(|e| e.to_string())?;
    let joined = name.join(delimiter).map_err(|e| e.to_string())?;
    Ok(Mailbox::from_utf8(&joined))
}

/// Converts flags in wire text to the planner's set (`\Recent` dropped, V0004), through
/// [`crate::plan::Flag::from_wire`]. Text, because the state database and the Maildir
/// keyword files carry flags as their wire text ([`crate::remote::Remote`] hands over
/// typed flags).
pub fn flagset<S: AsRef<str>>(flags: &[S]) -> FlagSet {
    FlagSet::from_imap(flags.iter().map(AsRef::as_ref))
}

/// The flags of a state row (system flags and keywords).
pub(super) fn row_flags(r: &MessageRecord) -> FlagSet {
    flagset(&r.flags).union(&flagset(&r.keywords))
}

/// A base from a planner id (the planner only hands back ids the gather produced).
pub fn base_of(id: &LocalId) -> Result<MessageBase, String> {
    MessageBase::new(&id.0).map_err(|e| e.to_string())
}

/// The server folders of the mirror, by local path: `LIST` (seed V0041) screened for names
/// whose delimiter can be used ([`crate::listing`]), INBOX added when LIST omits it (V0042),
/// `\NonExistent` entries, names outside the root (V0022) and folders the patterns exclude
/// left out, one server name per local folder. Sets the account's delimiter and root in `g`.
pub(super) fn server_folders(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    g: &mut Gathered,
    report: &mut SyncReport,
) -> Result<Vec<(FolderPath, ListEntry)>, RemoteError> {
    let mut entries = crate::listing::screen(remote.list_all()?, &mut report.warnings);
    g.delimiter = entries
        .iter()
        .find(|e| e.wire.is_inbox())
        .or_else(|| entries.first())
        .and_then(|e| e.delimiter);
    g.root = folder_root(remote, account, g.delimiter)?;
    if !entries.iter().any(|e| e.wire.is_inbox()) {
        // Seed V0042: some servers leave INBOX out of LIST; it always exists (RFC 3501 5.1).
        entries.push(ListEntry {
            wire: Mailbox::inbox(),
            delimiter: g.delimiter,
            noselect: false,
            nonexistent: false,
            special_use: None,
            subscribed: true,
            status: None,
        });
    }
    let mut remote_paths: Vec<(FolderPath, ListEntry)> = Vec::new();
    for e in entries {
        if e.nonexistent {
            continue;
        }
        let path = match path_of_wire(e.wire.as_wire(), e.delimiter) {
            Ok(p) => p,
            Err(msg) => {
                report.warnings.push(format!(
                    "server folder name cannot be decoded, skipped: {msg}"
                ));
                continue;
            }
        };
        // Outside the root (or the root itself): not part of this mirror (V0022).
        let Some(path) = g.root.local_of(&path) else {
            continue;
        };
        if !account.folders.matches(&path.to_string()) {
            continue;
        }
        remote_paths.push((path, e));
    }
    // One server name per local folder (`listing`).
    Ok(crate::listing::one_per_folder(
        remote_paths,
        g.delimiter,
        &mut report.warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed V0022: a server that nests every folder under `INBOX.` (Courier, Cyrus without
    /// altnamespace) mirrors `INBOX.Sent` as `Sent` and back; other users' folders and the
    /// root itself take no part.
    #[test]
    fn v0022_root_under_inbox_maps_both_ways() {
        let mut root = FolderRoot::from_name("INBOX.", Some('.'));
        root.foreign = vec![vec!["user".to_owned()]];
        let p = |s: &[&str]| FolderPath::from_components(s.iter().copied());
        assert_eq!(root.local_of(&p(&["INBOX", "Sent"])), Some(p(&["Sent"])));
        assert_eq!(
            root.local_of(&p(&["inbox", "A", "B"])),
            Some(p(&["A", "B"]))
        );
        assert_eq!(root.local_of(&p(&["INBOX"])), Some(p(&["INBOX"])));
        assert_eq!(root.local_of(&p(&["user", "bob", "Sent"])), None);
        assert_eq!(root.local_of(&p(&["Elsewhere"])), None);
        assert_eq!(root.server_of(&p(&["Sent"])), p(&["INBOX", "Sent"]));
        assert_eq!(root.server_of(&p(&["INBOX"])), p(&["INBOX"]));
        let none = FolderRoot::default();
        assert_eq!(none.local_of(&p(&["Work"])), Some(p(&["Work"])));
        assert_eq!(none.server_of(&p(&["Work"])), p(&["Work"]));
    }

    #[test]
    fn wire_names_round_trip_with_delimiter() {
        let p = path_of_wire(b"INBOX.Caf&AOk-", Some('.')).unwrap();
        assert_eq!(p, FolderPath::from_components(["INBOX", "Café"]));
        assert_eq!(
            wire_of_path(&p, Some('.')).unwrap().as_wire(),
            b"INBOX.Caf&AOk-"
        );
        // V0020: a component holding the delimiter cannot be sent.
        assert!(wire_of_path(&FolderPath::from_components(["a.b"]), Some('.')).is_err());
    }
}
