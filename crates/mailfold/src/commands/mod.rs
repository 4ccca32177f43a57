//! The subcommands. Each module does its work through the library crates and returns data
//! for `main.rs` to print.

pub mod debug;
