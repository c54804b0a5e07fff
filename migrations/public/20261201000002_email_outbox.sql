-- Email about notifications (public-api's `mail` module): a transactional outbox, written with
-- the notification it announces and sent later by a worker, never inside a request. A row holds
-- no address and no content: the address is read when it is sent, the text is fixed.
CREATE TABLE email_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempts        integer NOT NULL DEFAULT 0,
    -- Also the lease of a claimed row: a sender that died leaves it to be taken again then.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    given_up_at     timestamptz,
    -- The kind and code of the last failure, never an address.
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE sent_at IS NULL AND given_up_at IS NULL;

-- What a person wants to hear by email. No row: email on.
CREATE TABLE notification_preferences (
    user_id         uuid PRIMARY KEY REFERENCES users (id),
    email           boolean NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
