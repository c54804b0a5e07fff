-- The consent database: 42 CFR §2.31 consents, their revocations, and every decision made.

ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sw_consent;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO sw_consent;

-- Versioned consent form text; a consent points at the exact text the subject signed.
CREATE TABLE consent_forms (
    version         text PRIMARY KEY,
    body            text NOT NULL,
    body_sha256     bytea NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consents (
    id              uuid PRIMARY KEY,
    subject_id      uuid NOT NULL,
    -- §2.31(a): who discloses, to whom, how much and what kind, why, until when, signature.
    discloser       text NOT NULL,
    recipient       text NOT NULL,
    categories      text[] NOT NULL CHECK (cardinality(categories) > 0),
    purpose         text NOT NULL,
    expires_at      timestamptz,
    expiry_event    text,
    form_version    text NOT NULL REFERENCES consent_forms (version),
    signed_name     text NOT NULL,
    signed_at       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at IS NOT NULL OR expiry_event IS NOT NULL)
);
CREATE INDEX consents_lookup ON consents (subject_id, recipient);

CREATE TABLE revocations (
    consent_id      uuid PRIMARY KEY REFERENCES consents (id),
    revoked_at      timestamptz NOT NULL DEFAULT now(),
    revoked_by      text NOT NULL,
    reason          text
);
REVOKE UPDATE, DELETE, TRUNCATE ON revocations FROM sw_consent;

-- Append-only and hash-chained: every question asked and the answer given.
CREATE TABLE decisions (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    subject_id      uuid NOT NULL,
    recipient       text NOT NULL,
    categories      text[] NOT NULL,
    purpose         text NOT NULL,
    permitted       boolean NOT NULL,
    consent_id      uuid,
    reason          text NOT NULL,
    asked_by        text NOT NULL,
    request_id      text,
    prev_hash       bytea NOT NULL,
    row_hash        bytea NOT NULL
);
REVOKE UPDATE, DELETE, TRUNCATE ON decisions FROM sw_consent;
