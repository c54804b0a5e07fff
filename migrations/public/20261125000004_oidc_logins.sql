-- One row per sign-in attempt through an OpenID provider: the state handed to the browser, the
-- nonce the id_token must carry and the PKCE verifier. Each is used once and expires after ten
-- minutes; a replayed state (or nonce) finds its row already consumed.
CREATE TABLE oidc_logins (
    state           text PRIMARY KEY,
    provider        text NOT NULL,
    nonce           text NOT NULL,
    pkce_verifier   text NOT NULL,
    user_type       user_type,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz
);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);
