-- Pieper device store, schema 4: this device's push token, kept so that it
-- is registered again when the server did not get it (offline).
CREATE TABLE push_token (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    provider         TEXT NOT NULL,
    token            TEXT NOT NULL,
    apns_environment TEXT,
    registered       INTEGER NOT NULL DEFAULT 0
);
