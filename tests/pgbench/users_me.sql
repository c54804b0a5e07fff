-- GET /api/v1/users/me: public-api's session check, then the account.
SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = :sid AND s.user_id = :uid AND s.revoked_at IS NULL AND s.expires_at > now() AND u.deleted_at IS NULL);
SELECT id, user_type::text AS user_type, email, display_name, roles, sobriety_date, notification_preferences, created_at FROM users WHERE id = :uid AND deleted_at IS NULL;
