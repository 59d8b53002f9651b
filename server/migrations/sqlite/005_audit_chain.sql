-- The audit log becomes a hash chain per practice: each event carries its
-- place (chain_seq), the hash of the one before and its own hash; the head
-- of each chain is kept apart so that a removed last record shows too.
ALTER TABLE audit_events ADD COLUMN chain_seq INTEGER;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
-- An event a device reported (read, documented, exported, erased), by its id
-- on that device: a report sent twice is recorded once.
ALTER TABLE audit_events ADD COLUMN client_event TEXT;
CREATE UNIQUE INDEX audit_client_event ON audit_events (device_id, client_event)
    WHERE client_event IS NOT NULL;
CREATE INDEX audit_by_chain ON audit_events (practice_id, chain_seq);
CREATE INDEX audit_by_patient ON audit_events (practice_id, patient) WHERE patient IS NOT NULL;
CREATE INDEX audit_by_device ON audit_events (device_id, at);
CREATE INDEX audit_by_user ON audit_events (user_id, at);
CREATE TABLE audit_heads (
    practice_id TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    -- Records older than five years are removed from the start of the
    -- chain; the last removed one's place and hash anchor what remains.
    pruned_seq  INTEGER NOT NULL DEFAULT 0,
    pruned_hash TEXT NOT NULL
);
-- Kept five years (NEN 7513): only older records may be removed.
DROP TRIGGER audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events
WHEN OLD.at >= (CAST(strftime('%s', 'now') AS INTEGER) - 157766400) * 1000
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;

-- Reading the audit log needs a fresh second factor: until when this
-- device may.
ALTER TABLE devices ADD COLUMN audit_unlocked_until INTEGER;

-- Disappearing messages: the practice allows, forbids or enforces a
-- time-to-live; an envelope or blob with one is removed when it passes.
ALTER TABLE practices ADD COLUMN ttl_policy TEXT NOT NULL DEFAULT 'allowed'
    CHECK (ttl_policy IN ('allowed', 'forbidden', 'enforced'));
ALTER TABLE practices ADD COLUMN ttl_secs INTEGER;
ALTER TABLE envelopes ADD COLUMN expires_at INTEGER;
ALTER TABLE blobs ADD COLUMN expires_at INTEGER;
CREATE INDEX envelopes_expiring ON envelopes (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX blobs_expiring ON blobs (expires_at) WHERE expires_at IS NOT NULL;
