-- One statement for a whole batch; the caller keeps one row per person (the latest in log order).
-- An older event never overwrites a newer state (replays and late duplicates are harmless).
INSERT INTO readmodel.persons AS p (
    person_id, operator, registering_organisation, registered_on, commune, departement,
    nir, family_name, given_name, birth_date, email, phone, last_event_id, occurred_at)
SELECT * FROM UNNEST(
    $1::uuid[], $2::text[], $3::text[], $4::date[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::date[], $11::text[], $12::text[], $13::uuid[],
    $14::timestamptz[])
ON CONFLICT (person_id) DO UPDATE SET
    operator = EXCLUDED.operator,
    registering_organisation = EXCLUDED.registering_organisation,
    registered_on = EXCLUDED.registered_on,
    commune = EXCLUDED.commune,
    departement = EXCLUDED.departement,
    nir = EXCLUDED.nir,
    family_name = EXCLUDED.family_name,
    given_name = EXCLUDED.given_name,
    birth_date = EXCLUDED.birth_date,
    email = EXCLUDED.email,
    phone = EXCLUDED.phone,
    last_event_id = EXCLUDED.last_event_id,
    occurred_at = EXCLUDED.occurred_at,
    updated_at = now()
WHERE p.occurred_at <= EXCLUDED.occurred_at
