//! The server's folder tree with counts, and the root the sync mirrors, read on a
//! [`ServerSession`].

use mailfold_proto::command::{Command, List, ListReturn, StatusItem};
use mailfold_proto::core::Mailbox;
use mailfold_proto::engine::{CommandData, Outcome};
use mailfold_proto::response::{self, ListAttribute, MailboxList, MailboxStatus};

use super::session::{ServerSession, SessionError};
use crate::folder_root::FolderRoot;

/// One folder of the server's tree, named as the sync names it locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFolder {
    /// The local name, levels joined by `/` (the wire name, lossily decoded, when it cannot
    /// be decoded).
    pub name: String,
    /// RFC 6154 special use, e.g. `\Sent`.
    pub special_use: Option<String>,
    /// Messages, when STATUS answered.
    pub messages: Option<u32>,
    /// Messages without `\Seen`, when STATUS answered.
    pub unseen: Option<u32>,
    /// Whether the folder can hold messages (`\Noselect` and `\NonExistent` cannot).
    pub selectable: bool,
}

impl ServerSession {
    /// The root the sync would use for this account on this session: `root_folder`, else
    /// the first personal namespace (RFC 2342), with foreign namespaces excluded (seed V0022).
    /// A server without NAMESPACE, or one that refuses it, has the whole account as its root.
    pub async fn folder_root(
        &mut self,
        root_folder: Option<&str>,
        delimiter: Option<char>,
    ) -> FolderRoot {
        let ns = if self.has_capability("NAMESPACE") {
            match self.session.namespace().await {
                Ok(data) => crate::remote_imap::namespace_info(&data),
                Err(e) => {
                    tracing::info!("NAMESPACE: {e}");
                    None
                }
            }
        } else {
            None
        };
        crate::account::folder_root(root_folder, ns.as_ref(), delimiter)
    }

    /// The server's hierarchy delimiter, from `LIST "" ""` (RFC 3501 6.3.8).
    pub async fn delimiter(&mut self) -> Result<Option<char>, SessionError> {
        Ok(self
            .session
            .list("", "")
            .await?
            .first()
            .and_then(|m| m.delimiter))
    }

    /// The server's folders under the account's root, named as the sync names them locally
    /// (seed V0022): `INBOX.Sent` under the root `INBOX.` is `Sent`; folders outside the root
    /// and in other users' or shared namespaces are left out. Counts come from one
    /// `LIST … RETURN (STATUS (MESSAGES UNSEEN))` where LIST-STATUS (RFC 5819) is offered,
    /// else from a STATUS per folder, all submitted before the first answer is awaited
    /// (seed V0044). In the server's order.
    pub async fn folders(
        &mut self,
        root_folder: Option<&str>,
    ) -> Result<Vec<ServerFolder>, SessionError> {
        let (mailboxes, statuses) = self.list_with_counts().await?;
        // The same delimiter choice as the sync's gather: INBOX's, else the first entry's.
        let delimiter = mailboxes
            .iter()
            .find(|m| m.mailbox.as_wire().eq_ignore_ascii_case(b"INBOX"))
            .or_else(|| mailboxes.first())
            .and_then(|m| m.delimiter);
        let root = self.folder_root(root_folder, delimiter).await;
        Ok(mailboxes
            .iter()
            .filter_map(|m| server_folder(m, &root, &statuses))
            .collect())
    }

    /// Every folder the server lists, with the MESSAGES and UNSEEN counts of the selectable
    /// ones: one LIST with `RETURN (STATUS …)` where LIST-STATUS is offered, else the LIST
    /// and then every STATUS submitted before the first answer is awaited (seed V0044).
    async fn list_with_counts(
        &mut self,
    ) -> Result<(Vec<MailboxList>, Vec<MailboxStatus>), SessionError> {
        let s = &mut self.session;
        let caps = s.capabilities().cloned().unwrap_or_default();
        let items = vec![StatusItem::Messages, StatusItem::Unseen];
        let mut returns = Vec::new();
        if caps.has("SPECIAL-USE") {
            returns.push(ListReturn::SpecialUse);
        }
        let list_status = caps.has("LIST-STATUS");
        if list_status {
            returns.push(ListReturn::Status(items.clone()));
        }
        let mut cmd = List::new(Mailbox::from_utf8(""), b"*".to_vec());
        // RETURN options need LIST-EXTENDED (RFC 5258); LIST-STATUS implies it.
        if caps.has("LIST-EXTENDED") || list_status {
            cmd.returns = returns;
        }
        let h = s.submit(Command::List(cmd));
        let c = s.wait(h).await?;
        if let Some(e) = command_error(&c.outcome) {
            return Err(e);
        }
        let (mailboxes, mut statuses) = match c.data {
            CommandData::List {
                mailboxes,
                statuses,
            } => (mailboxes, statuses),
            _ => (Vec::new(), Vec::new()),
        };
        if !list_status {
            // Seed V0044: every STATUS is submitted before the first answer is awaited.
            let handles: Vec<_> = mailboxes
                .iter()
                .filter(|m| is_selectable(m))
                .map(|m| {
                    s.submit(Command::Status {
                        mailbox: m.mailbox.clone(),
                        items: items.clone(),
                    })
                })
                .collect();
            for h in handles {
                let c = s.wait(h).await?;
                if let CommandData::Status(Some(st)) = c.data {
                    statuses.push(st);
                }
            }
        }
        Ok((mailboxes, statuses))
    }
}

