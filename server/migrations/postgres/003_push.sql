-- The push token of a device (one per device; a new one replaces the old).
CREATE TABLE push_tokens (
    device_id        TEXT PRIMARY KEY REFERENCES devices (id),
    provider         TEXT NOT NULL CHECK (provider IN ('fcm', 'apns')),
    token            TEXT NOT NULL,
    apns_environment TEXT CHECK (apns_environment IN ('sandbox', 'production')),
    updated_at       BIGINT NOT NULL
);
CREATE INDEX push_tokens_token ON push_tokens (token);
