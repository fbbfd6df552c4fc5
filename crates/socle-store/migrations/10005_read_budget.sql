-- The API's hard read budget (docs/api.md "Read budget"): the last time each actor was shown
-- each person. Shared by every API instance; the distinct people an actor was shown in the
-- sliding window are the rows younger than the window.
CREATE SCHEMA IF NOT EXISTS api;
CREATE TABLE IF NOT EXISTS api.disclosures (
    actor text NOT NULL,
    person_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, person_id)
);
CREATE INDEX IF NOT EXISTS disclosures_actor_at ON api.disclosures (actor, at);
