-- The device's certificate (X.509, DER) from its enrolment, and the
-- practice authority's certificate it pinned then. A device from before
-- certificates has neither: it reads what it has and must sign in again to
-- take part.
ALTER TABLE device_identity ADD COLUMN certificate BLOB;
ALTER TABLE device_identity ADD COLUMN authority BLOB;
-- What this device refused from other members (an identity that did not
-- check out, an operation their role does not allow), counted by kind.
CREATE TABLE refusals (
    kind  TEXT PRIMARY KEY,
    count INTEGER NOT NULL DEFAULT 0
);
-- Conversations this device asked to be added to again (it fell behind):
-- only then does it take history sent into the conversation itself.
CREATE TABLE heal_asks (
    conversation_id TEXT PRIMARY KEY,
    asked_at        INTEGER NOT NULL
);
