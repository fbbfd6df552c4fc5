-- The keys of a batch of persons, created for those who have none (one round trip per batch).
-- $1: person ids, $2: fresh key ids, $3: fresh keys (32 bytes), index-aligned.
-- A person whose key was erased (crypto-shredding) comes back with key NULL: ingestion refuses
-- to seal new personal data for them.
WITH fresh AS (
    INSERT INTO keys.person_keys (person_id, key_id, key)
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bytea[])
    ON CONFLICT (person_id) DO NOTHING
    RETURNING person_id, key_id, key
)
SELECT person_id, key_id, key FROM fresh
UNION ALL
SELECT k.person_id, k.key_id, k.key FROM keys.person_keys k
WHERE k.person_id = ANY($1::uuid[]) AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.person_id = k.person_id)
