-- Pieper server, schema 1 (SQLite). Times are ms since the Unix epoch.
CREATE TABLE practices (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    practice_id    TEXT NOT NULL REFERENCES practices (id),
    username       TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    totp_secret    TEXT NOT NULL,
    last_totp_step INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    UNIQUE (practice_id, username)
);
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    practice_id TEXT NOT NULL REFERENCES practices (id),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    acked_position INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE key_packages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    data        BLOB NOT NULL,
    last_resort INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX key_packages_by_device ON key_packages (device_id, last_resort, id);
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices (id),
    epoch       INTEGER NOT NULL,
    next_seq    INTEGER NOT NULL,
    patient     TEXT,
    created_at  INTEGER NOT NULL
);
-- A device receives a conversation's envelopes in (from_position, until_position].
CREATE TABLE memberships (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    from_position   INTEGER NOT NULL,
    until_position  INTEGER
);
CREATE INDEX memberships_by_device ON memberships (device_id, conversation_id);
CREATE INDEX memberships_by_conversation ON memberships (conversation_id, until_position);
-- The log: ciphertext only. A Welcome has one row per recipient device.
CREATE TABLE envelopes (
    position         INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    seq              INTEGER NOT NULL,
    client_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    epoch            INTEGER NOT NULL,
    sender_device    TEXT NOT NULL,
    recipient_device TEXT,
    priority         TEXT NOT NULL,
    payload          BLOB NOT NULL,
    stored_at        INTEGER NOT NULL
);
-- A resend with the same client id is stored once (a NULL recipient counts as one value).
CREATE UNIQUE INDEX envelopes_client_id
    ON envelopes (conversation_id, client_id, kind, COALESCE(recipient_device, ''));
CREATE INDEX envelopes_by_conversation ON envelopes (conversation_id, position);
CREATE INDEX envelopes_by_recipient ON envelopes (recipient_device, position);
CREATE TABLE blobs (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    uploader_device TEXT NOT NULL,
    size            INTEGER NOT NULL,
    data            BLOB NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    practice_id TEXT NOT NULL,
    user_id     TEXT,
    role        TEXT,
    device_id   TEXT,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    patient     TEXT,
    source      TEXT,
    detail      TEXT
);
CREATE INDEX audit_by_practice ON audit_events (practice_id, at);
-- Append-only: the database itself refuses changes to the audit log.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
