-- Pieper device store, schema 9: triage urgency, the spoed channel, the
-- duty roster and do-not-disturb.
ALTER TABLE messages ADD COLUMN triage TEXT CHECK (triage IN ('u1', 'u2', 'u3', 'u4', 'u5'));
-- A post in the spoed channel: the message it repeats, who it was routed
-- to, and who took it ("ik pak het op").
ALTER TABLE messages ADD COLUMN spoed_of_conversation TEXT;
ALTER TABLE messages ADD COLUMN spoed_of_message TEXT;
ALTER TABLE messages ADD COLUMN routed_to TEXT;
ALTER TABLE messages ADD COLUMN taken_by TEXT;
CREATE INDEX messages_untaken_spoed ON messages (conversation_id)
    WHERE spoed_of_message IS NOT NULL AND taken_by IS NULL;

-- The spoed channel's settings as a log in its server order: the duty
-- roster (the last one wins) and each user's do-not-disturb (their last).
CREATE TABLE spoed_settings (
    id      TEXT PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('roster', 'dnd')),
    by_user TEXT NOT NULL,
    value   TEXT NOT NULL,
    seq     INTEGER,
    item    INTEGER
);
