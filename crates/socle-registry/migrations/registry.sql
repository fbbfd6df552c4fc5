-- The registry's state, in its own PostgreSQL schema. Idempotent: run by
-- Registry::new at every start, under an advisory lock.

CREATE SCHEMA IF NOT EXISTS registry;

-- One row per distinct schema (type + canonical form + references): its global id.
CREATE TABLE IF NOT EXISTS registry.schemas (
    id              integer     PRIMARY KEY,
    schema_type     text        NOT NULL,
    schema_text     text        NOT NULL,
    canonical       text        NOT NULL,
    references_json jsonb       NOT NULL DEFAULT '[]'::jsonb,
    fingerprint     text        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Subject versions; soft-deleted ones stay until a permanent delete.
CREATE TABLE IF NOT EXISTS registry.versions (
    subject       text        NOT NULL,
    version       integer     NOT NULL CHECK (version > 0),
    schema_id     integer     NOT NULL REFERENCES registry.schemas (id),
    deleted       boolean     NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS versions_schema_id ON registry.versions (schema_id);

-- Compatibility level: subject '' is the global level.
CREATE TABLE IF NOT EXISTS registry.config (
    subject       text PRIMARY KEY,
    compatibility text NOT NULL
);

-- Mode: subject '' is the global mode.
CREATE TABLE IF NOT EXISTS registry.modes (
    subject text PRIMARY KEY,
    mode    text NOT NULL
);

-- Registration events (transactional outbox): one row per registration, deletion and
-- compatibility change, inserted in the same transaction as the change when events are
-- enabled, then published to Kafka in `seq` order by a relay, which sets `published_at`.
-- Writes hold the registry's write lock until they commit, so `seq` order is commit order.
CREATE TABLE IF NOT EXISTS registry.events (
    seq          bigserial   PRIMARY KEY,
    record       jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS events_pending ON registry.events (seq) WHERE published_at IS NULL;
