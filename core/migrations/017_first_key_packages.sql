-- Pieper device store, schema 17: whether the device published the
-- KeyPackages it starts with. A new device writes 0 with its session and 1
-- once they are on the server; one that stopped in between (a crash, the
-- network) publishes them at its next sync. Devices from before did.
ALTER TABLE session ADD COLUMN key_packages_published INTEGER NOT NULL DEFAULT 1;
