//! Reading a whole topic back from Kafka, bytes as stored, committed records only, to the last
//! stable offset: the online side of the verifier and of `socle audit export`.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_kafka::tail::{positions, stalled, POSITION_POLL};
use socle_kafka::Codec;

use crate::verify::Entry;
use crate::{Error, Result, CHECKPOINT};

/// Every entry of `topic` (only `partition` if given) from the start of the log to its last
/// stable offset as of now, committed records only (`isolation.level=read_committed`: the
/// records of aborted transactions are not entries, and transaction markers are never
/// delivered), in offset order per partition. A partition is read when the consumer's
/// position reaches its end (see [`socle_kafka::tail`]), so a topic written with transactions
/// (`socle.persons`) is read to its end without waiting.
///
/// # Errors
/// [`Error::Kafka`] when the topic cannot be read, [`Error::NoTopic`] when it does not exist,
/// [`Error::Internal`] naming the partitions short of their end when the position stops moving
/// for `timeout`.
pub async fn entries(
    brokers: &str,
    topic: &str,
    partition: Option<i32>,
    timeout: Duration,
) -> Result<Vec<Entry>> {
    let consumer: StreamConsumer = socle_kafka::client_config(brokers)
        .set("group.id", "socle-seal-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(socle_kafka::Error::from)?;
    let topic_owned = topic.to_owned();
    let (consumer, mut bounds) = tokio::task::spawn_blocking(move || -> Result<_> {
        let metadata = consumer
            .fetch_metadata(Some(&topic_owned), timeout)
            .map_err(socle_kafka::Error::from)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic_owned && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .filter(|p| partition.is_none_or(|only| only == *p))
            .collect();
        if partitions.is_empty() {
            return Err(Error::NoTopic(match partition {
                Some(p) => format!("{topic_owned} has no partition {p}"),
                None => format!("topic {topic_owned} does not exist"),
            }));
        }
        let mut tpl = TopicPartitionList::new();
        let mut bounds = Vec::new();
        for p in partitions {
            // Under read_committed the high watermark answered is the last stable offset.
            let (low, high) = consumer
                .fetch_watermarks(&topic_owned, p, timeout)
                .map_err(socle_kafka::Error::from)?;
            if high > low {
                tpl.add_partition_offset(&topic_owned, p, Offset::Offset(low))
                    .map_err(socle_kafka::Error::from)?;
                bounds.push((p, low, high));
            }
        }
        if tpl.count() > 0 {
            consumer.assign(&tpl).map_err(socle_kafka::Error::from)?;
        }
        Ok((consumer, bounds))
    })
    .await
    .map_err(|e| Error::Internal(format!("watermark task failed: {e}")))??;

    let mut out = Vec::new();
    let mut moved = tokio::time::Instant::now();
    while bounds.iter().any(|(_, at, end)| at < end) {
        let m = match tokio::time::timeout(POSITION_POLL, consumer.recv()).await {
            Ok(m) => m.map_err(socle_kafka::Error::from)?,
            Err(_) => {
                // Nothing delivered: past the last record only markers or aborted records may
                // be left, which move the position but are never delivered.
                let at = positions(&consumer, topic)?;
                for b in &mut bounds {
                    if let Some(p) = at.get(&b.0).filter(|p| **p > b.1) {
                        b.1 = *p;
                        moved = tokio::time::Instant::now();
                    }
                }
                if moved.elapsed() >= timeout && bounds.iter().any(|(_, at, end)| at < end) {
                    return Err(Error::Internal(stalled(topic, &bounds, timeout)));
                }
                continue;
            }
        };
        moved = tokio::time::Instant::now();
        let Some(b) = bounds.iter_mut().find(|(p, _, _)| *p == m.partition()) else {
            continue;
        };
        if m.offset() >= b.2 {
            continue;
        }
        b.1 = b.1.max(m.offset() + 1);
        out.push(Entry {
            topic: topic.to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
        });
    }
    out.sort_by_key(|e| (e.partition, e.offset));
    Ok(out)
}

/// The checkpoints on `seal_topic` that seal `sealed_topic`.
///
/// # Errors
/// As [`entries`], plus [`Error::Kafka`] wrapping a decoding error for an entry of the seal
/// topic that is not a checkpoint (an unreadable seal is itself a finding to investigate).
pub async fn checkpoints(
    brokers: &str,
    codec: &Codec,
    seal_topic: &str,
    sealed_topic: &str,
    timeout: Duration,
) -> Result<Vec<crate::chain::Checkpoint>> {
    let mut out = Vec::new();
    for e in entries(brokers, seal_topic, None, timeout).await? {
        let Some(value) = &e.value else { continue };
        let cp: crate::chain::Checkpoint = codec.decode_as(value, &CHECKPOINT).await?;
        if cp.topic == sealed_topic {
            out.push(cp);
        }
    }
    Ok(out)
}
