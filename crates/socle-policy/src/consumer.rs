//! Replays `socle.habilitations` into `habilitations.*`.
//!
//! Each message is applied in one PostgreSQL transaction together with the next offset of its
//! partition (`habilitations.offsets`); on start the consumer reads those offsets and assigns the
//! partitions itself, so PostgreSQL — not Kafka's committed offsets — says where it is. Applying
//! is also idempotent (grant ids are primary keys), so a replay never changes the answer.
//! A message that can never be applied (undecodable, invalid grant) is skipped with a warning and
//! its offset is still stored: a poison grant must not freeze every later grant and revocation.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_kafka::Codec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::grants::{
    apply_granted, apply_revoked, HabilitationGranted, HabilitationRevoked, GRANTED, REVOKED,
};
use crate::{Error, Result};

/// Runs until `shutdown`.
///
/// # Errors
/// Kafka set-up errors; PostgreSQL errors (the caller restarts).
pub async fn run(
    brokers: &str,
    topic: &str,
    pool: PgPool,
    codec: Arc<Codec>,
    shutdown: CancellationToken,
) -> Result<()> {
    let consumer: StreamConsumer = socle_kafka::client_config(brokers)
        .set("group.id", "socle-habilitations")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let stored: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM habilitations.offsets WHERE topic = $1")
            .bind(topic)
            .fetch_all(&pool)
            .await?;
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        let offset = stored
            .iter()
            .find(|(sp, _)| sp == p)
            .map_or(Offset::Beginning, |(_, o)| Offset::Offset(*o));
        list.add_partition_offset(topic, *p, offset)?;
    }
    consumer.assign(&list)?;
    info!(
        topic,
        partitions = partitions.len(),
        "habilitations consumer assigned"
    );
    loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        let (partition, offset) = (message.partition(), message.offset());
        let payload = message.payload().map(<[u8]>::to_vec);
        let mut tx = pool.begin().await?;
        if let Some(payload) = payload {
            if let Err(e) = apply(&mut tx, &codec, &payload).await {
                match e {
                    Error::Database(_) => return Err(e),
                    Error::Kafka(ref k) if !k.is_poison() => return Err(e),
                    other => warn!(partition, offset, error = %other, "habilitation event skipped"),
                }
            }
        }
        sqlx::query(
            "INSERT INTO habilitations.offsets (topic, partition, next_offset) VALUES ($1,$2,$3) \
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
        )
        .bind(topic)
        .bind(partition)
        .bind(offset + 1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
}

async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    codec: &Codec,
    payload: &[u8],
) -> Result<()> {
    let decoded = codec.decode(payload).await?;
    if decoded.name == GRANTED.name {
        let g: HabilitationGranted = socle_kafka::codec::from_value(decoded.value, &GRANTED)?;
        apply_granted(tx, &g).await
    } else if decoded.name == REVOKED.name {
        let r: HabilitationRevoked = socle_kafka::codec::from_value(decoded.value, &REVOKED)?;
        apply_revoked(tx, &r).await
    } else {
        Err(Error::InvalidGrant(format!(
            "unexpected record {}",
            decoded.name
        )))
    }
}
