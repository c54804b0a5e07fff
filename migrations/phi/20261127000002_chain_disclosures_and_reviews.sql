-- The accounting of disclosures and the compliance reviews join the hash-chained trails.
-- Rows already present are kept and chained here, oldest first, with exactly the hashes the
-- service computes (common::chain::Fields: length-prefixed fields), so `secondwind-admin audit
-- verify` accepts them. From now on phi-vault chains every new row as it appends it.

CREATE FUNCTION pg_temp.f(v text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN v IS NULL THEN '-' ELSE octet_length(v)::text || ':' || v END $$;
CREATE FUNCTION pg_temp.us(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT pg_temp.f((extract(epoch FROM t) * 1000000)::bigint::text) $$;
CREATE FUNCTION pg_temp.link(prev bytea, canonical text) RETURNS bytea LANGUAGE sql IMMUTABLE
    AS $$ SELECT sha256('\x7365636f6e6477696e642d636861696e2d763100'::bytea || prev || convert_to(canonical, 'UTF8')) $$;

-- disclosures: chained in the order they were made.
ALTER TABLE disclosures ADD COLUMN seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN row_hash bytea;
UPDATE disclosures d SET seq = o.n
    FROM (SELECT id, row_number() OVER (ORDER BY disclosed_at, id) AS n FROM disclosures) o WHERE o.id = d.id;
DO $$
DECLARE
    r record;
    prev bytea := decode(repeat('00', 32), 'hex');
    h bytea;
BEGIN
    FOR r IN SELECT * FROM disclosures ORDER BY seq LOOP
        h := pg_temp.link(prev, pg_temp.f('disclosures-v1') || pg_temp.f(r.id::text) || pg_temp.us(r.disclosed_at)
            || pg_temp.f(r.subject_id::text) || pg_temp.f(r.recipient) || pg_temp.f(r.purpose)
            || pg_temp.f(coalesce((SELECT string_agg(pg_temp.f(c::text), '' ORDER BY o)
                                   FROM unnest(r.categories) WITH ORDINALITY AS u(c, o)), ''))
            || pg_temp.f(r.consent_id::text) || pg_temp.f(r.notice_version) || pg_temp.f(r.request_id));
        UPDATE disclosures SET prev_hash = prev, row_hash = h WHERE seq = r.seq;
        prev := h;
    END LOOP;
END $$;
ALTER TABLE disclosures ALTER COLUMN seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL;
ALTER TABLE disclosures ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('disclosures', 'seq'), max(seq)) FROM disclosures HAVING count(*) > 0;
ALTER TABLE disclosures ADD CONSTRAINT disclosures_seq_key UNIQUE (seq);

-- access_reviews: `seq` names the access-log entry reviewed; the chain runs on `chain_seq`.
ALTER TABLE access_reviews ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash bytea, ADD COLUMN row_hash bytea;
UPDATE access_reviews v SET chain_seq = o.n
    FROM (SELECT seq, row_number() OVER (ORDER BY reviewed_at, seq) AS n FROM access_reviews) o WHERE o.seq = v.seq;
DO $$
DECLARE
    r record;
    prev bytea := decode(repeat('00', 32), 'hex');
    h bytea;
BEGIN
    FOR r IN SELECT * FROM access_reviews ORDER BY chain_seq LOOP
        h := pg_temp.link(prev, pg_temp.f('access_reviews-v1') || pg_temp.f(r.seq::text) || pg_temp.f(r.outcome)
            || pg_temp.f(r.note) || pg_temp.f(r.reviewed_by) || pg_temp.us(r.reviewed_at));
        UPDATE access_reviews SET prev_hash = prev, row_hash = h WHERE chain_seq = r.chain_seq;
        prev := h;
    END LOOP;
END $$;
ALTER TABLE access_reviews ALTER COLUMN chain_seq SET NOT NULL, ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL;
ALTER TABLE access_reviews ALTER COLUMN chain_seq ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('access_reviews', 'chain_seq'), max(chain_seq)) FROM access_reviews
    HAVING count(*) > 0;
ALTER TABLE access_reviews ADD CONSTRAINT access_reviews_chain_seq_key UNIQUE (chain_seq);

DROP FUNCTION pg_temp.link(bytea, text);
DROP FUNCTION pg_temp.us(timestamptz);
DROP FUNCTION pg_temp.f(text);
