-- An operator's action (the operator command run on a server with database credentials) names
-- the operating-system account that ran it, read from the process's real uid, never typed. Such
-- a row has no actor_id: no user account acted. Older rows keep NULL, and the chain hashes the
-- field only when it is set, so their hashes are unchanged.
ALTER TABLE audit_logs ADD COLUMN operator text;
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_operator_or_user CHECK (operator IS NULL OR actor_id IS NULL);
