-- Who each follow belongs to, as `socle ingest` accepted it (issue 11: follows belong to a
-- person and an organisation). Ingest claims a new follow id here while it decides a batch,
-- before the batch's Kafka transaction (as it creates the persons' keys), so that the
-- FollowEnded of a follow started in an earlier batch is judged by any instance even before the
-- projector has applied the start, and so that two instances cannot both take one id. Rows are
-- never updated: a follow id is never reassigned. Read by no API role.
CREATE SCHEMA IF NOT EXISTS ingest;
CREATE TABLE IF NOT EXISTS ingest.follows (
    follow_id    uuid PRIMARY KEY,
    person_id    uuid NOT NULL,
    organisation text NOT NULL,
    ecosystem    text NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now()
);
