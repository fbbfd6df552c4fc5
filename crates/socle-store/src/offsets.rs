//! Consumer offsets kept in PostgreSQL, in the same transaction as the rows they produced.

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::Result;

/// The next offset to read per partition for `consumer` on `topic`.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn load(pool: &PgPool, consumer: &str, topic: &str) -> Result<Vec<(i32, i64)>> {
    let rows = sqlx::query(
        "SELECT partition, next_offset FROM projector.offsets WHERE consumer = $1 AND topic = $2",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("partition")?, r.try_get("next_offset")?)))
        .collect()
}

/// Locks the offset rows of `partitions` for the rest of `tx` and returns their next offsets.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i64)>> {
    sqlx::query(
        "INSERT INTO projector.offsets (consumer, topic, partition, next_offset) \
         SELECT $1, $2, p, 0 FROM UNNEST($3::int[]) AS p ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partitions)
    .execute(&mut **tx)
    .await?;
    let rows = sqlx::query(
        "SELECT partition, next_offset FROM projector.offsets \
         WHERE consumer = $1 AND topic = $2 AND partition = ANY($3) FOR UPDATE",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partitions)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("partition")?, r.try_get("next_offset")?)))
        .collect()
}

/// Sets the next offsets of the batch's partitions.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn advance(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    topic: &str,
    next: &[(i32, i64)],
) -> Result<()> {
    let (partitions, offsets): (Vec<i32>, Vec<i64>) = next.iter().copied().unzip();
    sqlx::query(
        "UPDATE projector.offsets o SET next_offset = n.next_offset, updated_at = now() \
         FROM UNNEST($3::int[], $4::bigint[]) AS n(partition, next_offset) \
         WHERE o.consumer = $1 AND o.topic = $2 AND o.partition = n.partition",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partitions)
    .bind(offsets)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A message the projector could not apply, kept with its reason so nothing is lost.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub partition: i32,
    pub offset: i64,
    /// Stable machine-readable code, e.g. `frame.too_short`.
    pub code: String,
    pub reason: String,
    pub payload: Option<Vec<u8>>,
}

/// Records `rejected` messages (idempotent per offset).
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn reject(
    tx: &mut Transaction<'_, Postgres>,
    consumer: &str,
    topic: &str,
    rejected: &[Rejected],
) -> Result<()> {
    for r in rejected {
        sqlx::query(
            "INSERT INTO projector.rejected \
             (consumer, topic, partition, \"offset\", reason_code, reason, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(consumer)
        .bind(topic)
        .bind(r.partition)
        .bind(r.offset)
        .bind(&r.code)
        .bind(&r.reason)
        .bind(&r.payload)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The rejects recorded for `consumer` on `topic`, oldest first.
///
/// # Errors
/// [`crate::Error::Database`].
pub async fn rejected(pool: &PgPool, consumer: &str, topic: &str) -> Result<Vec<Rejected>> {
    let rows = sqlx::query(
        "SELECT partition, \"offset\", reason_code, reason, payload FROM projector.rejected \
         WHERE consumer = $1 AND topic = $2 ORDER BY partition, \"offset\"",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Rejected {
                partition: r.try_get("partition")?,
                offset: r.try_get("offset")?,
                code: r.try_get("reason_code")?,
                reason: r.try_get("reason")?,
                payload: r.try_get("payload")?,
            })
        })
        .collect()
}
