-- Refresh tokens rotate on every use; each one ever issued is kept (as a hash) so that a
-- reused, already-rotated token is recognised as theft and revokes its whole session.

ALTER TABLE sessions DROP COLUMN refresh_token_hash;

CREATE TABLE refresh_tokens (
    token_hash      bytea PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES sessions (id),
    issued_at       timestamptz NOT NULL DEFAULT now(),
    -- Set when this token was exchanged for the next one; presenting it again is reuse.
    rotated_at      timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
-- At most one live token per session.
CREATE UNIQUE INDEX refresh_tokens_live ON refresh_tokens (session_id) WHERE rotated_at IS NULL;

ALTER TABLE users ADD COLUMN last_login_at timestamptz;

-- Staff accounts (caseworkers, admins, compliance officers) are of type `staff`; sign-up never
-- offers it. Their powers come from `roles`, which only an admin grants, through the CLI.
ALTER TYPE user_type ADD VALUE 'staff';
