-- Heads of the practice's audit chain, signed by its authority and sent
-- into the practice group by a manager's device: the log the server shows
-- later must extend every one of them.
CREATE TABLE audit_anchors (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    signature   BLOB NOT NULL,
    by_user     TEXT NOT NULL
);
