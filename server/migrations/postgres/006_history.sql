-- How many of each conversation's newest messages a user's new device gets
-- from their other devices (end-to-end); 0: none.
ALTER TABLE practices ADD COLUMN history_messages INTEGER NOT NULL DEFAULT 50;
