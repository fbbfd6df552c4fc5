//! Errors of the contracts crate, each saying whose fault it is: a mapping file or contract
//! to fix (the user's), a registry or Kafka that does not answer (retry later), or a
//! registry that refuses a contract (409: the change breaks compatibility).

/// Every way applying contracts or publishing registry events can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The subjects file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    /// The subjects file is well-formed but wrong (unknown schema, duplicate, bad topic...).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A schema file is not a valid Avro record.
    #[error("{path}: not a valid Avro record schema: {message}")]
    Avro { path: String, message: String },
    /// The registry refused a contract change as incompatible (HTTP 409).
    #[error(
        "subject {subject}: the registry refused the contract in {path} as incompatible: {message}"
    )]
    Incompatible {
        subject: String,
        path: String,
        message: String,
    },
    /// The registry answered with another error.
    #[error("subject {subject}: the registry answered {status} (error code {code}): {message}")]
    Registry {
        subject: String,
        status: u16,
        code: i64,
        message: String,
    },
    /// The registry cannot be reached, or its answer cannot be read.
    #[error("schema registry at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    /// The registry's own store failed (in-process registration, outbox).
    #[error("registry store: {0}")]
    Store(#[from] socle_registry::Error),
    /// Encoding or publishing an event failed.
    #[error("publishing a registry event: {0}")]
    Kafka(#[from] socle_kafka::Error),
    /// An outbox record that cannot become an event (corrupt row).
    #[error("registry event {seq}: {message}")]
    BadRecord { seq: i64, message: String },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
