-- Documents (phi-vault's `documents` module): the content is sealed in pieces under the
-- subject's data key; the metadata (name, type, size, SHA-256, pieces) is the sealed content of a
-- `records` row of category `document`. The first schema's `documents` table was never written.
DROP TABLE documents;

-- Pieces are staged under a `document_contents` row with no record until the document is
-- accepted (whole, of an accepted type, clean, sealed); nothing reads a staged document, and the
-- sweep deletes those never accepted. Deleting the record deletes the content.
CREATE TABLE document_contents (
    id          uuid PRIMARY KEY,
    subject_id  uuid NOT NULL REFERENCES subjects (id),
    record_id   uuid UNIQUE REFERENCES records (id) ON DELETE CASCADE,
    created_by  text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (record_id IS NULL OR record_id = id)
);
CREATE INDEX document_contents_staged ON document_contents (started_at) WHERE record_id IS NULL;

CREATE TABLE document_chunks (
    content_id  uuid NOT NULL REFERENCES document_contents (id) ON DELETE CASCADE,
    seq         integer NOT NULL CHECK (seq >= 0),
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    PRIMARY KEY (content_id, seq)
);
