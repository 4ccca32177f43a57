//! The mailfold command-line tool as a library: configuration and the commands, so that tests
//! can call them. `main.rs` only parses arguments and maps errors to exit codes.
#![forbid(unsafe_code)]

pub mod account;
pub mod change;
pub mod cli;
pub mod commands;
pub mod config;
pub mod credential;
pub mod exit;
pub mod fleet;
pub mod lock;
pub mod man;
pub mod mime;
pub mod mirror;
pub mod online;
pub mod post_sync;
pub mod progress;
pub mod redact;
pub mod term;
