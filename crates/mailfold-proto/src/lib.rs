//! # mailfold-proto: a sans-IO IMAP4rev1 client engine
//!
//! This crate speaks IMAP (RFC 3501, with the extensions a sync client needs from RFC 9051,
//! 7162, 4315, 2177, 6851, 5161, 2971, 2342, 4731, 5258, 5819, 5465 and 6154) without doing any I/O:
//! bytes in, events out. It owns no socket, no clock and no runtime; the caller (see the
//! `mailfold-net` crate) reads and writes the transport and tells the engine what time it is.
//!
//! Layers, bottom up:
//! - [`core`]: validated protocol atoms shared by both directions (tags, flags, mailbox names),
//!   and the UID, UIDVALIDITY and MODSEQ value types the crates above share.
//! - [`seqset`]: compact `SeqSet`/`UidSet` ranges that never expand unboundedly.
//! - [`utf7`]: modified UTF-7 mailbox-name encoding (RFC 3501 5.1.3).
//! - [`command`] and [`encode`]: typed commands and the strict encoder (seed N3/N4).
//! - [`framing`]: splits the server byte stream into lines and literal chunks, with caps.
//! - [`response`] and [`parse`]: typed responses and the forgiving parser (seed N3–N6).
//! - [`notify`]: the NOTIFY request (RFC 5465) and the typed view of what it brings.
//! - [`engine`]: the client state machine: tags, pipelining, session state, timers.
#![forbid(unsafe_code)]

mod base64;
pub mod command;
pub mod core;
pub mod encode;
pub mod engine;
pub mod framing;
pub mod notify;
pub mod parse;
pub mod response;
pub mod seqset;
pub mod utf7;
