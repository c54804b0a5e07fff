-- A refresh retried by the client that made it, within a short leeway (a lost answer, two tabs
-- at once), gets the token its first try was given instead of revoking the session as reuse.
-- `successor_sealed` is that token, sealed under a key derived from this (exchanged) token,
-- which the table does not hold: only whoever presents this token can open it. `rotated_by` is
-- the SHA-256 of the exchanging client's address and user agent.
ALTER TABLE refresh_tokens
    ADD COLUMN successor_sealed bytea,
    ADD COLUMN rotated_by bytea CHECK (octet_length(rotated_by) = 32);
