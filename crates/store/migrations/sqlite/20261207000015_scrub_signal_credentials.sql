-- Credentials taken out of the raw payloads of signals stored before opsdesk stripped them on
-- the way in: ingest tokens in `routing_key`, Authorization / x-api-key / token / secret /
-- password fields, the values of name/value pairs that name one, Bearer and Basic texts.
-- The rule is opsdesk_domain::credentials written in SQL; each value becomes "<redacted>".

-- Every credential in a payload, in document order (a parent before what it holds).
CREATE TEMP TABLE scrub_hit AS
WITH
credential_part(part) AS (
    VALUES ('password'), ('passwd'), ('passphrase'), ('secret'), ('token'), ('apikey'),
           ('routingkey'), ('integrationkey'), ('servicekey'), ('authorization'),
           ('credential'), ('privatekey'), ('sessionkey'), ('signingkey'), ('cookie')
),
candidate(id, raw) AS (
    SELECT id, raw FROM signals
    WHERE json_valid(raw)
      AND (raw LIKE '%pass%' OR raw LIKE '%pwd%' OR raw LIKE '%secret%' OR raw LIKE '%token%'
           OR raw LIKE '%key%' OR raw LIKE '%auth%' OR raw LIKE '%credential%'
           OR raw LIKE '%cookie%' OR raw LIKE '%bearer %' OR raw LIKE '%basic %')
),
node(id, raw, tree_id, path, type, atom, name, pair_name) AS (
    SELECT s.id, s.raw, t.id, t.fullkey, t.type, t.atom,
           CASE WHEN typeof(t.key) = 'text' THEN
               lower(replace(replace(replace(replace(t.key, '-', ''), '_', ''), '.', ''), ' ', ''))
           END,
           CASE WHEN t.key IN ('value', 'Value') THEN
               lower(replace(replace(replace(replace(coalesce(
                   json_extract(s.raw, t.path || '.name'), json_extract(s.raw, t.path || '.Name'),
                   json_extract(s.raw, t.path || '.key'), json_extract(s.raw, t.path || '.Key')),
               '-', ''), '_', ''), '.', ''), ' ', ''))
           END
    FROM candidate AS s, json_tree(s.raw) AS t
)
SELECT id AS signal_id, row_number() OVER (PARTITION BY id ORDER BY tree_id) AS n, path
FROM node
WHERE type <> 'null'
  AND (
    name IN ('auth', 'pass', 'pwd')
    OR EXISTS (SELECT 1 FROM credential_part WHERE instr(node.name, part) > 0)
    OR pair_name IN ('auth', 'pass', 'pwd')
    OR EXISTS (SELECT 1 FROM credential_part WHERE instr(node.pair_name, part) > 0)
    OR (type = 'text' AND (lower(atom) LIKE 'bearer %' OR lower(atom) LIKE 'basic %'))
  );
CREATE INDEX temp.scrub_hit_step ON scrub_hit (signal_id, n);

-- Each payload with its credentials replaced one after the other (a path under one already
-- replaced is gone, and json_replace then leaves the payload as it is).
UPDATE signals SET raw = (
    WITH RECURSIVE scrubbed(n, raw) AS (
        SELECT 0, signals.raw
        UNION ALL
        SELECT c.n + 1, json_replace(c.raw, h.path, '<redacted>')
        FROM scrubbed AS c JOIN scrub_hit AS h ON h.signal_id = signals.id AND h.n = c.n + 1
    )
    SELECT raw FROM scrubbed ORDER BY n DESC LIMIT 1
)
WHERE id IN (SELECT signal_id FROM scrub_hit);

DROP TABLE scrub_hit;
