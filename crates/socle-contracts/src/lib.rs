//! socle-contracts: socle's schemas as contracts with the registry.
//!
//! Two things operators' systems rely on and that neither the registry (generic, any
//! Confluent client may use it) nor the Kafka adapters (encode what they are given) own:
//!
//! - [`subjects`]: which contract goes on which topic (`schemas/subjects.toml`), registered
//!   under its `TopicRecordNameStrategy` subject with `BACKWARD_TRANSITIVE` compatibility by
//!   `socle admin schemas apply`, idempotently, refusing a contract change that would break
//!   a replay from the first event;
//! - [`events`]: the registry's own changes (registrations, deletions, compatibility changes)
//!   published as Avro events on `socle.schemas`, from the registry's transactional outbox,
//!   in order, retried until Kafka takes them, never dropped.
//!
//! See `docs/registry.md`.

pub mod error;
pub mod events;
mod metrics;
pub mod subjects;

pub use error::{Error, Result};
