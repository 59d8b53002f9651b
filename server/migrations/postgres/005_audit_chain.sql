-- The audit log becomes a hash chain per practice (see the SQLite twin).
ALTER TABLE audit_events ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
ALTER TABLE audit_events ADD COLUMN client_event TEXT;
CREATE UNIQUE INDEX audit_client_event ON audit_events (device_id, client_event)
    WHERE client_event IS NOT NULL;
CREATE INDEX audit_by_chain ON audit_events (practice_id, chain_seq);
CREATE INDEX audit_by_patient ON audit_events (practice_id, patient) WHERE patient IS NOT NULL;
CREATE INDEX audit_by_device ON audit_events (device_id, at);
CREATE INDEX audit_by_user ON audit_events (user_id, at);
CREATE TABLE audit_heads (
    practice_id TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    pruned_seq  BIGINT NOT NULL DEFAULT 0,
    pruned_hash TEXT NOT NULL
);
-- Kept five years (NEN 7513): only older records may be removed.
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND OLD.at < (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT - 157766400000 THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit log is append-only';
END;
$$ LANGUAGE plpgsql;

ALTER TABLE devices ADD COLUMN audit_unlocked_until BIGINT;

ALTER TABLE practices ADD COLUMN ttl_policy TEXT NOT NULL DEFAULT 'allowed'
    CHECK (ttl_policy IN ('allowed', 'forbidden', 'enforced'));
ALTER TABLE practices ADD COLUMN ttl_secs BIGINT;
ALTER TABLE envelopes ADD COLUMN expires_at BIGINT;
ALTER TABLE blobs ADD COLUMN expires_at BIGINT;
CREATE INDEX envelopes_expiring ON envelopes (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX blobs_expiring ON blobs (expires_at) WHERE expires_at IS NOT NULL;
