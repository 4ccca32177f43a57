//! The state database schema and its migrations.
//!
//! `PRAGMA application_id` marks the file as mailfold's and `PRAGMA
//! user_version` holds the schema version. Migration `n` (1-based) takes
//! version `n - 1` to `n` and runs in one transaction with the version bump,
//! so a crash mid-migration leaves the old version intact.
//!
//! Tables (version 1):
//!
//! * `meta(key, value)`: `created_at` (Unix seconds) and `fresh` (`1` from
//!   [`crate::StateDb::create`] until the sync engine reports a completed first
//!   sync). A fresh state means "nothing is known": the engine must treat
//!   both sides as new and never infer deletions from it.
//! * `folders`: one row per synced folder: the IMAP wire name (modified
//!   UTF-7, exactly as the server spells it), delimiter, the local directory
//!   relative to the root, UIDVALIDITY, UIDNEXT (seed V0002), HIGHESTMODSEQ,
//!   special-use attribute, subscription, READ-ONLY (seed V0039) and the time
//!   of the last completed sync.
//! * `messages`: per folder and UID: the local file's base (its identity),
//!   the last synced system flags and keywords (seed V0005: keywords live
//!   here, not in the file name), RFC822.SIZE (seed V0007), INTERNALDATE and
//!   its zone (seed V0006), SHA-256 of the CRLF form, Message-ID, and whether
//!   only the header was downloaded (seed V0070). Deleting a folder deletes
//!   its rows.
//! * `intents`: the journal of multi-step operations. A row is committed
//!   before the network step (for example "APPEND of base X to folder F,
//!   hash H") and removed in the same transaction that records the result,
//!   so after a crash every remaining row names an operation whose outcome
//!   must be checked (did the APPEND land? search by hash/Message-ID) before
//!   it is retried.
//! * `pending`: local changes that could not be applied (offline queue,
//!   READ-ONLY folders, seed V0039), one row per (folder, kind, target), with
//!   the reason and an attempt count so they are reported and not retried
//!   forever. A folder with pending rows cannot be deleted (foreign key
//!   RESTRICT): they must be resolved or dropped explicitly.
//! * `aliases`: original names of hash-shortened or case-disambiguated
//!   directories (see [`crate::name`]).
//!
//! Version 2 lets a message row be *unbound*: `uid` is NULL after the
//! folder's UIDVALIDITY changed (seed V0003) and until the sync engine
//! matches the row's file to a server message again by content. The row
//! keeps its base, last synced flags, size, date, hash and Message-ID, so
//! local changes made before the reset survive it, and a file deleted
//! locally is recognised as deleted instead of coming back. `(folder_id,
//! uid)` stays unique among bound rows.
//!
//! Version 3 adds the folder's *local stamp* (`folders.local_stamp`, the
//! text form of [`crate::DirStamp`], and `folders.stamp_messages`, the
//! number of message rows at the time, all bound): what the folder's `cur/`
//! and `new/` looked like at the end of a run in which the folder synced
//! completely and nobody changed it. A folder whose server status and stamp
//! are both unchanged is skipped without a scan. Any write to the folder's
//! rows or status clears the stamp ([`crate::Txn`] does it), so a stamp
//! never outlives the rows it was recorded with. Both columns start NULL:
//! an upgraded database scans every folder once.
//!
//! Version 4 adds the *listing digest*, so that the end of a run can tell
//! that a folder's directories hold exactly what its rows describe from a
//! listing of names alone, without reading the rows (see
//! [`crate::listing_key_of_row`]): `messages.listing_key`, a 64-bit hash of
//! the file name the row implies (its base and the flag letters its synced
//! flags give), written by every [`crate::Txn`] method that writes a row;
//! and per folder `listing_digest` (the XOR of its rows' keys) and
//! `listing_count` (its number of rows), kept by triggers on every insert,
//! delete, key change and move of a row. NULL in either means "unknown" and
//! stays NULL through the triggers (SQL arithmetic on NULL is NULL) until the
//! engine rebuilds the folder's keys after a full comparison
//! ([`crate::Txn::rebuild_listing_keys`]). XOR is written `(a | b) - (a & b)`:
//! the bits of `a & b` are a subset of those of `a | b`, so the subtraction
//! never borrows and never overflows.
//!
//! Version 5 drops those triggers: the [`crate::Txn`] methods that write rows
//! keep the digest and count themselves, one `UPDATE` of the folder per call
//! with the XOR of the keys removed and added. Any trigger on `messages` makes
//! SQLite keep a statement journal for every row write (a copy of each page the
//! statement touches, in case the trigger fails halfway); that and the
//! folder update per row were about a quarter of the cost of recording a
//! downloaded message. The rules stay those of version 4: a NULL key among
//! those removed or added makes the digest NULL.
//!
//! Version 6 keeps one index of content instead of two: `messages_by_hash_prefix`, on the
//! first 8 bytes of the hash (`substr(hash, 1, 8)`, the full hash compared in the row), in
//! place of the index on the whole 32-byte hash; the Message-ID index, which no query read,
//! is gone. Both were written at random places, so each commit of a batch of new rows
//! rewrote most of their leaf pages through the write-ahead log: the cost of recording a
//! message grew with the size of the mirror. The prefix index is a quarter of the size, and
//! 64 bits of a SHA-256 leave nothing to chance in a mailbox.

