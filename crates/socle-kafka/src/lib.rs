//! Kafka and Avro adapters for socle.
//!
//! - [`framing`]: the Confluent wire format, checked before anything reads it;
//! - [`codec`]: Avro encoding and decoding through a Confluent-compatible schema registry,
//!   with `TopicRecordNameStrategy` subjects so several event types share one ordered topic;
//! - [`schemas`]: socle's own contracts, compiled in from `schemas/`;
//! - [`producer`]: an idempotent, `acks=all` producer that only reports an event as sent once
//!   its delivery report says so;
//! - [`trail`]: the access trail writer (fail closed);
//! - [`admin`]: topic declarations applied to the cluster;
//! - [`tail`]: reading back the last events of a topic.

pub mod admin;
pub mod codec;
pub mod error;
pub mod framing;
pub mod pii;
pub mod producer;
pub mod schemas;
pub mod tail;
pub mod trail;

pub use codec::Codec;
pub use error::{Error, Result};
pub use producer::EventProducer;
pub use trail::AccessTrail;

use rdkafka::ClientConfig;

/// A client configuration for `brokers` with socle's common settings.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "socle")
        // Fail fast when the cluster cannot be reached at all.
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

/// Checks that the cluster answers a metadata request within `timeout`.
///
/// # Errors
/// [`Error::Kafka`] when no broker answers.
pub async fn ping(brokers: &str, timeout: std::time::Duration) -> Result<usize> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client_config(brokers).create()?;
    let metadata = tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, timeout))
        .await
        .map_err(|e| Error::Internal(format!("metadata task failed: {e}")))??;
    Ok(metadata.brokers().len())
}
