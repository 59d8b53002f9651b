-- What each practice holds in attachments, kept by the database itself as
-- blobs come and go (whichever code path removes them), so an upload checks
-- its quota without summing every blob of the practice.
ALTER TABLE practices ADD COLUMN blob_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE practices p SET blob_bytes = COALESCE((
    SELECT SUM(b.size) FROM blobs b
    JOIN conversations c ON c.id = b.conversation_id WHERE c.practice_id = p.id), 0);
CREATE FUNCTION blobs_held() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE practices SET blob_bytes = blob_bytes + NEW.size
        WHERE id = (SELECT practice_id FROM conversations WHERE id = NEW.conversation_id);
        RETURN NEW;
    END IF;
    UPDATE practices SET blob_bytes = blob_bytes - OLD.size
    WHERE id = (SELECT practice_id FROM conversations WHERE id = OLD.conversation_id);
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER blobs_held AFTER INSERT OR DELETE ON blobs
FOR EACH ROW EXECUTE FUNCTION blobs_held();
