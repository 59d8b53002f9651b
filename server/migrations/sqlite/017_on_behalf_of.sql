-- NEN 7513's "on whose behalf": a user may act for a named huisarts (an
-- assistent working for her GP), and every audit record carries it.
ALTER TABLE users ADD COLUMN on_behalf_of TEXT;
ALTER TABLE audit_events ADD COLUMN on_behalf_of TEXT;
