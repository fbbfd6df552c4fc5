-- socle-audit: where the audit store stands on each partition it projects, written in the same
-- transaction as the rows it covers. The auditors' queries compare it with the end of the trail
-- (the last stable offset) and refuse to answer from a store that lags too far behind.
CREATE TABLE audit.positions (
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint NOT NULL,       -- the offset after the last entry projected
    last_entry_at   timestamptz NOT NULL,  -- Kafka timestamp of that entry
    projected_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);
