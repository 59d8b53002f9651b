-- Pieper device store, schema 2: the server session and commit membership.

-- The signed-in session with the server; one row.
CREATE TABLE session (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    server_url  TEXT NOT NULL,
    token       TEXT NOT NULL,
    role        TEXT NOT NULL,
    cursor      INTEGER NOT NULL DEFAULT 0,
    signed_out  INTEGER NOT NULL DEFAULT 0
);

-- Which devices a queued commit adds and removes (the server is told, since
-- it cannot read the commit). JSON lists of device ids.
ALTER TABLE outbox ADD COLUMN add_devices TEXT NOT NULL DEFAULT '[]';
ALTER TABLE outbox ADD COLUMN remove_devices TEXT NOT NULL DEFAULT '[]';
