//! Habilitations and access decisions.
//!
//! In 2024 advisors could reach people they did not follow because habilitations were broad,
//! implicit and could not be audited. Here a habilitation is a grant with an expiry, published as
//! an event on `socle.habilitations` ([`grants`]), replayed into PostgreSQL by [`consumer`], and
//! queried *at a time T* — so the question "was this access allowed when it happened?" has an
//! answer that can be recomputed from the log.
//!
//! Decisions are made by `cedar-policy` ([`engine`]) from the policies in `policies/*.cedar`,
//! whose version (declared in the file, plus a hash of the text) goes into every access event.

pub mod consumer;
pub mod engine;
pub mod grants;

pub use engine::{Decision, Engine, Facts};
pub use grants::{Grant, HabilitationGranted, HabilitationRevoked};

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Kafka(#[from] socle_kafka::Error),
    #[error("kafka: {0}")]
    Consumer(#[from] rdkafka::error::KafkaError),
    #[error("policy {file}: {message}")]
    Policy { file: String, message: String },
    #[error("policy evaluation: {0}")]
    Evaluation(String),
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// This crate's migrations, for `socle migrate` and the start-up check of the components.
#[must_use]
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Applies this crate's migrations (versions from 30000; the other crates' are left alone).
///
/// # Errors
/// [`Error::Migration`].
pub async fn migrate(pool: &sqlx::PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}
