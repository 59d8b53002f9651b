-- Pieper device store, schema 1. Never edit after release; add a new file.

-- The one identity of this store's device.
CREATE TABLE device_identity (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    practice_id          TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    device_id            TEXT NOT NULL,
    signature_public_key BLOB NOT NULL,
    created_at           INTEGER NOT NULL
);

-- A conversation is one MLS group; its id is the group id.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'spoed')),
    patient_ref TEXT,
    epoch       INTEGER NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

-- Member devices, as the MLS tree of the current epoch names them.
CREATE TABLE members (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    leaf_index      INTEGER NOT NULL,
    practice_id     TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    PRIMARY KEY (conversation_id, leaf_index)
);

CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY,          -- local order; the FTS rowid
    id              TEXT NOT NULL UNIQUE,         -- client-generated message id
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_practice TEXT NOT NULL,
    sender_user     TEXT NOT NULL,
    sender_device   TEXT NOT NULL,
    body            TEXT NOT NULL,
    priority        TEXT NOT NULL CHECK (priority IN ('routine', 'urgent')),
    sent_at         INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    reply_to        TEXT,
    attachments     TEXT NOT NULL DEFAULT '[]',   -- JSON list of AttachmentRef
    state           TEXT NOT NULL
                    CHECK (state IN ('pending', 'sent', 'delivered', 'read', 'received')),
    epoch           INTEGER NOT NULL
);
CREATE INDEX messages_by_time ON messages (conversation_id, sent_at, seq);

-- Full-text index over decrypted bodies; it lives in the encrypted file.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body,
    content = 'messages',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.seq, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.seq, new.body);
END;

-- What this device still has to hand to the server, in order.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('application', 'commit')),
    message_id      TEXT,
    epoch           INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    welcome         BLOB,
    created_at      INTEGER NOT NULL
);
