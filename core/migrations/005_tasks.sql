-- Pieper device store, schema 5: tasks, as the log of their changes.
--
-- Tasks are conversation data: each change travels encrypted in the
-- conversation's MLS group, and a task is the fold of its changes in the
-- group's server order (`seq`, then `item`); a change made here sorts last
-- until the server took it.
CREATE TABLE task_changes (
    id              TEXT PRIMARY KEY,
    task_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    change          TEXT NOT NULL,     -- JSON of the change
    by_user         TEXT NOT NULL,     -- as authenticated by MLS
    at              INTEGER NOT NULL,
    seq             INTEGER,
    item            INTEGER
);
CREATE INDEX task_changes_task ON task_changes (task_id);
CREATE INDEX task_changes_conversation ON task_changes (conversation_id);
