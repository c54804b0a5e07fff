-- Documents attached to applications. The id is also the document's phi-vault record id; its
-- name, type, size and hash are PHI metadata kept there. The state keeps the two databases in
-- step without a transaction spanning both (public-api's `documents` module): `uploading` until
-- phi-vault accepted it, `stored`, `deleting` until phi-vault deleted it.
CREATE TABLE application_documents (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES applications (id),
    beneficiary_id  uuid NOT NULL REFERENCES users (id),
    state           text NOT NULL DEFAULT 'uploading' CHECK (state IN ('uploading', 'stored', 'deleting')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX application_documents_application ON application_documents (application_id, created_at);
