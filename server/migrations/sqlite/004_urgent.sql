-- Urgent messages not yet read by a recipient: pushed again, as urgent, to
-- every member device until someone other than the sender reads them.
CREATE TABLE urgent_messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    client_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    sender_device   TEXT NOT NULL,
    sender_user     TEXT NOT NULL,
    stored_at       BIGINT NOT NULL,
    next_at         BIGINT NOT NULL,
    escalations     BIGINT NOT NULL DEFAULT 0,
    read_at         BIGINT,
    PRIMARY KEY (conversation_id, client_id)
);
CREATE INDEX urgent_messages_due ON urgent_messages (next_at) WHERE read_at IS NULL;
