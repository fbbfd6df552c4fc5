-- socle-audit: the audit store, projected from the access topic (and an index of the canonical
-- person events for timelines). Rebuildable from Kafka; indexed for the auditors' questions.
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE audit.access (
    event_id          uuid PRIMARY KEY,
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL,
    request_id        text NOT NULL,
    user_id           text NOT NULL,
    organisation      text NOT NULL,
    ecosystem         text,
    purpose           text,
    auth_strength     text NOT NULL,
    action            text NOT NULL,
    resource          text NOT NULL,
    person_ids        text[] NOT NULL,
    decision          text NOT NULL,
    reason            text,
    policy_version    text,
    agreement_version text,
    kafka_partition   integer NOT NULL,
    kafka_offset      bigint NOT NULL
);
-- "everything actor Y / organisation Z did in a period"
CREATE INDEX access_user_time ON audit.access (user_id, occurred_at);
CREATE INDEX access_org_time ON audit.access (organisation, occurred_at);

-- "who accessed person X between two dates": one row per (person, access).
CREATE TABLE audit.access_person (
    person_id    text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    event_id     uuid NOT NULL,
    PRIMARY KEY (person_id, occurred_at, event_id)
);

-- Canonical person events (registration, follows, ...), for timelines: what happened to the
-- person, beside who looked at them.
CREATE TABLE audit.person_events (
    event_id        uuid PRIMARY KEY,
    person_id       text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    event_type      text NOT NULL,
    producer_organisation text NOT NULL,
    actor           text,
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL
);
CREATE INDEX person_events_person_time ON audit.person_events (person_id, occurred_at);

-- Entries withheld from a person's own journal during an investigation. The flag, its reason
-- and its author are also an access event (action audit.restrict) on the sealed trail.
CREATE TABLE audit.restrictions (
    restriction_id uuid PRIMARY KEY,
    event_id       uuid,                 -- one access event...
    user_id        text,                 -- ...or everything one actor did in [from_at, to_at)
    from_at        timestamptz,
    to_at          timestamptz,
    reason         text NOT NULL,
    author         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((event_id IS NOT NULL) <> (user_id IS NOT NULL))
);
CREATE INDEX restrictions_event ON audit.restrictions (event_id);
CREATE INDEX restrictions_user ON audit.restrictions (user_id);
