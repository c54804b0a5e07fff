-- Sign-in from a device without a browser (the staff CLI) through an OpenID provider's device
-- authorization flow (RFC 8628). public-api is the provider's client: it keeps the device code
-- (never given to the device) and hands the device a random handle, of which only the SHA-256 is
-- kept here. A row is polled no faster than its interval, used once, and expires with the
-- provider's device code.
CREATE TABLE oidc_device_logins (
    handle_hash     bytea PRIMARY KEY,
    provider        text NOT NULL,
    device_code     text NOT NULL,
    nonce           text NOT NULL,
    interval_secs   integer NOT NULL CHECK (interval_secs BETWEEN 1 AND 60),
    next_poll_at    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz
);
CREATE INDEX oidc_device_logins_expiry ON oidc_device_logins (expires_at);
