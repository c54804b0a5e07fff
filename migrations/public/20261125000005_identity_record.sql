-- The beneficiary's identity profile (legal name, date of birth, phone, emergency contact) is PHI
-- and lives in the PHI vault; the public database keeps only the record's id.
ALTER TABLE users ADD COLUMN identity_record_id uuid;
