-- Each practice's certificate authority: it certifies a device's MLS
-- signature key for its account at enrolment (after password and TOTP).
CREATE TABLE practice_authorities (
    practice_id TEXT PRIMARY KEY REFERENCES practices (id),
    key_der     BYTEA NOT NULL,
    certificate BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
-- The signature key certified for a device, and its certificate.
ALTER TABLE devices ADD COLUMN signature_key BYTEA;
ALTER TABLE devices ADD COLUMN certificate BYTEA;
-- Which of the user's devices approved this one, and its signature.
ALTER TABLE devices ADD COLUMN approved_by TEXT;
ALTER TABLE devices ADD COLUMN approval BYTEA;
