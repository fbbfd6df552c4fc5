//! Bulk-extraction detection with a response (DESIGN.md §4): the 2024 attack read millions of
//! records through a few advisor accounts, and nothing noticed for months. Here the access
//! trail is watched as it is written, per actor and per organisation, and an actor reading far
//! more people than any advisor does is suspended within seconds, automatically.
//!
//! - [`rules`]: the thresholds (configurable);
//! - [`detector`]: the sliding windows and rules, pure, on the events' own time;
//! - [`runner`]: `socle detect` on the access topic, alerts and sanctions to PostgreSQL and
//!   to the alerts and sanctions topics; `lift` for reviewers;
//! - [`guard`]: the per-request check the API makes (cached, fail closed);
//! - [`simulate`]: a day of normal advisor work and the 2024 pattern, for tests and benchmarks.

pub mod detector;
pub mod events;
pub mod guard;
pub mod rules;
pub mod runner;
pub mod simulate;
pub mod store;

pub use detector::{Alert, Detector, Observation, SanctionKind, UNAUTHENTICATED_ORGANISATION};
pub use guard::{SanctionGuard, Verdict};
pub use rules::Rules;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the detector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] socle_kafka::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("no sanction in force for user {0}")]
    NothingToLift(String),
    #[error("internal: {0}")]
    Internal(String),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// This crate's migrations, for `socle migrate` and the start-up check of the components.
#[must_use]
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Applies this crate's migrations (`detect` schema, versions from 40201; others left alone).
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
