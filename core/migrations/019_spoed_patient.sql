-- A spoed post names the patient of the message it repeats, so that
-- showing it is logged as an access to that patient.
ALTER TABLE messages ADD COLUMN spoed_patient TEXT;
