-- Spent internal-call assertions: each assertion's `jti` is accepted once, by whichever instance
-- of this service sees it first (the primary key makes that atomic). Rows are dropped once the
-- assertion has expired, since an expired assertion is refused anyway.
CREATE TABLE internal_call_replays (
    issuer          text NOT NULL,
    jti             text NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX internal_call_replays_expiry ON internal_call_replays (expires_at);