/// `PRAGMA application_id` of a mailfold state database ("MFLD").
pub(crate) const APPLICATION_ID: i32 = 0x4d46_4c44;

/// The schema version this build writes (the number of [`MIGRATIONS`]).
pub const VERSION: i64 = 6;

/// Migrations in order; the schema version is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE folders (
        id            INTEGER PRIMARY KEY,
        wire_name     TEXT NOT NULL UNIQUE,
        delimiter     TEXT CHECK (delimiter IS NULL OR length(delimiter) = 1),
        local_path    TEXT NOT NULL UNIQUE,
        uidvalidity   INTEGER CHECK (uidvalidity IS NULL OR uidvalidity BETWEEN 1 AND 4294967295),
        uidnext       INTEGER CHECK (uidnext IS NULL OR uidnext BETWEEN 1 AND 4294967295),
        highestmodseq INTEGER CHECK (highestmodseq IS NULL OR highestmodseq >= 0),
        special_use   TEXT,
        subscribed    INTEGER NOT NULL DEFAULT 0,
        read_only     INTEGER NOT NULL DEFAULT 0,
        last_sync     INTEGER
    );

    CREATE TABLE messages (
        folder_id       INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid             INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
        base            TEXT NOT NULL,
        flags           TEXT NOT NULL,
        keywords        TEXT NOT NULL,
        size            INTEGER CHECK (size IS NULL OR size >= 0),
        internaldate    INTEGER,
        internaldate_tz INTEGER,
        hash            BLOB CHECK (hash IS NULL OR length(hash) = 32),
        message_id      TEXT,
        partial         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (folder_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_by_base ON messages(folder_id, base);
    CREATE INDEX messages_by_hash ON messages(hash) WHERE hash IS NOT NULL;
    CREATE INDEX messages_by_message_id ON messages(message_id) WHERE message_id IS NOT NULL;

    CREATE TABLE intents (
        id               INTEGER PRIMARY KEY,
        kind             TEXT NOT NULL,
        folder_id        INTEGER REFERENCES folders(id) ON DELETE SET NULL,
        target_folder_id INTEGER REFERENCES folders(id) ON DELETE SET NULL,
        uid              INTEGER,
        base             TEXT,
        hash             BLOB,
        detail           TEXT NOT NULL DEFAULT '',
        created          INTEGER NOT NULL
    );

    CREATE TABLE pending (
        id           INTEGER PRIMARY KEY,
        folder_id    INTEGER NOT NULL REFERENCES folders(id) ON DELETE RESTRICT,
        kind         TEXT NOT NULL,
        target       TEXT NOT NULL,
        uid          INTEGER,
        base         TEXT,
        detail       TEXT NOT NULL DEFAULT '',
        reason       TEXT NOT NULL DEFAULT '',
        attempts     INTEGER NOT NULL DEFAULT 0,
        created      INTEGER NOT NULL,
        last_attempt INTEGER,
        UNIQUE (folder_id, kind, target)
    );

    CREATE TABLE aliases (
        parent    TEXT NOT NULL,
        dir       TEXT NOT NULL,
        component TEXT NOT NULL,
        PRIMARY KEY (parent, dir),
        UNIQUE (parent, component)
    ) WITHOUT ROWID;
    "#,
    // Version 2: unbound message rows (uid NULL) survive a UIDVALIDITY change.
    r#"
    CREATE TABLE messages_v2 (
        folder_id       INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid             INTEGER CHECK (uid IS NULL OR uid BETWEEN 1 AND 4294967295),
        base            TEXT NOT NULL,
        flags           TEXT NOT NULL,
        keywords        TEXT NOT NULL,
        size            INTEGER CHECK (size IS NULL OR size >= 0),
        internaldate    INTEGER,
        internaldate_tz INTEGER,
        hash            BLOB CHECK (hash IS NULL OR length(hash) = 32),
        message_id      TEXT,
        partial         INTEGER NOT NULL DEFAULT 0,
        UNIQUE (folder_id, uid)
    );
    INSERT INTO messages_v2(folder_id, uid, base, flags, keywords, size, internaldate,
                            internaldate_tz, hash, message_id, partial)
        SELECT folder_id, uid, base, flags, keywords, size, internaldate,
               internaldate_tz, hash, message_id, partial FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_v2 RENAME TO messages;
    CREATE INDEX messages_by_base ON messages(folder_id, base);
    CREATE INDEX messages_by_hash ON messages(hash) WHERE hash IS NOT NULL;
    CREATE INDEX messages_by_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
    "#,
    // Version 3: the local stamp of a folder that needs no scan.
    r#"
    ALTER TABLE folders ADD COLUMN local_stamp TEXT;
    ALTER TABLE folders ADD COLUMN stamp_messages INTEGER
        CHECK (stamp_messages IS NULL OR stamp_messages >= 0);
    "#,
    // Version 4: listing keys and the per-folder listing digest.
    r#"
    ALTER TABLE messages ADD COLUMN listing_key INTEGER;
    ALTER TABLE folders ADD COLUMN listing_digest INTEGER;
    ALTER TABLE folders ADD COLUMN listing_count INTEGER;
    CREATE TRIGGER messages_listing_insert AFTER INSERT ON messages BEGIN
        UPDATE folders SET
            listing_digest = (listing_digest | NEW.listing_key) - (listing_digest & NEW.listing_key),
            listing_count = listing_count + 1
        WHERE id = NEW.folder_id;
    END;
    CREATE TRIGGER messages_listing_delete AFTER DELETE ON messages BEGIN
        UPDATE folders SET
            listing_digest = (listing_digest | OLD.listing_key) - (listing_digest & OLD.listing_key),
            listing_count = listing_count - 1
        WHERE id = OLD.folder_id;
    END;
    CREATE TRIGGER messages_listing_update AFTER UPDATE OF folder_id, listing_key ON messages
    BEGIN
        UPDATE folders SET
            listing_digest = (listing_digest | OLD.listing_key) - (listing_digest & OLD.listing_key),
            listing_count = listing_count - 1
        WHERE id = OLD.folder_id;
        UPDATE folders SET
            listing_digest = (listing_digest | NEW.listing_key) - (listing_digest & NEW.listing_key),
            listing_count = listing_count + 1
        WHERE id = NEW.folder_id;
    END;
    "#,
    // Version 5: the listing digest kept by the row writers instead of triggers.
    r#"
    DROP TRIGGER messages_listing_insert;
    DROP TRIGGER messages_listing_delete;
    DROP TRIGGER messages_listing_update;
    "#,
    // Version 6: one small index of content (see above).
    r#"
    DROP INDEX messages_by_message_id;
    DROP INDEX messages_by_hash;
    CREATE INDEX messages_by_hash_prefix ON messages(substr(hash, 1, 8)) WHERE hash IS NOT NULL;
    "#,
];
