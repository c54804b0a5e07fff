-- Applications (issue 11): a beneficiary asks for rent, transport, tech or other help; staff
-- review. The scaffold's table had a status and kind set of its own and no code used it; it now
-- takes the review workflow's states. Rows of the old states (there are none in any database this
-- project made) map onto the nearest new one.
ALTER TABLE applications ALTER COLUMN status DROP DEFAULT;
ALTER TABLE applications ALTER COLUMN status TYPE text USING (CASE status::text
    WHEN 'draft' THEN 'reviewing' WHEN 'submitted' THEN 'reviewing' WHEN 'in_review' THEN 'reviewing'
    WHEN 'denied' THEN 'rejected' WHEN 'withdrawn' THEN 'rejected' ELSE status::text END);
ALTER TABLE applications ALTER COLUMN kind TYPE text USING kind::text;
DROP TYPE application_status;
DROP TYPE application_kind;
ALTER TABLE applications
    ALTER COLUMN status SET DEFAULT 'reviewing',
    ADD CONSTRAINT applications_status_known
        CHECK (status IN ('reviewing', 'action_needed', 'approved', 'rejected', 'funded')),
    ADD CONSTRAINT applications_kind_known CHECK (kind IN ('rent', 'transport', 'tech', 'other')),
    ADD CONSTRAINT applications_amount_bounded CHECK (amount_cents <= 1000000),
    -- Keyset pagination, oldest first.
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- A client's Idempotency-Key for the request that made it, with that request's SHA-256, so a
    -- repeat answers this application and a different request under the key is refused. Kept
    -- only when a key was sent; erasure clears both (the hash is of PHI).
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    ADD COLUMN request_sha256 bytea CHECK (length(request_sha256) = 32),
    -- Bumped by every change: an edit or a decision made on a version that changed meanwhile
    -- is refused, not merged.
    ADD COLUMN version integer NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX applications_idempotency ON applications (beneficiary_id, idempotency_key);
CREATE INDEX applications_queue ON applications (status, seq);
CREATE INDEX applications_caseworker ON applications (caseworker_id, seq);

-- Every status change, by the proven actor, with the note staff must give. Notes are shown to
-- the beneficiary (what to fix, why) and hold no clinical detail; erasure clears them.
CREATE TABLE application_events (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES applications (id),
    from_status     text,
    to_status       text NOT NULL,
    actor_id        uuid NOT NULL REFERENCES users (id),
    actor_role      text NOT NULL,
    -- The amount asked for after this event: an edit by the beneficiary is an event too (same
    -- status before and after), so staff see what changed between their reading and a decision.
    amount_cents    bigint NOT NULL,
    note            text CHECK (length(note) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX application_events_application ON application_events (application_id, seq);
REVOKE DELETE, TRUNCATE ON application_events FROM sw_public;
REVOKE UPDATE ON application_events FROM sw_public;
GRANT UPDATE (note) ON application_events TO sw_public;

-- Notifications: in pages (keyset on seq), linked to what they are about, and announced on the
-- `notifications` channel (the user's id only, never the text) for live delivery.
ALTER TABLE notifications
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN resource_type text,
    ADD COLUMN resource_id uuid;
CREATE INDEX notifications_user_seq ON notifications (user_id, seq);
CREATE INDEX notifications_unread ON notifications (user_id, seq) WHERE read_at IS NULL;

CREATE FUNCTION notifications_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notifications', NEW.user_id::text);
    RETURN NEW;
END $$;
CREATE TRIGGER notifications_announce AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_announce();

-- Insurance verification: the member details live in phi-vault (`details_record_id`); here, who
-- asked, where it stands, and who decided when. One request may be pending per beneficiary.
CREATE TABLE insurance_verifications (
    id              uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    beneficiary_id  uuid NOT NULL REFERENCES users (id),
    details_record_id uuid,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified', 'rejected')),
    -- How it was decided: `manual` (a caseworker), or an automated provider's name.
    provider        text NOT NULL,
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    decided_by      uuid REFERENCES users (id),
    reason          text CHECK (length(reason) <= 1000),
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE UNIQUE INDEX insurance_one_pending ON insurance_verifications (beneficiary_id) WHERE status = 'pending';
CREATE INDEX insurance_queue ON insurance_verifications (status, seq);
REVOKE DELETE, TRUNCATE ON insurance_verifications FROM sw_public;
REVOKE UPDATE ON insurance_verifications FROM sw_public;
GRANT UPDATE (status, decided_at, decided_by, reason, details_record_id) ON insurance_verifications TO sw_public;

-- A decision stands: once decided, who decided, when and what cannot change; erasure may still
-- clear the reference to the member details and the reason.
CREATE FUNCTION insurance_decision_stands() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' AND (NEW.status, NEW.decided_at, NEW.decided_by)
            IS DISTINCT FROM (OLD.status, OLD.decided_at, OLD.decided_by) THEN
        RAISE EXCEPTION 'insurance verification % was already decided', OLD.id;
    END IF;
    IF OLD.status <> 'pending' AND NEW.reason IS NOT NULL AND NEW.reason IS DISTINCT FROM OLD.reason THEN
        RAISE EXCEPTION 'insurance verification % was already decided', OLD.id;
    END IF;
    IF OLD.status <> 'pending' AND NEW.details_record_id IS NOT NULL
            AND NEW.details_record_id IS DISTINCT FROM OLD.details_record_id THEN
        RAISE EXCEPTION 'insurance verification % was already decided', OLD.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER insurance_decision_stands BEFORE UPDATE ON insurance_verifications
    FOR EACH ROW EXECUTE FUNCTION insurance_decision_stands();
