-- A member device that cannot decrypt a conversation any more (its state was
-- lost or restored from an old copy) asks to be removed and added again; a
-- member device of the conversation does that, and the request goes.
CREATE TABLE heal_requests (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    requested_at    BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, device_id)
);
