-- Compliance review of flagged (break-glass) accesses. A review is final: append-only, one per
-- access-log entry.
CREATE TABLE access_reviews (
    seq             bigint PRIMARY KEY REFERENCES access_log (seq),
    outcome         text NOT NULL CHECK (outcome IN ('justified', 'unjustified')),
    note            text NOT NULL,
    reviewed_by     text NOT NULL,
    reviewed_at     timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE, TRUNCATE ON access_reviews FROM sw_phi;
