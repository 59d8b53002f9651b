-- Pieper device store, schema 3: practice-wide data (the roster and consent).
--
-- Both are append-only logs, folded in the practice group's order: `seq` is
-- the server's sequence number of the envelope that carried the change and
-- `item` its place in it. A change made here has no `seq` until the server
-- took it (it sorts last meanwhile); `batch` is the envelope it went out in,
-- `shared` whether it was queued for the practice group at all.

-- The practice group is a conversation of kind 'practice'. SQLite cannot
-- change a CHECK, so the table is rebuilt (foreign keys are off while the
-- store migrates, so the members, messages and outbox keep their rows).
CREATE TABLE conversations_new (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'spoed', 'practice', 'personal')),
    patient_ref TEXT,
    epoch       INTEGER NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);
INSERT INTO conversations_new SELECT id, title, kind, patient_ref, epoch, active, created_at FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_new RENAME TO conversations;

CREATE TABLE roster_changes (
    id          TEXT PRIMARY KEY,
    reference   TEXT NOT NULL,
    name        TEXT NOT NULL,
    birth_date  TEXT NOT NULL,
    enrolled    INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    seq         INTEGER,
    item        INTEGER,
    batch       TEXT,
    shared      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX roster_changes_order ON roster_changes (seq, item);
CREATE INDEX roster_changes_unshared ON roster_changes (shared) WHERE shared = 0;
CREATE INDEX roster_changes_batch ON roster_changes (batch) WHERE seq IS NULL;

CREATE TABLE consent_changes (
    id          TEXT PRIMARY KEY,
    patient     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    method      TEXT NOT NULL,
    note        TEXT,
    recorded_by TEXT NOT NULL,
    role        TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    withdrawal  INTEGER NOT NULL,
    seq         INTEGER,
    item        INTEGER,
    batch       TEXT,
    shared      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX consent_changes_patient ON consent_changes (patient, kind);
CREATE INDEX consent_changes_order ON consent_changes (seq, item);
CREATE INDEX consent_changes_unshared ON consent_changes (shared) WHERE shared = 0;
CREATE INDEX consent_changes_batch ON consent_changes (batch) WHERE seq IS NULL;
