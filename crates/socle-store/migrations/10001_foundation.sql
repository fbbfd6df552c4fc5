-- Per-person data keys (crypto-shredding): erasing a key makes that person's sealed fields
-- unreadable everywhere. The key column is nulled on erasure; the row stays as evidence.
CREATE SCHEMA IF NOT EXISTS keys;
CREATE TABLE keys.person_keys (
    person_id  uuid PRIMARY KEY,
    key_id     text NOT NULL UNIQUE,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL)),
    CHECK (key IS NULL OR length(key) = 32)
);

-- Projector bookkeeping: the next offset to apply per consumer and partition, written in the
-- same transaction as the rows (exactly-once), and what could not be applied, with its reason.
CREATE SCHEMA IF NOT EXISTS projector;
CREATE TABLE projector.offsets (
    consumer    text   NOT NULL,
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
CREATE TABLE projector.rejected (
    consumer    text   NOT NULL,
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    "offset"    bigint NOT NULL,
    reason_code text   NOT NULL,
    reason      text   NOT NULL,
    payload     bytea,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition, "offset")
);

-- The first read model: registered persons with their identity.
CREATE SCHEMA IF NOT EXISTS readmodel;
CREATE TABLE readmodel.persons (
    person_id                uuid PRIMARY KEY,
    operator                 text NOT NULL,
    registering_organisation text NOT NULL,
    registered_on            date NOT NULL,
    commune                  text NOT NULL,
    departement              text NOT NULL,
    nir                      text,
    family_name              text NOT NULL,
    given_name               text NOT NULL,
    birth_date               date NOT NULL,
    email                    text,
    phone                    text,
    last_event_id            uuid NOT NULL,
    occurred_at              timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
