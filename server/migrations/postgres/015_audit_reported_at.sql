-- A device-reported event keeps the device's time beside the server's own:
-- `at` is when the server recorded it (it orders and prunes the chain, so a
-- device clock set to 1970 cannot make a record look old), `reported_at`
-- when the device says it happened (what a breach window asks about).
ALTER TABLE audit_events ADD COLUMN reported_at BIGINT;
