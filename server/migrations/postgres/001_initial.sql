-- Pieper server, schema 1 (PostgreSQL). Times are ms since the Unix epoch.
CREATE TABLE practices (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    practice_id    TEXT NOT NULL REFERENCES practices (id),
    username       TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    totp_secret    TEXT NOT NULL,
    last_totp_step BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    UNIQUE (practice_id, username)
);
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    practice_id TEXT NOT NULL REFERENCES practices (id),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    acked_position BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE key_packages (
    id          BIGSERIAL PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    data        BYTEA NOT NULL,
    last_resort BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX key_packages_by_device ON key_packages (device_id, last_resort, id);
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices (id),
    epoch       BIGINT NOT NULL,
    next_seq    BIGINT NOT NULL,
    patient     TEXT,
    created_at  BIGINT NOT NULL
);
CREATE TABLE memberships (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    from_position   BIGINT NOT NULL,
    until_position  BIGINT
);
CREATE INDEX memberships_by_device ON memberships (device_id, conversation_id);
CREATE INDEX memberships_by_conversation ON memberships (conversation_id, until_position);
CREATE TABLE envelopes (
    position         BIGSERIAL PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id),
    seq              BIGINT NOT NULL,
    client_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    epoch            BIGINT NOT NULL,
    sender_device    TEXT NOT NULL,
    recipient_device TEXT,
    priority         TEXT NOT NULL,
    payload          BYTEA NOT NULL,
    stored_at        BIGINT NOT NULL
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
    size            BIGINT NOT NULL,
    data            BYTEA NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
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
CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'audit log is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
