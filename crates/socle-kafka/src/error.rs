//! Errors of the Kafka and Avro adapters, tagged with whose fault they are.

use crate::framing::FrameError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the adapters can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("message frame: {0}")]
    Frame(#[from] FrameError),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("avro: {0}")]
    Avro(String),
    #[error("schema unknown to the registry: {0}")]
    UnknownSchema(String),
    #[error("event of type {found} where {expected} was expected")]
    UnexpectedType { expected: String, found: String },
    #[error("personal data: {0}")]
    Pii(#[from] socle_domain::PiiError),
    #[error("topics file: {0}")]
    Topics(String),
    #[error("delivery not confirmed within {0:?}")]
    DeliveryTimeout(std::time::Duration),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// Whether the message itself is at fault, so retrying it can never succeed: such a
    /// message goes to a dead-letter place instead of stalling its partition.
    pub fn is_poison(&self) -> bool {
        matches!(
            self,
            Error::Frame(_)
                | Error::Avro(_)
                | Error::UnknownSchema(_)
                | Error::UnexpectedType { .. }
                | Error::Pii(_)
        )
    }
}

impl From<apache_avro::Error> for Error {
    fn from(e: apache_avro::Error) -> Self {
        Error::Avro(e.to_string())
    }
}
