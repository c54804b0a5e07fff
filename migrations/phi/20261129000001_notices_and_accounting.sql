-- The redisclosure notices sent with disclosures (42 CFR §2.32), by version, with the hash of
-- the exact text; and what the accounting of disclosures needs beyond what it held: the
-- recipient's name as the consent service knew it, and medical emergencies (§2.51), disclosed
-- without consent, with the nature of the emergency.
CREATE TABLE notices (
    version         text PRIMARY KEY,
    body            text NOT NULL,
    body_sha256     bytea NOT NULL CHECK (body_sha256 = sha256(convert_to(body, 'UTF8'))),
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE, TRUNCATE ON notices FROM sw_phi;

-- disclosures-v2 rows name a recorded notice, the recipient's name, the kind of disclosure and,
-- for an emergency, its nature. Rows written before keep disclosures-v1 (their notice version
-- is the consent form's, which is what they recorded).
ALTER TABLE disclosures
    ADD COLUMN format text NOT NULL DEFAULT 'disclosures-v1' CHECK (format IN ('disclosures-v1', 'disclosures-v2')),
    ADD COLUMN recipient_name text,
    ADD COLUMN kind text NOT NULL DEFAULT 'consent' CHECK (kind IN ('consent', 'medical_emergency')),
    ADD COLUMN emergency text,
    ADD CONSTRAINT disclosures_kind CHECK (
        format = 'disclosures-v1'
        OR (kind = 'consent' AND consent_id IS NOT NULL AND emergency IS NULL)
        OR (kind = 'medical_emergency' AND consent_id IS NULL AND emergency IS NOT NULL AND recipient_name IS NOT NULL)),
    -- A disclosures-v1 row's hash covers none of the new columns: they keep their defaults.
    ADD CONSTRAINT disclosures_v1_bare CHECK (
        format = 'disclosures-v2' OR (recipient_name IS NULL AND kind = 'consent' AND emergency IS NULL));
ALTER TABLE disclosures ADD CONSTRAINT disclosures_notice FOREIGN KEY (notice_version) REFERENCES notices (version)
    NOT VALID;
CREATE INDEX disclosures_subject_seq ON disclosures (subject_id, seq);
