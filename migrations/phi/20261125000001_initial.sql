-- The PHI database: the only place 42 CFR Part 2 records live, always encrypted.
-- Each subject has a data key, stored only wrapped by a key-encryption key; each record's
-- ciphertext is bound by associated data to its subject, id, category and field.

ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sw_phi;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO sw_phi;

CREATE TABLE subjects (
    id              uuid PRIMARY KEY,
    -- The data key, wrapped by the key-encryption key; NULL once crypto-shredded.
    wrapped_data_key bytea,
    kek_id          text,
    kek_version     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    shredded_at     timestamptz
);

CREATE TYPE record_category AS ENUM (
    'intake_conversation', 'coach_conversation', 'application_details', 'insurance', 'identity', 'document'
);

CREATE TABLE records (
    id              uuid PRIMARY KEY,
    subject_id      uuid NOT NULL REFERENCES subjects (id),
    category        record_category NOT NULL,
    nonce           bytea NOT NULL,
    ciphertext      bytea NOT NULL,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz
);
CREATE INDEX records_subject ON records (subject_id, category);
CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE documents (
    id              uuid PRIMARY KEY,
    record_id       uuid NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    content_type    text NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    scan_result     text NOT NULL DEFAULT 'pending' CHECK (scan_result IN ('pending', 'clean', 'infected', 'error')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE care_team (
    caseworker_id   uuid NOT NULL,
    subject_id      uuid NOT NULL REFERENCES subjects (id),
    assigned_by     uuid NOT NULL,
    assigned_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caseworker_id, subject_id)
);

-- Append-only and hash-chained; never holds record contents.
CREATE TABLE access_log (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    actor_role      text NOT NULL,
    purpose         text NOT NULL,
    subject_id      uuid,
    record_id       uuid,
    action          text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('permit', 'deny')),
    reason          text,
    request_id      text,
    prev_hash       bytea NOT NULL,
    row_hash        bytea NOT NULL
);
REVOKE UPDATE, DELETE, TRUNCATE ON access_log FROM sw_phi;

-- The accounting of disclosures (42 CFR §2.24 / HIPAA §164.528).
CREATE TABLE disclosures (
    id              uuid PRIMARY KEY,
    subject_id      uuid NOT NULL REFERENCES subjects (id),
    recipient       text NOT NULL,
    purpose         text NOT NULL,
    categories      record_category[] NOT NULL,
    consent_id      uuid,
    notice_version  text NOT NULL,
    request_id      text,
    disclosed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disclosures_subject ON disclosures (subject_id, disclosed_at);
REVOKE UPDATE, DELETE, TRUNCATE ON disclosures FROM sw_phi;
