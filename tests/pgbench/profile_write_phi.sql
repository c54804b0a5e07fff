-- PUT /api/v1/beneficiaries/me/profile, phi-vault's part: the assertion spent, the record's
-- metadata, then in one transaction the new ciphertext and the access-log entry.
INSERT INTO internal_call_replays (issuer, jti, expires_at) VALUES ('public-api', gen_random_uuid()::text, now() + interval '1 minute') ON CONFLICT DO NOTHING;
SELECT r.subject_id, r.category::text AS category, s.wrapped_data_key IS NULL AS shredded FROM records r JOIN subjects s ON s.id = r.subject_id WHERE r.id = :record AND (r.expires_at IS NULL OR r.expires_at > now());
BEGIN;
UPDATE records SET nonce = sha256('nonce'::bytea), ciphertext = sha256(random()::text::bytea) || repeat('x', 200)::bytea, updated_at = now() WHERE id = :record AND subject_id = :subject AND (expires_at IS NULL OR expires_at > now()) AND EXISTS (SELECT 1 FROM subjects WHERE id = :subject AND wrapped_data_key IS NOT NULL) RETURNING created_at, updated_at;
SELECT pg_advisory_xact_lock(6005356899518726979);
SELECT row_hash FROM bench_access_log ORDER BY seq DESC LIMIT 1;
INSERT INTO bench_access_log (occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, request_id, flagged, prev_hash, row_hash) VALUES (now(), :uid, 'beneficiary', 'self_service', :subject, :record, 'record.update', 'permit', 'self', gen_random_uuid()::text, false, sha256('prev'::bytea), sha256('row'::bytea)) RETURNING seq;
COMMIT;
