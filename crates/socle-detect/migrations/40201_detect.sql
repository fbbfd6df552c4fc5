-- socle-detect: alerts (with their evidence) and sanctions (imposed by the detector, lifted by a
-- reviewer). Both are also events on socle.alerts and socle.sanctions; these tables are what the
-- API reads on each request (through a short cache) and what reviewers query.
CREATE SCHEMA IF NOT EXISTS detect;

CREATE TABLE detect.alerts (
    alert_id     uuid PRIMARY KEY,
    subject      text NOT NULL,          -- the user, or 'org:<siret>'
    rule         text NOT NULL,
    response     text,                   -- the sanction kind it asked for, if any
    figures      jsonb NOT NULL,
    event_ids    text[] NOT NULL,
    raised_at    timestamptz NOT NULL
);
CREATE INDEX alerts_subject ON detect.alerts (subject, raised_at);

CREATE TABLE detect.sanctions (
    sanction_id  uuid PRIMARY KEY,
    user_id      text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('throttle', 'require_mfa', 'suspend')),
    reason       text NOT NULL,
    alert_id     uuid REFERENCES detect.alerts (alert_id),
    imposed_at   timestamptz NOT NULL,
    expires_at   timestamptz,            -- none: until a reviewer lifts it
    lifted_at    timestamptz,
    lifted_by    text,
    lift_reason  text
);
CREATE INDEX sanctions_active ON detect.sanctions (user_id) WHERE lifted_at IS NULL;
