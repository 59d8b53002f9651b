-- What each practice holds in attachments, kept by the database itself as
-- blobs come and go (whichever code path removes them), so an upload checks
-- its quota without summing every blob of the practice.
ALTER TABLE practices ADD COLUMN blob_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE practices SET blob_bytes = (
    SELECT COALESCE(SUM(b.size), 0) FROM blobs b
    JOIN conversations c ON c.id = b.conversation_id WHERE c.practice_id = practices.id);
CREATE TRIGGER blobs_held_in AFTER INSERT ON blobs BEGIN
    UPDATE practices SET blob_bytes = blob_bytes + NEW.size
    WHERE id = (SELECT practice_id FROM conversations WHERE id = NEW.conversation_id);
END;
CREATE TRIGGER blobs_held_out AFTER DELETE ON blobs BEGIN
    UPDATE practices SET blob_bytes = blob_bytes - OLD.size
    WHERE id = (SELECT practice_id FROM conversations WHERE id = OLD.conversation_id);
END;
