-- PUT /api/v1/beneficiaries/me/profile, public-api's part: the session check with the account (and
-- its record id), then the audit entry in its own transaction (its chain lock and head).
SELECT u.id, u.user_type::text AS user_type, u.email, u.display_name, u.roles, u.sobriety_date, u.notification_preferences, u.created_at, u.identity_record_id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = :sid AND s.user_id = :uid AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL;
BEGIN;
SELECT pg_advisory_xact_lock(6005340462595527681);
SELECT row_hash FROM bench_audit_logs ORDER BY seq DESC LIMIT 1;
INSERT INTO bench_audit_logs (id, occurred_at, actor_id, action, resource_type, resource_id, ip, user_agent, request_id, outcome, reason, prev_hash, row_hash) VALUES (gen_random_uuid(), now(), :uid, 'beneficiary.profile_update', 'user', :uid, '127.0.0.1'::inet, 'pgbench', gen_random_uuid()::text, 'success', NULL, sha256('prev'::bytea), sha256('row'::bytea));
COMMIT;
