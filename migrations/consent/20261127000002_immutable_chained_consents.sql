-- Consents and consent forms are immutable for the runtime role; a consent names the exact
-- form text its subject signed, by hash; consents and revocations join the hash-chained
-- trails; each decision carries the hash of the consent terms it relied on.
--
-- Rows already present are kept and chained here, oldest first, with exactly the hashes the
-- service computes (common::chain::Fields: length-prefixed fields), so `secondwind-admin audit
-- verify` accepts them. Decisions made before this migration keep no terms hash.

REVOKE UPDATE, DELETE, TRUNCATE ON consents, consent_forms FROM sw_consent;

-- A form's hash is its body's SHA-256 (forms written before this check are not re-checked).
ALTER TABLE consent_forms ADD CONSTRAINT consent_forms_body_sha256
    CHECK (body_sha256 = sha256(convert_to(body, 'UTF8'))) NOT VALID;
ALTER TABLE consent_forms ADD CONSTRAINT consent_forms_version_hash UNIQUE (version, body_sha256);

CREATE FUNCTION pg_temp.f(v text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN v IS NULL THEN '-' ELSE octet_length(v)::text || ':' || v END $$;
CREATE FUNCTION pg_temp.us(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT pg_temp.f((extract(epoch FROM t) * 1000000)::bigint::text) $$;
CREATE FUNCTION pg_temp.list(a text[]) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT pg_temp.f(coalesce((SELECT string_agg(pg_temp.f(x), '' ORDER BY o)
                                     FROM unnest(a) WITH ORDINALITY AS u(x, o)), '')) $$;
CREATE FUNCTION pg_temp.link(prev bytea, canonical text) RETURNS bytea LANGUAGE sql IMMUTABLE
    AS $$ SELECT sha256('\x7365636f6e6477696e642d636861696e2d763100'::bytea || prev || convert_to(canonical, 'UTF8')) $$;

-- consents: the form's hash (checked against the form by the foreign key), the hash of the
-- terms, and the chain, in the order they were recorded.
ALTER TABLE consents ADD COLUMN seq bigint, ADD COLUMN form_sha256 bytea, ADD COLUMN terms_sha256 bytea,
    ADD COLUMN prev_hash bytea, ADD COLUMN row_hash bytea;
UPDATE consents c SET form_sha256 = f.body_sha256 FROM consent_forms f WHERE f.version = c.form_version;
UPDATE consents c SET seq = o.n
    FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM consents) o WHERE o.id = c.id;
DO $$
DECLARE
    r record;
    prev bytea := decode(repeat('00', 32), 'hex');
    terms text;
    th bytea;
    h bytea;
BEGIN
    FOR r IN SELECT * FROM consents ORDER BY seq LOOP
        terms := pg_temp.f('consent-terms-v1') || pg_temp.f(r.subject_id::text) || pg_temp.f(r.discloser)
            || pg_temp.f(r.recipient) || pg_temp.list(r.categories) || pg_temp.f(r.purpose)
            || pg_temp.us(r.expires_at) || pg_temp.f(r.expiry_event) || pg_temp.f(r.form_version)
            || pg_temp.f(encode(r.form_sha256, 'hex')) || pg_temp.f(r.signed_name) || pg_temp.us(r.signed_at);
        th := sha256(convert_to(terms, 'UTF8'));
        h := pg_temp.link(prev, pg_temp.f('consents-v1') || pg_temp.f(r.id::text) || pg_temp.f(terms)
            || pg_temp.f(encode(th, 'hex')) || pg_temp.us(r.created_at));
        UPDATE consents SET terms_sha256 = th, prev_hash = prev, row_hash = h WHERE seq = r.seq;
        prev := h;
    END LOOP;
END $$;
ALTER TABLE consents ALTER COLUMN seq SET NOT NULL, ALTER COLUMN form_sha256 SET NOT NULL,
    ALTER COLUMN terms_sha256 SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL;
ALTER TABLE consents ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('consents', 'seq'), max(seq)) FROM consents HAVING count(*) > 0;
ALTER TABLE consents ADD CONSTRAINT consents_seq_key UNIQUE (seq),
    ADD CONSTRAINT consents_form_hash FOREIGN KEY (form_version, form_sha256)
        REFERENCES consent_forms (version, body_sha256);

-- revocations: chained in the order they were recorded.
ALTER TABLE revocations ADD COLUMN seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN row_hash bytea;
UPDATE revocations v SET seq = o.n
    FROM (SELECT consent_id, row_number() OVER (ORDER BY revoked_at, consent_id) AS n FROM revocations) o
    WHERE o.consent_id = v.consent_id;
DO $$
DECLARE
    r record;
    prev bytea := decode(repeat('00', 32), 'hex');
    h bytea;
BEGIN
    FOR r IN SELECT * FROM revocations ORDER BY seq LOOP
        h := pg_temp.link(prev, pg_temp.f('revocations-v1') || pg_temp.f(r.consent_id::text)
            || pg_temp.us(r.revoked_at) || pg_temp.f(r.revoked_by) || pg_temp.f(r.reason));
        UPDATE revocations SET prev_hash = prev, row_hash = h WHERE seq = r.seq;
        prev := h;
    END LOOP;
END $$;
ALTER TABLE revocations ALTER COLUMN seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL;
ALTER TABLE revocations ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('revocations', 'seq'), max(seq)) FROM revocations HAVING count(*) > 0;
ALTER TABLE revocations ADD CONSTRAINT revocations_seq_key UNIQUE (seq);

-- decisions: the hash of the consent terms a decision relied on, covered by its chain. Required
-- whenever a consent is named (decisions made before this migration have none).
ALTER TABLE decisions ADD COLUMN terms_sha256 bytea;
ALTER TABLE decisions ADD CONSTRAINT decisions_terms CHECK (consent_id IS NULL OR terms_sha256 IS NOT NULL) NOT VALID;

DROP FUNCTION pg_temp.link(bytea, text);
DROP FUNCTION pg_temp.list(text[]);
DROP FUNCTION pg_temp.us(timestamptz);
DROP FUNCTION pg_temp.f(text);
