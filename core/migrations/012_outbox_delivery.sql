-- How the server delivers each queued envelope, fixed when it is queued (in
-- the same transaction as its message), so flushing reads the outbox only.
-- priority: NULL goes out silent (nobody else reads it: details, practice
-- data, tasks, work notes); urgent_for: the user a routed spoed post wakes;
-- patient: the practice's pseudonym for the server's audit trail, or
-- patient_pending = 1 when it was not known yet (the practice key came
-- later, or the row is older than this column) and is looked up at sending.
ALTER TABLE outbox ADD COLUMN priority TEXT CHECK (priority IN ('routine', 'urgent'));
ALTER TABLE outbox ADD COLUMN urgent_for TEXT;
ALTER TABLE outbox ADD COLUMN expires_at INTEGER;
ALTER TABLE outbox ADD COLUMN patient TEXT;
ALTER TABLE outbox ADD COLUMN patient_pending INTEGER NOT NULL DEFAULT 1;

-- Rows queued by an older version take what their message says.
UPDATE outbox SET
    priority = (SELECT m.priority FROM messages m
                WHERE m.id = outbox.message_id AND m.kind != 'werkaantekening'),
    urgent_for = (SELECT m.routed_to FROM messages m WHERE m.id = outbox.message_id),
    expires_at = (SELECT m.expires_at FROM messages m WHERE m.id = outbox.message_id)
WHERE kind = 'application';
UPDATE outbox SET patient_pending = 0 WHERE kind = 'commit';
