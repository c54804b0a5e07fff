-- GET /api/v1/beneficiaries/me/profile, public-api's part: the session check, the record id.
SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = :sid AND s.user_id = :uid AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL);
SELECT identity_record_id FROM users WHERE id = :uid;
