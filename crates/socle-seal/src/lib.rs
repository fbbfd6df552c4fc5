//! Tamper evidence for socle's trail: what makes "nothing was removed or altered" checkable by
//! anyone, not just asserted by the operator.
//!
//! - [`chain`]: leaves, the per-partition hash chain and Ed25519-signed checkpoints (pure);
//! - [`verify`]: given entries and checkpoints, names each deleted, altered, inserted or
//!   reordered entry and each checkpoint whose signature fails (pure);
//! - [`sealer`]: the `socle seal` consumer, exactly once with its state in PostgreSQL;
//! - [`read`] and [`export`]: the entries and checkpoints read back from Kafka, or from a file
//!   that an auditor verifies offline;
//! - [`keys`]: the key files (private for the sealer, public published with the deployment).
//!
//! Leaves hash the key and value bytes exactly as stored, ciphertext included: crypto-shredding
//! a person (erasing their key) changes no byte of the log, so the seal still verifies.

pub mod chain;
pub mod export;
pub mod keys;
pub mod read;
pub mod sealer;
pub mod store;
pub mod verify;

use std::sync::LazyLock;

use socle_kafka::schemas::Contract;

pub use chain::Checkpoint;
pub use verify::{verify, Entry, Finding, Range, Report};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the seal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] socle_kafka::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("key: {0}")]
    Key(String),
    #[error("export file: {0}")]
    Export(String),
    #[error("{0}")]
    NoTopic(String),
    #[error("another sealer holds topic {0} (one sealer per topic)")]
    Busy(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("stored seal state is corrupt: {0}")]
    Corrupt(String),
    #[error("kafka did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("internal: {0}")]
    Internal(String),
}

/// `socle.trail.Checkpoint` (`schemas/trail/Checkpoint.avsc`).
pub static CHECKPOINT: LazyLock<Contract> = LazyLock::new(|| {
    let raw = include_str!("../../../schemas/trail/Checkpoint.avsc");
    Contract {
        name: "socle.trail.Checkpoint",
        raw,
        schema: apache_avro::Schema::parse_str(raw).unwrap_or_else(|e| {
            panic!("compiled-in schema socle.trail.Checkpoint does not parse: {e}")
        }),
    }
});

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// This crate's migrations, for `socle migrate` and the start-up check of the components.
#[must_use]
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &MIGRATOR
}

/// Applies this crate's migrations (`seal` schema, versions from 40001; others are left alone).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_through_its_avro_contract() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let cp = Checkpoint::seal(
            "t",
            1,
            chain::GENESIS,
            0,
            &[(0, chain::leaf(None, None))],
            5,
            &key,
        )
        .expect("cp");
        let bytes = socle_kafka::codec::to_datum(&cp, &CHECKPOINT).expect("encode");
        let back: Checkpoint = socle_kafka::codec::from_datum(&bytes, &CHECKPOINT).expect("decode");
        assert_eq!(back, cp);
    }
}
