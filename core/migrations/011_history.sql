-- Pieper device store, schema 11: how much history a user's new device
-- gets from their other devices, as the practice set it.
ALTER TABLE practice_settings ADD COLUMN history_messages INTEGER NOT NULL DEFAULT 50;
