-- Break-glass accesses are flagged for compliance review. Rows written before this column
-- existed were never break-glass, hence the default; the hash chain covers the flag.
ALTER TABLE access_log ADD COLUMN flagged boolean NOT NULL DEFAULT false;
CREATE INDEX access_log_flagged ON access_log (seq) WHERE flagged;
CREATE INDEX access_log_subject ON access_log (subject_id, seq);
