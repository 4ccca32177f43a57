//! The sync planner: a pure function from three views of an account — the server now, the
//! Maildir now, and the state last synced — to an ordered list of operations.
//!
//! No I/O, no clock, no randomness: [`plan`] is deterministic, so property tests and a fuzzer can
//! check it ([`check`]), and the applier (network + Maildir + state database, written on top of
//! these types, in `mailfold-sync`) only executes. Its one dependency is the sans-IO
//! `mailfold-proto`, for the protocol value types it shares with the store and the sync
//! (`Uid`, `UidValidity`, `ModSeq`) and the wire flag it maps from, so the planner builds and
//! fuzzes without SQLite, tokio or TLS. [`types`] describes the inputs, [`ops`] the operations
//! with the exact effect and commit the applier owes for each.
//!
//! # Rules
//!
//! A new engineer should be able to check each of these against [`engine`] and the tests.
//!
//! 1. **Flags** (see [`flags`]): per flag, a three-way merge against the state's synced flags. A
//!    flag changed on one side wins. Changed on both sides it can only have changed to the same
//!    value (flags are booleans), so there is no conflict. Keywords merge the same way, but only
//!    flags PERMANENTFLAGS allows are stored on the server; we never invent keywords (seed
//!    V0005); others stay local and are reported. `\Recent` cannot even be represented
//!    ([`types::Flag`]), so it is never stored (V0004). With no state row, the base is the
//!    intersection of both sides, which makes the merge a union. Server stores use
//!    `UID STORE … .SILENT` with `UNCHANGEDSINCE` when a MODSEQ is known (V0056).
//! 2. **Nothing is lost.** A message is deleted on one side only when the other side deleted a
//!    message that a state row proves was synced under the current UIDVALIDITY. With no state
//!    (fresh or lost database), after a UIDVALIDITY change (V0003), or for rows not yet matched
//!    again, no deletion is planned: messages are matched by content ([`types::Content::matches`]:
//!    hash, or size with Message-ID, or size with INTERNALDATE) and bound; what is left is
//!    downloaded or uploaded.
//! 3. **Nothing is duplicated.** A local file that matches a server message by content is bound,
//!    not uploaded; a server message matching a local file is bound, not downloaded; a journaled
//!    APPEND ([`types::Intent`]) is looked for on the server before uploading again.
//! 4. **Moves are moves** (V0057). A synced message gone from one server folder and
//!    present, same content, in another is moved locally ([`ops::Op::MoveLocal`]); a local file
//!    gone from one folder and present (same base name, hash or content) in another is moved on
//!    the server ([`ops::Op::MoveRemote`]). Moved on both sides to different folders: the
//!    server's move wins, the local file follows. Within one folder the same logic re-binds a
//!    renamed file or a re-appended message. A server message that a journaled APPEND or COPY
//!    of a file in its folder, or a row without UID there, claims is left to that file.
//!    **A reader's copy is a server copy**: a new local file (no row names it) whose content
//!    hash a bound row of another folder holds ([`types::SyncInput::server_copies`], from the
//!    state's hash index) is copied there on the server ([`ops::Op::CopyRemote`], `UID COPY`)
//!    instead of uploaded, when that message stays on the server in this plan; when the
//!    original file went in the same run, the rule above has already made it a move.
//! 5. **Folders** are created on the side that lacks them (a name containing the server's
//!    delimiter cannot be, V0020, and stays local with a warning). A folder deleted on one side is
//!    treated as emptied on that side: its synced messages are deleted on the other side (through
//!    the safety valve), and the other side's folder is deleted once the plan has emptied it. A
//!    message added meanwhile on the other side re-creates the folder instead. INBOX is never
//!    deleted. A local folder renamed as a whole — the same files with the flags last synced,
//!    the server folder unchanged — is one `RENAME` on the server
//!    ([`ops::Op::RenameRemoteFolder`]). A server folder renamed as a whole — its messages,
//!    recognised by content (size, INTERNALDATE, Message-ID) and, when the UIDVALIDITY is
//!    kept, by UID with UIDNEXT and HIGHESTMODSEQ as recorded, now make up a folder new to the
//!    state and the Maildir, and the local files are as last synced — is one rename of the
//!    Maildir directory ([`ops::Op::RenameLocalFolder`]); with a new UIDVALIDITY the next run
//!    re-binds by content (V0003). Either needs no children on both names and is never INBOX. Any other
//!    rename (mixed with other changes) shows up as moves into the new folder and then the
//!    deletion of the emptied old one: no message is transferred again.
//! 6. **Safety valve.** A folder whose plan deletes more than `max_percent` (default 50) of its
//!    messages on either side, when that side holds more than `min_messages` (default 20), is
//!    refused with a clear reason ([`ops::Refusal`]) and no operation touches it, unless
//!    [`types::PlanConfig::force`]. If every state folder is missing on one side, the whole
//!    account is refused (an unmounted Maildir is not a request to delete everything). A
//!    refusal spreads to every folder that shares a move with a refused one
//!    ([`ops::RefusalReason::LinkedToRefused`]): half a move would leave the other folder
//!    counting a message as gone that never left, and deleting its folder with the file in it.
//! 7. **Read-only folders** (V0039): no server write is planned. Server changes are still pulled.
//!    Local changes (new files, flag changes, deletions) stay as they are, are marked pending once
//!    ([`ops::Op::MarkPending`]) and reported; they go up when the folder becomes writable.
//!    A pull-only account ([`types::PlanConfig::pull`], V0040) treats every folder so, and
//!    creates no server folder for a local-only one.
//! 8. **No UIDVALIDITY** (V0037): the folder is synced read-only by content: server messages no
//!    local file matches are downloaded, nothing else is done, and no state is written.
//! 9. **Partial copies** (V0010, V0070): a partial local copy is never uploaded and never
//!    replaces a full one; in full mode it is replaced by the full message under the same name.
//! 10. **Incremental views** (RFC 7162): a server view may list only the changes since the
//!     state's HIGHESTMODSEQ plus VANISHED; the rest is implied by the state. A view that does
//!     not fit the state is refused with [`ops::RefusalReason::NeedsCompleteView`].
//! 11. **Order and crash safety.** Folder creations, then UIDVALIDITY records, then moves, then
//!     per-folder work (binds, downloads, flag updates, deletions, then uploads), then folder
//!     deletions (children first), then folder-state records. Every operation is safe to cut
//!     after its effect and before its commit: planning again recognises the result.
//! 12. **Idempotence.** Applying a plan and planning again gives an empty plan.

#![forbid(unsafe_code)]

pub mod check;
pub mod engine;
pub mod flags;
pub mod ops;
pub mod types;

pub use engine::plan;
pub use ops::{
    Body, FlagStore, FlagUpdate, Op, Plan, Refusal, RefusalReason, RowContent, Side, Summary,
    Warning,
};
pub use types::*;
