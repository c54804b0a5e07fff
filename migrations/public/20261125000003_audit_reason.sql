-- Why a staff action was taken (role grants, later reviews). Part of the hashed content when
-- present; rows without one hash exactly as before.
ALTER TABLE audit_logs ADD COLUMN reason text;
