-- Pieper device store, schema 10: receipts, the audit trail's patient
-- pseudonyms, disappearing messages, retention and erasure.

-- The practice's pseudonym key, shared in the practice group: the first
-- one in the group's server order is the key (seq NULL: not yet taken by
-- the server, sorts last).
CREATE TABLE practice_keys (
    id         TEXT PRIMARY KEY,
    key        BLOB NOT NULL,
    seq        INTEGER,
    created_at INTEGER NOT NULL
);

-- Accesses to patient data on this device, waiting to be reported to the
-- server's audit trail. The patient stays a plain reference here (the store
-- is encrypted) and becomes a pseudonym when it is reported.
CREATE TABLE audit_outbox (
    id      TEXT PRIMARY KEY,
    action  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    patient TEXT,
    detail  TEXT
);

-- Delivered and read, per message and member device (end-to-end: they
-- travel in the conversation's group).
CREATE TABLE receipts (
    message_id   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    delivered_at INTEGER,
    read_at      INTEGER,
    PRIMARY KEY (message_id, device_id)
);
-- Receipts this device still has to send, per conversation.
CREATE TABLE receipts_pending (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL,
    read            INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    PRIMARY KEY (message_id, read)
);

-- Disappearing messages: when a message goes (ms), and whether it went
-- (the row stays as a "message expired" marker, without content).
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
ALTER TABLE messages ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_expiring ON messages (expires_at) WHERE expires_at IS NOT NULL AND expired = 0;
CREATE INDEX messages_by_sent ON messages (sent_at);
CREATE INDEX messages_spoed_of ON messages (spoed_of_message) WHERE spoed_of_message IS NOT NULL;
-- A conversation's time-to-live for new messages (seconds).
ALTER TABLE conversations ADD COLUMN ttl_secs INTEGER;

-- The practice's rules, as the server last gave them (enforced offline too).
CREATE TABLE practice_settings (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    retention_days INTEGER NOT NULL,
    ttl_policy     TEXT NOT NULL,
    ttl_secs       INTEGER,
    fetched_at     INTEGER NOT NULL
);

-- What housekeeping removed on this device, for the retention report.
CREATE TABLE housekeeping (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    expired_total     INTEGER NOT NULL DEFAULT 0,
    retention_total   INTEGER NOT NULL DEFAULT 0,
    erased_total      INTEGER NOT NULL DEFAULT 0,
    last_run          INTEGER
);
INSERT INTO housekeeping (id) VALUES (1);

-- Erasure requests this device carried out (no content: the request id,
-- the patient's pseudonym, when, and counts).
CREATE TABLE erasures (
    id          TEXT PRIMARY KEY,
    pseudonym   TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    at          INTEGER NOT NULL,
    removed     INTEGER NOT NULL
);
