-- The public database: accounts, money, partners, notifications, the audit trail.
-- No PHI lives here. Where a row concerns PHI (an application's details, a chat's messages,
-- an insurance number, a document) it keeps only `*_record_id`, an opaque reference to a
-- record in the PHI vault.
--
-- Privileges: the runtime role `sw_public` gets data privileges on everything the migrating
-- (owner) role creates, and no DDL.

ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sw_public;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO sw_public;

CREATE TYPE user_type AS ENUM ('donor', 'beneficiary', 'partner');

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    user_type       user_type NOT NULL,
    email           text NOT NULL,
    display_name    text NOT NULL,
    -- Staff roles are granted by an admin through the CLI, never by a request body.
    roles           text[] NOT NULL DEFAULT '{}',
    sobriety_date   date,
    notification_preferences jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX users_email_live ON users (lower(email)) WHERE deleted_at IS NULL;

CREATE TABLE identities (
    provider        text NOT NULL,
    subject         text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    -- Only a hash of the refresh token is stored.
    refresh_token_hash bytea NOT NULL UNIQUE,
    user_agent      text,
    ip              inet,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TYPE application_kind AS ENUM ('rent', 'transport', 'tech');
CREATE TYPE application_status AS ENUM ('draft', 'submitted', 'in_review', 'approved', 'denied', 'funded', 'withdrawn');

CREATE TABLE partners (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    ein             text UNIQUE,
    kind            text NOT NULL DEFAULT 'recovery_residence',
    city            text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'suspended', 'rejected')),
    contact_user_id uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vendors (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    category        text NOT NULL,
    payout_reference text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE applications (
    id              uuid PRIMARY KEY,
    beneficiary_id  uuid NOT NULL REFERENCES users (id),
    kind            application_kind NOT NULL,
    status          application_status NOT NULL DEFAULT 'draft',
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    partner_id      uuid REFERENCES partners (id),
    vendor_id       uuid REFERENCES vendors (id),
    -- The application's details (PHI) live in the PHI vault.
    details_record_id uuid,
    caseworker_id   uuid REFERENCES users (id),
    submitted_at    timestamptz,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applications_beneficiary ON applications (beneficiary_id);
CREATE INDEX applications_status ON applications (status);

CREATE TABLE donations (
    id              uuid PRIMARY KEY,
    donor_id        uuid REFERENCES users (id),
    application_id  uuid REFERENCES applications (id),
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    currency        text NOT NULL DEFAULT 'usd',
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    payment_intent_id text UNIQUE,
    idempotency_key text UNIQUE,
    anonymous       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The public ledger: every dollar in and out. A beneficiary appears only as a keyed hash.
CREATE TABLE transactions (
    id              uuid PRIMARY KEY,
    donation_id     uuid REFERENCES donations (id),
    application_id  uuid REFERENCES applications (id),
    vendor_id       uuid REFERENCES vendors (id),
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    amount_cents    bigint NOT NULL CHECK (amount_cents > 0),
    beneficiary_ref text,
    description     text NOT NULL,
    occurred_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_occurred ON transactions (occurred_at);

CREATE TABLE chat_sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('intake', 'coach')),
    -- The conversation's messages live in the PHI vault.
    transcript_record_id uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz
);

CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL,
    title           text NOT NULL,
    body            text NOT NULL,
    read_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);

-- Append-only and hash-chained: `prev_hash` is the previous row's `row_hash`.
CREATE TABLE audit_logs (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              uuid NOT NULL UNIQUE,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    actor_id        uuid,
    action          text NOT NULL,
    resource_type   text,
    resource_id     text,
    ip              inet,
    user_agent      text,
    request_id      text,
    outcome         text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    prev_hash       bytea NOT NULL,
    row_hash        bytea NOT NULL
);
REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM sw_public;
