//! Registration events, durably: the transactional outbox `registry.events`.
//!
//! A [`crate::RegistrationSink`] is called after the commit, so a crash between
//! the commit and the publication would lose the event. With
//! [`crate::Registry::with_events`], each change also inserts its
//! [`RegistrationRecord`] into `registry.events` in the same transaction: the
//! change and its event commit together or not at all. A relay (the `socle
//! registry` command, crate `socle-contracts`) then leases the pending events
//! in order ([`crate::Registry::pending_events`]), publishes them, and marks
//! them published. If it cannot publish (Kafka unreachable), the events stay
//! in PostgreSQL and are retried; once [`DEFAULT_MAX_BACKLOG`] (or the
//! configured bound) are waiting, the registry refuses changes with a 503
//! rather than queue without bound.

use sqlx::{Postgres, Transaction};

use crate::{RegistrationRecord, Result};

/// Default bound on unpublished events before changes are refused.
pub const DEFAULT_MAX_BACKLOG: i64 = 10_000;

/// Advisory lock held by the relay that is publishing (one at a time, so that
/// events leave in `seq` order even with several registry instances).
const RELAY_LOCK: i64 = 0x736f_636c_6572_7678; // "soclervx"

/// Inserts `record` into the outbox within `tx`.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    record: &RegistrationRecord,
) -> Result<()> {
    sqlx::query("INSERT INTO registry.events (record) VALUES ($1)")
        .bind(sqlx::types::Json(record))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Number of events not yet published.
pub(crate) async fn backlog<'e, E>(executor: E) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM registry.events WHERE published_at IS NULL")
            .fetch_one(executor)
            .await?,
    )
}

/// A batch of unpublished events, oldest first, leased by one relay.
///
/// The lease is a PostgreSQL transaction holding the relay lock: dropping the
/// batch without [`PendingEvents::published`] leaves every event pending.
pub struct PendingEvents {
    tx: Transaction<'static, Postgres>,
    /// `(seq, record)` in publication order.
    pub events: Vec<(i64, RegistrationRecord)>,
}

impl std::fmt::Debug for PendingEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEvents")
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl PendingEvents {
    /// Leases up to `limit` pending events; `None` when another relay holds the
    /// lease. The batch may be empty.
    pub(crate) async fn lease(pool: &sqlx::PgPool, limit: i64) -> Result<Option<PendingEvents>> {
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(None);
        }
        let rows: Vec<(i64, sqlx::types::Json<RegistrationRecord>)> = sqlx::query_as(
            "SELECT seq, record FROM registry.events WHERE published_at IS NULL
              ORDER BY seq LIMIT $1",
        )
        .bind(limit.max(1))
        .fetch_all(&mut *tx)
        .await?;
        Ok(Some(PendingEvents {
            tx,
            events: rows.into_iter().map(|(seq, r)| (seq, r.0)).collect(),
        }))
    }

    /// Marks every leased event up to `seq` (included) as published and ends
    /// the lease.
    ///
    /// # Errors
    /// [`crate::Error::Database`]; the events then stay pending and will be
    /// published again (consumers drop duplicates by event id).
    pub async fn published(mut self, seq: i64) -> Result<()> {
        sqlx::query(
            "UPDATE registry.events SET published_at = now()
              WHERE published_at IS NULL AND seq <= $1",
        )
        .bind(seq)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
