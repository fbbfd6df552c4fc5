-- socle-seal: the chain state per sealed partition and the signed checkpoints.
-- The chain state is the sealer's consumer offset: it is written in the same transaction as the
-- checkpoint that advances it, so a crash never seals an entry twice nor skips one.
CREATE SCHEMA IF NOT EXISTS seal;

CREATE TABLE seal.chain (
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint  NOT NULL,
    head_hash    bytea   NOT NULL,
    chained      bigint  NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

CREATE TABLE seal.checkpoints (
    topic         text    NOT NULL,
    partition     integer NOT NULL,
    first_offset  bigint  NOT NULL,
    last_offset   bigint  NOT NULL,
    count         bigint  NOT NULL,
    chained       bigint  NOT NULL,
    prev_hash     bytea   NOT NULL,
    hash          bytea   NOT NULL,
    sealed_at     timestamptz NOT NULL,
    sealed_at_us  bigint  NOT NULL,
    offsets       bigint[] NOT NULL,
    leaves        bytea   NOT NULL,
    key_id        text    NOT NULL,
    signature     bytea   NOT NULL,
    -- Set once the checkpoint is on the seal topic; unpublished ones are republished at start.
    published_at  timestamptz,
    PRIMARY KEY (topic, partition, last_offset)
);

CREATE INDEX checkpoints_unpublished ON seal.checkpoints (topic, partition) WHERE published_at IS NULL;
