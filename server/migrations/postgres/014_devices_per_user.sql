-- How many devices (not revoked) one user of the practice may have: a
-- login beyond it is refused until they revoke one. A practice setting.
ALTER TABLE practices ADD COLUMN devices_per_user BIGINT NOT NULL DEFAULT 10;
