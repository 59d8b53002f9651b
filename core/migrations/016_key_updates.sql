-- Pieper device store, schema 16: when this device last replaced its own
-- leaf's keys in each conversation (an MLS commit with an update path, or
-- the leaf it created or joined with), whether messages went or came since,
-- and whether an update is due at once (after a restore, a certificate
-- renewal, an unlock after a wipe warning). Conversations from before count
-- from their creation, with activity: they update at the next syncs, a few
-- at a time.
ALTER TABLE conversations ADD COLUMN leaf_updated_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN leaf_activity INTEGER NOT NULL DEFAULT 1;
ALTER TABLE conversations ADD COLUMN leaf_update_due INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET leaf_updated_at = created_at;
-- The practice's rule: how many days with activity a leaf may go without
-- an update.
ALTER TABLE practice_settings ADD COLUMN key_update_days INTEGER NOT NULL DEFAULT 7;
