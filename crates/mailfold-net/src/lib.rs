//! mailfold-net: tokio driver for the IMAP engine.
