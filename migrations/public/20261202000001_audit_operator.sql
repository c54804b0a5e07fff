-- An operator's action (the operator command, run on a server with database credentials) names
-- the operating-system account the process ran as. That name is what the machine reported to
-- whoever held the credentials, not a proof of identity: see the README's threat model. Such a
-- row has no actor_id, since no user account acted. Older rows keep NULL, and the chain hashes
-- the field only when it is set, so their hashes are unchanged.
ALTER TABLE audit_logs ADD COLUMN operator text;
-- Every existing row has operator NULL, so the check holds for them: NOT VALID skips a scan of
-- the whole trail under an exclusive lock, and new rows are checked all the same.
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_operator_or_user CHECK (operator IS NULL OR actor_id IS NULL) NOT VALID;
