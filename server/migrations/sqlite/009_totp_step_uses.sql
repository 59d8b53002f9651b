-- How often the last TOTP step was used (a test server may take one twice).
ALTER TABLE users ADD COLUMN totp_step_uses INTEGER NOT NULL DEFAULT 0;
