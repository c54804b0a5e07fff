-- GET /api/v1/beneficiaries/me/profile, public-api's part: the session check with the account
-- (and its record id).
SELECT u.id, u.user_type::text AS user_type, u.email, u.display_name, u.roles, u.sobriety_date, u.notification_preferences, u.created_at, u.identity_record_id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = :sid AND s.user_id = :uid AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL;
