-- Pieper device store, schema 7: when this device's user read a message
-- that arrived (NULL: unread), for the dashboard and the unread counts.
ALTER TABLE messages ADD COLUMN read_at INTEGER;
CREATE INDEX messages_unread ON messages (conversation_id) WHERE read_at IS NULL AND state = 'received';
