//! PostgreSQL adapters for socle: the per-person key store, the projector's offsets and rejects,
//! and the read models.
//!
//! Everything here can be rebuilt from Kafka except the keys, which must be deletable
//! (crypto-shredding) and so cannot live in an append-only log.

pub mod budget;
pub mod core;
pub mod ecosystem;
pub mod keys;
pub mod offsets;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the PostgreSQL adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored key for person {0} is malformed")]
    MalformedKey(uuid::Uuid),
    #[error("the agreement does not grant the field {0}")]
    NotGranted(String),
    #[error("{0:?} is not a safe SQL identifier")]
    BadIdentifier(String),
    #[error(
        "the {ecosystem} model was built under agreement {built}, the agreement is now {wanted}: \
         rebuild it with `socle replay --ecosystem {ecosystem}`"
    )]
    ModelOutdated {
        ecosystem: String,
        built: String,
        wanted: String,
    },
}

/// `name` if it is a safe unquoted SQL identifier (lower-case letters, digits, `_`; not starting
/// with a digit; at most 63 bytes). Schema and column names come from agreements and replay ids,
/// never from requests, and are checked here before being formatted into SQL.
///
/// # Errors
/// [`Error::BadIdentifier`].
pub fn ident(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(Error::BadIdentifier(name.to_owned()))
    }
}

impl Error {
    /// Whether retrying later can help (connection lost, server restarting, serialization).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => match e {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08") || c == "40001" || c == "40P01" || c.starts_with("57P")
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// This crate's migrations, for `socle migrate` and the start-up check of the components.
#[must_use]
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Connects to `url` with a bounded pool.
///
/// # Errors
/// [`Error::Database`] when the server cannot be reached or refuses the credentials.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await?)
}

/// Applies this crate's migrations (versions from 10000; other crates' migrations in the same
/// database are left alone).
///
/// # Errors
/// [`Error::Migration`] when a migration fails or was altered after being applied.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Takes the transaction-scoped lock that serialises every creation of socle's schemas (core,
/// ecosystem models, roles), so that no two creators race.
///
/// # Errors
/// [`Error::Database`].
pub async fn lock_schema(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('socle.models'))")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Checks that the database answers.
///
/// # Errors
/// [`Error::Database`] when it does not.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
