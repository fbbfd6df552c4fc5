//! Reading back the end of the access trail (`socle audit tail`), and what every bounded read
//! of a topic (replay, as-of, the verifier, the export) shares: reading committed records only,
//! up to the last stable offset, and knowing it got there by the consumer's position.
//!
//! A topic written with Kafka transactions (`socle ingest` writes `socle.persons` so) holds, besides
//! the records, one control record per partition and transaction (its commit or abort marker),
//! never handed to the application, and the records of aborted transactions, which a
//! `read_committed` consumer skips. So the end of a partition cannot be detected by receiving
//! the record at `end - 1`: after a commit that offset is the marker. A bounded reader instead
//! notes the end under `read_committed` when it starts (`fetch_watermarks` then answers the last
//! stable offset: every transaction before it is decided), and is done with a partition when its
//! position (the offset of the next record to fetch, which librdkafka moves past markers and
//! aborted records as it consumes them) reaches that end.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_domain::AccessEvent;

use crate::schemas::ACCESS_EVENT;
use crate::{client_config, Codec, Error, Result};

/// How long a bounded reader waits for one record before it looks at its position again: past
/// the last record of a partition only markers (or aborted records) may be left, which are
/// never delivered.
pub const POSITION_POLL: Duration = Duration::from_millis(200);

/// The position of `consumer` on each partition of `topic` it is assigned and has consumed
/// from: the offset of the next record it will fetch. It moves past transaction markers and
/// the records of aborted transactions (under `isolation.level=read_committed`) as the
/// consumer is polled, so it reaches the last stable offset even when no record sits there.
/// Partitions not consumed from yet are absent.
///
/// # Errors
/// [`Error::Kafka`] when the consumer has no assignment to report on.
pub fn positions<X: ConsumerContext>(
    consumer: &StreamConsumer<X>,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
    Ok(consumer
        .position()?
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// What a bounded reader says when its position stopped moving short of the end for
/// `timeout`: the partitions still behind, with their position and end.
pub fn stalled(topic: &str, next: &[(i32, i64, i64)], timeout: Duration) -> String {
    let behind: Vec<String> = next
        .iter()
        .filter(|(_, at, end)| at < end)
        .map(|(p, at, end)| format!("{topic}/{p} at offset {at} of {end}"))
        .collect();
    format!(
        "reading {topic}: no progress for {timeout:?} ({})",
        behind.join(", ")
    )
}

/// One access event with its place in the topic.
#[derive(Debug, Clone)]
pub struct Tailed {
    pub partition: i32,
    pub offset: i64,
    pub event: AccessEvent,
}

/// A reader positioned `last` events before the end of each partition of `topic`.
pub struct TrailReader {
    consumer: StreamConsumer,
    topic: String,
    /// Per partition: (partition, start offset, end offset when the reader was opened: the
    /// last stable offset).
    bounds: Vec<(i32, i64, i64)>,
}

impl std::fmt::Debug for TrailReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailReader")
            .field("bounds", &self.bounds)
            .finish()
    }
}

impl TrailReader {
    /// Opens `topic` at `last` offsets before the end of each partition (the last stable
    /// offset: committed records only; on a transactional topic markers take offsets too, so
    /// fewer than `last` events may come back).
    ///
    /// # Errors
    /// [`Error::Kafka`] when the topic's metadata or watermarks cannot be read,
    /// [`Error::Topics`] when the topic does not exist.
    pub async fn open(brokers: &str, topic: &str, last: i64, timeout: Duration) -> Result<Self> {
        let consumer: StreamConsumer = client_config(brokers)
            .set("group.id", "socle-audit-tail")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
        let topic_owned = topic.to_owned();
        let (consumer, bounds, tpl) = tokio::task::spawn_blocking(move || -> Result<_> {
            let metadata = consumer.fetch_metadata(Some(&topic_owned), timeout)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic_owned && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(Error::Topics(format!("topic {topic_owned} does not exist")));
            }
            let mut tpl = TopicPartitionList::new();
            let mut bounds = Vec::new();
            for p in partitions {
                let (low, high) = consumer.fetch_watermarks(&topic_owned, p, timeout)?;
                let start = (high - last.max(0)).max(low);
                tpl.add_partition_offset(&topic_owned, p, Offset::Offset(start))?;
                bounds.push((p, start, high));
            }
            Ok((consumer, bounds, tpl))
        })
        .await
        .map_err(|e| Error::Internal(format!("watermark task failed: {e}")))??;
        consumer.assign(&tpl)?;
        Ok(TrailReader {
            consumer,
            topic: topic.to_owned(),
            bounds,
        })
    }

    /// Reads up to the end offsets noted at opening (committed records only), and returns the
    /// events in time order. Done when the consumer's position reaches each end, so neither a
    /// transaction marker nor an aborted transaction makes it wait.
    ///
    /// # Errors
    /// [`Error::Kafka`] when reading fails, [`Error::Internal`] (naming the partitions short of
    /// their end) when the position stops moving for `timeout`; an entry that does not decode is an error too,
    /// since an unreadable trail entry is itself a finding.
    pub async fn read_to_end(&self, codec: &Codec, timeout: Duration) -> Result<Vec<Tailed>> {
        let mut next: Vec<(i32, i64, i64)> = self.bounds.clone();
        let mut out = Vec::new();
        let mut moved = tokio::time::Instant::now();
        while next.iter().any(|(_, at, end)| at < end) {
            match tokio::time::timeout(POSITION_POLL, self.consumer.recv()).await {
                Ok(message) => {
                    let message = message?;
                    let tailed = decode(codec, &message).await?;
                    if let Some(entry) = next.iter_mut().find(|(p, _, _)| *p == tailed.partition) {
                        entry.1 = entry.1.max(tailed.offset + 1);
                    }
                    out.push(tailed);
                    moved = tokio::time::Instant::now();
                }
                Err(_) => {
                    let at = positions(&self.consumer, &self.topic)?;
                    for entry in &mut next {
                        if let Some(p) = at.get(&entry.0).filter(|p| **p > entry.1) {
                            entry.1 = *p;
                            moved = tokio::time::Instant::now();
                        }
                    }
                    if moved.elapsed() >= timeout {
                        return Err(Error::Internal(stalled(&self.topic, &next, timeout)));
                    }
                }
            }
        }
        out.sort_by_key(|t| (t.event.envelope.recorded_at, t.partition, t.offset));
        Ok(out)
    }

    /// Waits for the next access event after the end (for `--follow`).
    ///
    /// # Errors
    /// [`Error::Kafka`] or a decoding error.
    pub async fn next(&self, codec: &Codec) -> Result<Tailed> {
        let message = self.consumer.recv().await?;
        decode(codec, &message).await
    }
}

async fn decode(codec: &Codec, message: &rdkafka::message::BorrowedMessage<'_>) -> Result<Tailed> {
    let payload = message.payload().unwrap_or_default();
    let event = codec
        .decode_as::<AccessEvent>(payload, &ACCESS_EVENT)
        .await?;
    Ok(Tailed {
        partition: message.partition(),
        offset: message.offset(),
        event,
    })
}
