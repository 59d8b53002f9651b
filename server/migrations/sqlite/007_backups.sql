-- A user's encrypted history backup (ciphertext only; the key is derived
-- from a recovery code only the user holds). One per user, replaced.
CREATE TABLE backups (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    data       BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
