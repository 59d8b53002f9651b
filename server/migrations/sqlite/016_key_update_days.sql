-- How many days with activity a device may go without updating its own MLS
-- leaf in a conversation (post-compromise security). A practice setting
-- the devices read with the others.
ALTER TABLE practices ADD COLUMN key_update_days BIGINT NOT NULL DEFAULT 7;
