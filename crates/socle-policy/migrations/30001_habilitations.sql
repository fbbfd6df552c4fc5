-- Habilitations, as replayed from the socle.habilitations topic (the system of record).
-- A grant and its revocation are kept as two facts, never updated in place, so that
-- "was this user allowed to do this at time T?" is a query on these rows.
CREATE SCHEMA IF NOT EXISTS habilitations;

CREATE TABLE habilitations.grants (
    grant_id     uuid PRIMARY KEY,
    user_id      text NOT NULL,
    organisation text NOT NULL,
    ecosystem    text NOT NULL,
    actions      text[] NOT NULL,
    territories  text[] NOT NULL,
    activities   text[] NOT NULL,
    purpose      text NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_until  timestamptz NOT NULL,
    requires_mfa boolean NOT NULL,
    granted_by   text NOT NULL,
    event_id     uuid NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_until > valid_from)
);
CREATE INDEX grants_by_user ON habilitations.grants (user_id, organisation, ecosystem);

-- A revocation may be read before its grant (it names the grant id): kept on its own.
CREATE TABLE habilitations.revocations (
    grant_id     uuid PRIMARY KEY,
    user_id      text NOT NULL,
    organisation text NOT NULL,
    effective_at timestamptz NOT NULL,
    revoked_by   text NOT NULL,
    reason_code  text,
    event_id     uuid NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- Where the consumer is in the topic, written in the same transaction as the rows.
CREATE TABLE habilitations.offsets (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
