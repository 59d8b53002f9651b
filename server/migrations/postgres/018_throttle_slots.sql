-- Sign-in and second-factor attempts that failed or are in flight, per key
-- (an account, an address), in the database: every instance on it counts
-- them together.
CREATE TABLE throttle_slots (
    id  BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX throttle_slots_by_key ON throttle_slots (key, at);
CREATE INDEX throttle_slots_by_at ON throttle_slots (at);
