//! The narrow gather of a change made outside a full sync ([`gather_folders`]).

use mailfold_store::{AliasRegistry, FolderName, Maildir, StateDb, StateRead};

use super::names::{folder_root, path_of_wire};
use super::Gathered;
use crate::account::AccountSpec;
use crate::plan::FolderPath;
use crate::remote::{Mailbox, Remote};

/// The narrow gather of a change made outside a full sync ([`crate::changes`]): the applier's
/// context for `folders` only, and the account's delimiter and root by the rule [`gather`]
/// uses. For each folder: its state row (id, UIDVALIDITY, server name, delimiter, directory)
/// when it has one, else its Maildir directory when it exists. Nothing is listed, selected or
/// scanned and no message row is read: a change names its messages itself
/// ([`FolderCtx::files`] is filled by the caller). The delimiter is the one the state rows
/// record (INBOX's, else any); only an account with no row that records one asks the server
/// (`LIST "" ""`).
pub fn gather_folders(
    remote: &mut dyn Remote,
    account: &AccountSpec,
    maildir: &Maildir,
    db: &StateDb,
    folders: &[FolderPath],
) -> Result<Gathered, crate::SyncError> {
    let mut g = Gathered::default();
    let rows = db.folders()?;
    g.delimiter = rows
        .iter()
        .find(|r| r.wire_name.eq_ignore_ascii_case("INBOX"))
        .or_else(|| rows.iter().find(|r| r.delimiter.is_some()))
        .and_then(|r| r.delimiter);
    if g.delimiter.is_none() {
        g.delimiter = remote.delimiter()?;
    }
    g.root = folder_root(remote, account, g.delimiter)?;
    for path in folders {
        let row = rows.iter().find(|r| {
            path_of_wire(r.wire_name.as_bytes(), r.delimiter)
                .ok()
                .and_then(|p| g.root.local_of(&p))
                .as_ref()
                == Some(path)
        });
        let ctx = g.folders.entry(path.clone()).or_default();
        match row {
            Some(r) => {
                ctx.state_id = Some(r.id);
                ctx.state_uidvalidity = r.uidvalidity;
                ctx.delimiter = r.delimiter;
                ctx.wire = Some(Mailbox::from_wire(r.wire_name.as_bytes()));
                ctx.special_use = r.special_use.clone();
                ctx.subscribed = r.subscribed;
                ctx.rel = Some(r.local_path.clone());
            }
            None => {
                let Ok(name) = FolderName::new(path.0.clone()) else {
                    continue;
                };
                ctx.rel = maildir.locate_folder(&name, db as &dyn AliasRegistry)?;
                ctx.subscribed = true;
            }
        }
    }
    Ok(g)
}
