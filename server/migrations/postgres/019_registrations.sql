-- A professional's registrations (AGB, BIG, UZI), entered by the practice
-- manager; every device certificate of the user carries them.
ALTER TABLE users ADD COLUMN agb TEXT;
ALTER TABLE users ADD COLUMN big TEXT;
ALTER TABLE users ADD COLUMN uzi TEXT;
