-- Pieper device store, schema 8: documentation items on their way into the
-- HIS. Every member device keeps the items of its conversations and their
-- state; the connector's device also keeps when to try again.
CREATE TABLE doc_items (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    item            TEXT NOT NULL,          -- JSON of the item
    requested_by    TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'documented', 'failed')),
    detail          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX doc_items_pending ON doc_items (next_attempt_at) WHERE state = 'pending';
