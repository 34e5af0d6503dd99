-- Credentials taken out of the raw payloads of signals stored before opsdesk stripped them on
-- the way in: ingest tokens in `routing_key`, Authorization / x-api-key / token / secret /
-- password fields, the values of name/value pairs that name one, Bearer and Basic texts.
-- The rule is opsdesk_domain::credentials written in SQL; each value becomes "<redacted>".

CREATE FUNCTION pg_temp.opsdesk_is_credential_name(name TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT n IN ('auth', 'pass', 'pwd')
        OR n LIKE ANY (ARRAY['%password%', '%passwd%', '%passphrase%', '%secret%', '%token%',
                             '%apikey%', '%routingkey%', '%integrationkey%', '%servicekey%',
                             '%authorization%', '%credential%', '%privatekey%', '%sessionkey%',
                             '%signingkey%', '%cookie%'])
    FROM (SELECT lower(translate(name, '-_. ', '')) AS n) AS normalised
$$;

CREATE FUNCTION pg_temp.opsdesk_strip_credentials(v JSONB) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    out JSONB;
    k TEXT;
    e JSONB;
    pair_holds_credential BOOLEAN;
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'object' THEN
        pair_holds_credential := coalesce(pg_temp.opsdesk_is_credential_name(coalesce(
            v ->> 'name', v ->> 'Name', v ->> 'key', v ->> 'Key')), false);
        out := '{}'::jsonb;
        FOR k, e IN SELECT key, value FROM jsonb_each(v) LOOP
            IF jsonb_typeof(e) <> 'null' AND (pg_temp.opsdesk_is_credential_name(k)
                    OR (pair_holds_credential AND k IN ('value', 'Value'))) THEN
                out := out || jsonb_build_object(k, '<redacted>');
            ELSE
                out := out || jsonb_build_object(k, pg_temp.opsdesk_strip_credentials(e));
            END IF;
        END LOOP;
        RETURN out;
    WHEN 'array' THEN
        SELECT coalesce(jsonb_agg(pg_temp.opsdesk_strip_credentials(x) ORDER BY i), '[]'::jsonb)
        INTO out FROM jsonb_array_elements(v) WITH ORDINALITY AS a(x, i);
        RETURN out;
    WHEN 'string' THEN
        IF lower(v #>> '{}') LIKE 'bearer %' OR lower(v #>> '{}') LIKE 'basic %' THEN
            RETURN to_jsonb('<redacted>'::text);
        END IF;
        RETURN v;
    ELSE
        RETURN v;
    END CASE;
END
$$;

-- The payload without its credentials, or NULL when it holds none (it is then left as it
-- is, byte for byte). A payload PostgreSQL cannot read as JSON (a \u0000 in a string) is
-- replaced whole when it may hold a credential.
CREATE FUNCTION pg_temp.opsdesk_scrubbed(raw TEXT) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    before JSONB;
    after JSONB;
BEGIN
    BEGIN
        before := raw::jsonb;
    EXCEPTION WHEN others THEN
        RETURN to_jsonb('<redacted>'::text)::text;
    END;
    after := pg_temp.opsdesk_strip_credentials(before);
    IF after = before THEN
        RETURN NULL;
    END IF;
    RETURN after::text;
END
$$;

UPDATE signals SET raw = c.scrubbed
FROM (
    SELECT id, pg_temp.opsdesk_scrubbed(raw) AS scrubbed FROM signals
    WHERE raw ILIKE ANY (ARRAY['%pass%', '%pwd%', '%secret%', '%token%', '%key%', '%auth%',
                               '%credential%', '%cookie%', '%bearer %', '%basic %'])
) AS c
WHERE c.id = signals.id AND c.scrubbed IS NOT NULL;

DROP FUNCTION pg_temp.opsdesk_scrubbed(TEXT);
DROP FUNCTION pg_temp.opsdesk_strip_credentials(JSONB);
DROP FUNCTION pg_temp.opsdesk_is_credential_name(TEXT);