/// Whether a listed folder can hold messages (`\Noselect` and `\NonExistent` cannot).
fn is_selectable(m: &MailboxList) -> bool {
    !m.has(&ListAttribute::NoSelect) && !m.has(&ListAttribute::NonExistent)
}

/// The row of one listed folder, named as the sync names it locally; `None` for a folder
/// outside the root (or the root itself), and for a `\NonExistent` one without children.
fn server_folder(
    m: &MailboxList,
    root: &FolderRoot,
    statuses: &[MailboxStatus],
) -> Option<ServerFolder> {
    // A \NonExistent parent (RFC 5258) is listed as a parent only when it has
    // children.
    if m.has(&ListAttribute::NonExistent) && !m.has(&ListAttribute::HasChildren) {
        return None;
    }
    let name = match crate::gather::path_of_wire(m.mailbox.as_wire(), m.delimiter) {
        // Outside the root, or the root itself: not part of the mirror.
        Ok(p) => root.local_of(&p)?.to_string(),
        Err(e) => {
            tracing::warn!("folder name not decodable: {e}");
            String::from_utf8_lossy(m.mailbox.as_wire()).into_owned()
        }
    };
    let st: Option<&MailboxStatus> = statuses.iter().find(|x| x.mailbox == m.mailbox);
    Some(ServerFolder {
        name,
        special_use: m
            .attributes
            .iter()
            .find_map(ListAttribute::special_use_name)
            .map(str::to_owned),
        messages: st.and_then(MailboxStatus::messages),
        unseen: st.and_then(unseen_of),
        selectable: is_selectable(m),
    })
}

fn unseen_of(s: &MailboxStatus) -> Option<u32> {
    s.items.iter().find_map(|i| match i {
        response::StatusItem::Unseen(n) => Some(*n),
        _ => None,
    })
}

/// The tagged NO/BAD of a waited command as the driver's error.
fn command_error(o: &Outcome) -> Option<SessionError> {
    let command = |status: &str, text: &str| {
        SessionError(mailfold_net::Error::Command {
            status: status.into(),
            text: text.to_owned(),
        })
    };
    match o {
        Outcome::Ok { .. } => None,
        Outcome::No { text, .. } => Some(command("NO", text)),
        Outcome::Bad { text, .. } => Some(command("BAD", text)),
        Outcome::Rejected(why) => Some(command("not sent", why)),
        Outcome::Aborted => Some(SessionError(mailfold_net::Error::Closed)),
    }
}

impl ServerSession {
    /// The wire name of the local folder `local` on this server: the root the sync would
    /// use in front (V0022), levels joined by the server's delimiter, in modified UTF-7; a
    /// level holding the delimiter is refused (V0020) without sending anything.
    pub async fn wire_name_of(
        &mut self,
        root_folder: Option<&str>,
        local: &mailfold_store::FolderName,
    ) -> Result<Vec<u8>, SessionError> {
        let delimiter = self.delimiter().await?;
        let root = self.folder_root(root_folder, delimiter).await;
        let path = root.server_of(&crate::plan::FolderPath(local.components().to_vec()));
        let full = mailfold_store::FolderName::new(path.0)
            .map_err(|e| SessionError::not_sent(e.to_string()))?;
        let joined = full
            .join(delimiter)
            .map_err(|e| SessionError::not_sent(e.to_string()))?;
        Ok(super::wire_name(&joined))
    }
}
