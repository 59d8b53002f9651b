-- Pieper device store, schema 6: what a message is for, and whether it
-- reached the record.
--   kind: overleg (discussion), documenteer (goes into the record),
--         werkaantekening (a work note on its author's devices only).
--   shared: for a work note, whether it was queued for the author's other
--           devices (their personal group).
--   doc_state / doc_detail: for documenteer, where it is on its way to the
--           HIS (NULL: not yet documented).
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'overleg'
    CHECK (kind IN ('overleg', 'documenteer', 'werkaantekening'));
ALTER TABLE messages ADD COLUMN shared INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN doc_state TEXT
    CHECK (doc_state IN ('pending', 'documented', 'failed'));
ALTER TABLE messages ADD COLUMN doc_detail TEXT;
CREATE INDEX messages_unshared ON messages (shared) WHERE shared = 0;
