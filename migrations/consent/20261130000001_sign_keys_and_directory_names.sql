-- Signing is idempotent: a client that sends an Idempotency-Key gets the consent its first
-- request made, however often the request is repeated (a double tap, a retry after a lost
-- answer). The key is the client's, scoped to the subject; the request's SHA-256 tells a repeat
-- from a different request that reuses the key.
CREATE TABLE consent_sign_requests (
    subject_id      uuid NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_sha256  bytea NOT NULL CHECK (length(request_sha256) = 32),
    consent_id      uuid REFERENCES consents (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_id, idempotency_key)
);
REVOKE DELETE, TRUNCATE ON consent_sign_requests FROM sw_consent;
REVOKE UPDATE ON consent_sign_requests FROM sw_consent;
GRANT UPDATE (consent_id) ON consent_sign_requests TO sw_consent;

-- No two entries in use of one kind carry the same name, compared after Unicode compatibility
-- normalisation, case folding and collapsing white space: a patient choosing "Mile High House"
-- from the list must not be offered a second, look-alike "mile  high house" acting for another
-- account. A retired name may be used again.
CREATE UNIQUE INDEX recipients_active_name ON recipients
    (kind, lower(regexp_replace(normalize(name, NFKC), '\s+', ' ', 'g')))
    WHERE retired_at IS NULL;
