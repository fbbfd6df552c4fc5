//! The sealer's PostgreSQL state (`seal` schema): chain heads and checkpoints.

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::chain::{Checkpoint, Hash};
use crate::{Error, Result};

/// Where a partition's chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub next_offset: i64,
    pub hash: Hash,
    pub chained: i64,
}

/// The chain heads of `topic`, by partition.
///
/// # Errors
/// [`Error::Database`], or [`Error::Corrupt`] for a stored hash that is not 32 bytes.
pub async fn heads(pool: &PgPool, topic: &str) -> Result<Vec<(i32, Head)>> {
    let rows = sqlx::query(
        "SELECT partition, next_offset, head_hash, chained FROM seal.chain WHERE topic = $1",
    )
    .bind(topic)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = r.try_get("head_hash")?;
            let hash = Hash::try_from(bytes.as_slice()).map_err(|_| {
                Error::Corrupt(format!("seal.chain head of {topic} is not 32 bytes"))
            })?;
            Ok((
                r.try_get("partition")?,
                Head {
                    next_offset: r.try_get("next_offset")?,
                    hash,
                    chained: r.try_get("chained")?,
                },
            ))
        })
        .collect()
}

/// Records `cp` and advances its partition's chain head, inside `tx`.
///
/// # Errors
/// [`Error::Database`].
pub async fn record(tx: &mut Transaction<'_, Postgres>, cp: &Checkpoint) -> Result<()> {
    insert(tx, cp).await?;
    sqlx::query(
        "INSERT INTO seal.chain (topic, partition, next_offset, head_hash, chained) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (topic, partition) DO UPDATE SET \
         next_offset = EXCLUDED.next_offset, head_hash = EXCLUDED.head_hash, \
         chained = EXCLUDED.chained, updated_at = now()",
    )
    .bind(&cp.topic)
    .bind(cp.partition)
    .bind(cp.last_offset + 1)
    .bind(&cp.hash)
    .bind(cp.chained)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts `cp` (unpublished) into `seal.checkpoints`.
async fn insert(tx: &mut Transaction<'_, Postgres>, cp: &Checkpoint) -> Result<()> {
    let sealed_at = chrono::DateTime::from_timestamp_micros(cp.sealed_at)
        .ok_or_else(|| Error::Corrupt(format!("sealed_at {} out of range", cp.sealed_at)))?;
    sqlx::query(
        "INSERT INTO seal.checkpoints (topic, partition, first_offset, last_offset, count, chained, \
         prev_hash, hash, sealed_at, sealed_at_us, offsets, leaves, key_id, signature) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
    )
    .bind(&cp.topic)
    .bind(cp.partition)
    .bind(cp.first_offset)
    .bind(cp.last_offset)
    .bind(cp.count)
    .bind(cp.chained)
    .bind(&cp.prev_hash)
    .bind(&cp.hash)
    .bind(sealed_at)
    .bind(cp.sealed_at)
    .bind(&cp.offsets)
    .bind(&cp.leaves)
    .bind(&cp.key_id)
    .bind(&cp.signature)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the stored, unpublished checkpoint `original` by `pieces` (its entries re-sealed in
/// smaller checkpoints, see [`Checkpoint::split`]), in one transaction. The chain head is not
/// touched: the last piece ends where `original` did. Returns false, changing nothing, if
/// `original` is no longer stored unpublished (published or replaced meanwhile).
///
/// # Errors
/// [`Error::Database`]; [`Error::Corrupt`] if the pieces do not end where `original` did.
pub async fn replace(pool: &PgPool, original: &Checkpoint, pieces: &[Checkpoint]) -> Result<bool> {
    let ends_alike = pieces.last().is_some_and(|last| {
        last.hash == original.hash
            && last.chained == original.chained
            && last.last_offset == original.last_offset
    }) && pieces.first().map(|p| &p.prev_hash) == Some(&original.prev_hash);
    if !ends_alike {
        return Err(Error::Corrupt(format!(
            "the pieces of checkpoint {}/{}@{} do not chain to it",
            original.topic, original.partition, original.last_offset
        )));
    }
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query(
        "DELETE FROM seal.checkpoints WHERE topic = $1 AND partition = $2 AND last_offset = $3 \
         AND count = $4 AND hash = $5 AND published_at IS NULL",
    )
    .bind(&original.topic)
    .bind(original.partition)
    .bind(original.last_offset)
    .bind(original.count)
    .bind(&original.hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted != 1 {
        return Ok(false);
    }
    for piece in pieces {
        insert(&mut tx, piece).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Notes that `cp` is on the seal topic.
///
/// # Errors
/// [`Error::Database`].
pub async fn mark_published(pool: &PgPool, cp: &Checkpoint) -> Result<()> {
    sqlx::query(
        "UPDATE seal.checkpoints SET published_at = now() \
         WHERE topic = $1 AND partition = $2 AND last_offset = $3",
    )
    .bind(&cp.topic)
    .bind(cp.partition)
    .bind(cp.last_offset)
    .execute(pool)
    .await?;
    Ok(())
}

/// Checkpoints of `topic`, oldest first; only the unpublished ones if `unpublished`.
///
/// # Errors
/// [`Error::Database`].
pub async fn checkpoints(pool: &PgPool, topic: &str, unpublished: bool) -> Result<Vec<Checkpoint>> {
    let rows = sqlx::query(
        "SELECT topic, partition, first_offset, last_offset, count, chained, prev_hash, hash, \
         sealed_at_us, offsets, leaves, key_id, signature FROM seal.checkpoints \
         WHERE topic = $1 AND (NOT $2 OR published_at IS NULL) ORDER BY partition, last_offset",
    )
    .bind(topic)
    .bind(unpublished)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                topic: r.try_get("topic")?,
                partition: r.try_get("partition")?,
                first_offset: r.try_get("first_offset")?,
                last_offset: r.try_get("last_offset")?,
                count: r.try_get("count")?,
                chained: r.try_get("chained")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
                sealed_at: r.try_get("sealed_at_us")?,
                offsets: r.try_get("offsets")?,
                leaves: r.try_get("leaves")?,
                key_id: r.try_get("key_id")?,
                signature: r.try_get("signature")?,
            })
        })
        .collect()
}
