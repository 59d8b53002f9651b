-- One-time enrolment codes: the practice manager invites a colleague (or
-- resets their login) and hands over the code; with it the person sets
-- their own password and authenticator on their first device. One pending
-- code per user, stored hashed; used or disabled, it is gone.
CREATE TABLE enrolment_codes (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
