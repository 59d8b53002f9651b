-- A user the practice manager disabled (a leaver, a suspension): login is
-- refused and every device of theirs was revoked at that moment. Cleared
-- when the manager enables them again.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
