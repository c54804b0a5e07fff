-- The decision log is read by compliance officers, filtered by beneficiary, by recipient, or by
-- the user a question was asked for, and paged by sequence number. Without these, a narrow
-- filter scans the whole log on every page, in the service every disclosure waits on.
CREATE INDEX decisions_subject_seq ON decisions (subject_id, seq);
CREATE INDEX decisions_recipient_seq ON decisions (recipient, seq);
