-- Every policy version the API ever decided with, with its exact texts, so that a decision can
-- be replayed under the rules in force at the time (docs/audit.md, decision replay).
CREATE TABLE IF NOT EXISTS habilitations.policy_texts (
    version    text PRIMARY KEY,
    texts      jsonb NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);
