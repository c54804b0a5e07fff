-- Signed checkpoints of hash-chained trails (common::checkpoint): this service's own, which
-- this table numbers, and the ones its peers anchor here. Append-only for the runtime role.
CREATE TABLE checkpoints (
    origin          text NOT NULL,
    trail           text NOT NULL,
    number          bigint NOT NULL CHECK (number > 0),
    seq             bigint NOT NULL CHECK (seq > 0),
    head_hash       bytea NOT NULL CHECK (octet_length(head_hash) = 32),
    published_at    timestamptz NOT NULL,
    signature       bytea NOT NULL CHECK (octet_length(signature) = 64),
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, trail, number)
);
REVOKE UPDATE, DELETE, TRUNCATE ON checkpoints FROM sw_public;

-- Which of this service's checkpoints reached which receiver; the rest are sent again.
CREATE TABLE checkpoint_deliveries (
    trail           text NOT NULL,
    number          bigint NOT NULL,
    receiver        text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('stored', 'refused')),
    delivered_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trail, number, receiver)
);
REVOKE UPDATE, DELETE, TRUNCATE ON checkpoint_deliveries FROM sw_public;
