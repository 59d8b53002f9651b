-- Every device of the practice this device has met, and why it accepts it
-- as who its certificate says: the first device of a user met on the
-- server's certificate alone ('first_use'), one approved by another device
-- of its user ('vouched', by), one approved with the user's recovery code
-- ('recovered'), one whose user's identity a manager reset ('reset', by
-- user), or one a member brought in with an approval this device could not
-- check ('introduced', by user). A device removed from the practice group
-- is gone: it vouches for nobody any more.
CREATE TABLE known_devices (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    signature_key BLOB NOT NULL,
    manager       INTEGER NOT NULL DEFAULT 0,
    trust         TEXT NOT NULL,
    trusted_by    TEXT,
    since         INTEGER NOT NULL,
    gone          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id)
);
-- Each user's recovery key (Ed25519, derived from the recovery code of
-- their backup), as the user's own device sent it into the practice group;
-- this user's own one waits unshared until it is sent.
CREATE TABLE recovery_keys (
    user_id    TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    shared     INTEGER NOT NULL DEFAULT 1
);
