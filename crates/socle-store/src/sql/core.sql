-- Template: {core} is replaced by the core schema's name (`core` live; another name for a
-- replay or an as-of build). Idempotent.
-- The projector's working state: every fact the person events carry, shared by all ecosystems
-- and read by no API role. Personal fields stay sealed here (Avro-encoded socle.pii.Sealed
-- blocks): only the ecosystem models hold opened fields, and only those their agreement grants.
-- Each group of fields keeps the time of the event that last set it: the merge rule when several
-- operators tell the same thing is "the latest occurred_at wins, per group" (docs/agreements.md).
CREATE SCHEMA IF NOT EXISTS {core};

CREATE TABLE IF NOT EXISTS {core}.persons (
    person_id                       uuid PRIMARY KEY,
    registration_operator           text,
    registration_organisation       text,
    registration_date               date,
    registration_at                 timestamptz,
    residence_commune               text,
    residence_departement           text,
    residence_at                    timestamptz,
    identity_sealed                 bytea,
    identity_at                     timestamptz,
    contact_sealed                  bytea,
    contact_at                      timestamptz,
    situation_registration_category text,
    situation_rsa_beneficiary       boolean,
    situation_at                    timestamptz,
    health_sealed                   bytea,
    health_at                       timestamptz,
    orientation_referent_operator   text,
    orientation_pathway             text,
    orientation_at                  timestamptz,
    exit_date                       date,
    exit_destination                text,
    exit_at                         timestamptz,
    last_event_id                   uuid NOT NULL,
    last_occurred_at                timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS {core}.follows (
    follow_id    uuid PRIMARY KEY,
    person_id    uuid NOT NULL,
    organisation text NOT NULL,
    ecosystem    text NOT NULL,
    activity     text NOT NULL,
    territory    text NOT NULL,
    purpose      text NOT NULL,
    started_on   date NOT NULL,
    until        date,
    ended_on     date
);
CREATE INDEX IF NOT EXISTS follows_person ON {core}.follows (person_id);

CREATE TABLE IF NOT EXISTS {core}.prescriptions (
    prescription_id         uuid PRIMARY KEY,
    person_id               uuid NOT NULL,
    prescriber_organisation text NOT NULL,
    service_id              text NOT NULL,
    structure_id            text NOT NULL,
    structure_siret         text,
    prescribed_on           date NOT NULL,
    outcome                 text,
    outcome_on              date
);
CREATE INDEX IF NOT EXISTS prescriptions_person ON {core}.prescriptions (person_id);

-- Event ids already applied (idempotency by event id, on top of the per-partition offsets).
CREATE TABLE IF NOT EXISTS {core}.applied_events (
    event_id uuid PRIMARY KEY
);

