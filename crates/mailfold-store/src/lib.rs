//! mailfold-store: local Maildir store and sync state database.
