//! Where the mirrored folders live on the server (seed V0022): the root folder and the
//! mapping between server folder paths and local ones. Shared by the gather, the account's
//! configuration and the CLI, which must name folders exactly alike.

use crate::plan::FolderPath;

/// Where the mirrored folders live on the server (seed V0022). Local folder paths are server
/// paths with the root's levels taken off; INBOX is INBOX on both sides whatever the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderRoot {
    /// Levels of the root folder; empty: the whole personal namespace.
    pub prefix: Vec<String>,
    /// Level prefixes of other users' and shared namespaces, never mirrored.
    pub foreign: Vec<Vec<String>>,
}

impl FolderRoot {
    /// A root from a folder name as the server shows it (`INBOX.`, `INBOX`, `Archive/Mail`),
    /// levels split at `delimiter` (and `/`); a trailing delimiter is allowed.
    pub fn from_name(name: &str, delimiter: Option<char>) -> FolderRoot {
        FolderRoot {
            prefix: levels(name, delimiter),
            foreign: Vec::new(),
        }
    }

    /// The local path of a server folder, `None` when it lies outside the root.
    pub fn local_of(&self, server: &FolderPath) -> Option<FolderPath> {
        if is_inbox(server) {
            return Some(server.clone());
        }
        if self
            .foreign
            .iter()
            .any(|f| !f.is_empty() && starts_with(&server.0, f))
        {
            return None;
        }
        if self.prefix.is_empty() {
            return Some(server.clone());
        }
        (server.0.len() > self.prefix.len() && starts_with(&server.0, &self.prefix))
            .then(|| FolderPath(server.0[self.prefix.len()..].to_vec()))
    }

    /// The server path of a local folder.
    pub fn server_of(&self, local: &FolderPath) -> FolderPath {
        if is_inbox(local) || self.prefix.is_empty() {
            return local.clone();
        }
        FolderPath(self.prefix.iter().chain(&local.0).cloned().collect())
    }
}

fn is_inbox(p: &FolderPath) -> bool {
    p.0.len() == 1 && p.0[0].eq_ignore_ascii_case("INBOX")
}

/// Whether `path` starts with `prefix`; a first level `INBOX` compares without case (RFC 3501
/// 5.1: INBOX is case-insensitive, and so is it as a parent on servers that nest under it).
fn starts_with(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len()
        && path.iter().zip(prefix).enumerate().all(|(i, (a, b))| {
            a == b || (i == 0 && a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
        })
}

fn levels(name: &str, delimiter: Option<char>) -> Vec<String> {
    name.split(|c| c == '/' || Some(c) == delimiter)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
