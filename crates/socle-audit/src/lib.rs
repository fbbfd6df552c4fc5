//! The audit store: what auditors, DPOs and fraud investigators ask of the trail, answered from
//! PostgreSQL in well under a second on tens of millions of entries, instead of by scanning Kafka.
//!
//! - [`project`]: the access topic (and the canonical person topics, for timelines) projected
//!   into the `audit` schema, idempotently by event id;
//! - [`freshness`]: how far the store is behind the trail, measured for every answer; past a
//!   bound the answer is refused (`audit.store_behind`) instead of an empty success;
//! - [`queries`]: who accessed a person, what an actor or organisation did, a person's timeline,
//!   a person's own journal (without entries restricted for an investigation), restrictions;
//! - [`replay`]: an access decision re-evaluated with the grants in force at its instant;
//! - [`http`]: the same questions as an axum router for the auditor role, every query itself
//!   appended to the access trail before the answer leaves.
//!
//! The store is derived: the trail on Kafka (sealed, see socle-seal) is the system of record.

pub mod freshness;
pub mod http;
pub mod project;
pub mod queries;
pub mod replay;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the audit store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] socle_kafka::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    BadRequest(String),
    #[error("internal: {0}")]
    Internal(String),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// This crate's migrations, for `socle migrate` and the start-up check of the components.
#[must_use]
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Applies this crate's migrations (`audit` schema, versions from 40101; others left alone).
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
