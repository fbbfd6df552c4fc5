-- Which agreement version each ecosystem model was built with. The core and ecosystem schemas
-- themselves are created by the projector (src/sql/core.sql and the agreements), because a
-- replay or an as-of build creates the same tables under other schema names.
CREATE TABLE projector.models (
    schema_name       text PRIMARY KEY,
    ecosystem         text NOT NULL,
    agreement_version text NOT NULL,
    columns           text[] NOT NULL,
    built_at          timestamptz NOT NULL DEFAULT now()
);
