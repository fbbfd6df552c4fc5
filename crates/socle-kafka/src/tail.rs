//! Reading back the end of the access trail (`socle audit tail`).

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_domain::AccessEvent;

use crate::schemas::ACCESS_EVENT;
use crate::{client_config, Codec, Error, Result};

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
    /// Per partition: (partition, start offset, end offset when the reader was opened).
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
    /// Opens `topic` at `last` events before the end of each partition.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the topic's metadata or watermarks cannot be read,
    /// [`Error::Topics`] when the topic does not exist.
    pub async fn open(brokers: &str, topic: &str, last: i64, timeout: Duration) -> Result<Self> {
        let consumer: StreamConsumer = client_config(brokers)
            .set("group.id", "socle-audit-tail")
            .set("enable.auto.commit", "false")
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
        Ok(TrailReader { consumer, bounds })
    }

    /// Reads up to the end offsets noted at opening, and returns the events in time order.
    ///
    /// # Errors
    /// [`Error::Kafka`] when reading fails, [`Error::DeliveryTimeout`] when the broker stops
    /// answering; an entry that does not decode is an error too, since an unreadable trail entry
    /// is itself a finding.
    pub async fn read_to_end(&self, codec: &Codec, timeout: Duration) -> Result<Vec<Tailed>> {
        let mut next: Vec<(i32, i64, i64)> = self.bounds.clone();
        let mut out = Vec::new();
        while next.iter().any(|(_, at, end)| at < end) {
            let message = tokio::time::timeout(timeout, self.consumer.recv())
                .await
                .map_err(|_| Error::DeliveryTimeout(timeout))??;
            let tailed = decode(codec, &message).await?;
            if let Some(entry) = next.iter_mut().find(|(p, _, _)| *p == tailed.partition) {
                entry.1 = tailed.offset + 1;
            }
            out.push(tailed);
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
