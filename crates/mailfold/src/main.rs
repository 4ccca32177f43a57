//! The mailfold command-line tool.
fn main() {}
