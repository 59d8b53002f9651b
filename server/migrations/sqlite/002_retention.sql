-- How long undelivered envelopes and blobs are kept (the record in the HIS is
-- the long-term copy).
ALTER TABLE practices ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 90;
