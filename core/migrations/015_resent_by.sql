-- Pieper device store, schema 15: history a member re-sent to heal this
-- device keeps who re-sent it, so it is shown as "re-sent by X" and never
-- as if its original sender had sent it to this device.
ALTER TABLE messages ADD COLUMN resent_by_practice TEXT;
ALTER TABLE messages ADD COLUMN resent_by_user TEXT;
ALTER TABLE messages ADD COLUMN resent_by_device TEXT;
