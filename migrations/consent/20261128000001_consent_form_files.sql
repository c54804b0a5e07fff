-- Consent forms come from versioned files (policies/consent-forms/): each row also keeps the
-- form's title, the kind of recipient its consents name, and its publication date, as the file's
-- metadata gives them. Forms recorded before this migration keep NULL there.
ALTER TABLE consent_forms
    ADD COLUMN title text,
    ADD COLUMN recipient_kind text CHECK (recipient_kind IN ('named', 'tpo')),
    ADD COLUMN published_on date;
