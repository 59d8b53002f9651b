-- Who vouched for a device: another device of its user ('own'), the
-- user's recovery key ('recovery'), or a practice manager who reset the
-- user's identity ('reset'). Members' devices check the signature; the
-- server only keeps it.
ALTER TABLE devices ADD COLUMN approval_kind TEXT;
