-- Every 42 CFR §2.31 element on the consent record (issue 10, item 2), and the directory of
-- recipients a patient chooses from.
--
-- recipients: partner residences and insurers, kept by staff. A consent copies the entry's name
-- and address when it is signed, so a later edit of the directory never changes what was
-- consented. `principal` is the account that acts for the recipient (`partner:<user id>`), the
-- name disclosure decisions match. Entries are retired, never deleted.
CREATE TABLE recipients (
    id              uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('residence', 'insurer')),
    name            text NOT NULL,
    address         text,
    principal       text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    retired_at      timestamptz,
    retired_by      text
);
REVOKE DELETE, TRUNCATE ON recipients FROM sw_consent;

-- consents: terms-v2 records carry the recipient as signed (a named recipient from the
-- directory or outside it, or a class of recipients for treatment, payment and health care
-- operations), and the signature's method and the address it came from. Rows recorded before
-- keep terms-v1, whose hash covers what they hold.
ALTER TABLE consents
    ADD COLUMN terms_format text NOT NULL DEFAULT 'consent-terms-v1'
        CHECK (terms_format IN ('consent-terms-v1', 'consent-terms-v2')),
    ADD COLUMN recipient_kind text CHECK (recipient_kind IN ('named', 'class')),
    ADD COLUMN recipient_name text,
    ADD COLUMN recipient_directory_id uuid REFERENCES recipients (id),
    ADD COLUMN recipient_address text,
    ADD COLUMN signature_method text,
    ADD COLUMN signed_from text,
    ADD CONSTRAINT consents_v2_elements CHECK (
        terms_format = 'consent-terms-v1'
        OR (recipient_kind IS NOT NULL AND recipient_name IS NOT NULL
            AND signature_method IS NOT NULL AND signed_from IS NOT NULL)),
    -- A terms-v1 row's hash covers none of these: they stay empty, or a view could show what
    -- no hash protects.
    ADD CONSTRAINT consents_v1_bare CHECK (
        terms_format = 'consent-terms-v2'
        OR (recipient_kind IS NULL AND recipient_name IS NULL AND recipient_directory_id IS NULL
            AND recipient_address IS NULL AND signature_method IS NULL AND signed_from IS NULL));
CREATE INDEX consents_subject_seq ON consents (subject_id, seq);

-- revocations: a revocation is itself signed (typed name, method, address) when its subject
-- makes it; rows recorded before keep revocations-v1.
ALTER TABLE revocations
    ADD COLUMN format text NOT NULL DEFAULT 'revocations-v1' CHECK (format IN ('revocations-v1', 'revocations-v2')),
    ADD COLUMN signed_name text,
    ADD COLUMN signature_method text,
    ADD COLUMN signed_from text,
    ADD CONSTRAINT revocations_v2_signature CHECK (
        format = 'revocations-v1' OR (signed_name IS NOT NULL AND signature_method IS NOT NULL AND signed_from IS NOT NULL)),
    ADD CONSTRAINT revocations_v1_bare CHECK (
        format = 'revocations-v2' OR (signed_name IS NULL AND signature_method IS NULL AND signed_from IS NULL));

-- Events that end consents waiting on them (§2.31(a)(6)): staff record that one happened for a
-- subject, and every consent of that subject naming the event, signed before it, ends.
CREATE TABLE expiry_events (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id      uuid NOT NULL,
    event           text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_by     text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX expiry_events_subject ON expiry_events (subject_id, event);
REVOKE UPDATE, DELETE, TRUNCATE ON expiry_events FROM sw_consent;

-- A directory entry is only ever retired by the runtime role: its name, address and the account
-- acting for it stay as added.
REVOKE UPDATE ON recipients FROM sw_consent;
GRANT UPDATE (retired_at, retired_by) ON recipients TO sw_consent;
