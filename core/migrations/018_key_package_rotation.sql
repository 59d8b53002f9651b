-- Pieper device store, schema 18: when this device last replaced every
-- KeyPackage the server holds for it (the last-resort one included). Older
-- than a month, they are replaced at the next sync; devices from before
-- replace theirs at their first sync.
ALTER TABLE session ADD COLUMN key_packages_rotated_at INTEGER NOT NULL DEFAULT 0;
