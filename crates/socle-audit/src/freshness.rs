//! How fresh an auditor's answer is, and the refusal to answer from a store too far behind.
//!
//! The audit store is derived from the access trail by `socle audit project`; an answer read
//! from it is only as complete as the projection. A store that is not being projected answers
//! every question with an empty list, which an auditor would read as "nobody accessed this
//! person". So every answer measures, just before it is read:
//!
//! - the store's **position** on each partition of the access topic (`audit.positions`, the
//!   offset after the last entry projected, written in the same transaction as the rows);
//! - the **end of the trail**: the last stable offset of each partition, read by a
//!   `read_committed` consumer (committed entries only; transaction markers are not entries);
//! - the entries in between: their count (`lag_entries`, counted in offsets from the first
//!   entry the store lacks) and how long the oldest of them has been on the trail (`lag_ms`,
//!   from its Kafka timestamp);
//! - `as_of`: the time of the newest entry the store holds.
//!
//! Past either bound ([`Bounds`]), or when the store has never projected anything while the
//! trail holds entries, the answer is refused ([`Stale::Behind`], `audit.store_behind`). When the
//! end of the trail cannot be read (Kafka unreachable, timeout), the lag is unknown and the answer
//! is refused as well ([`Stale::Unknown`], `audit.freshness_unknown`): fail closed.
//!
//! The query's own access event, appended just before the measure, is usually not projected yet:
//! a store that keeps up shows a lag of an entry or two and a few milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::Error;

/// How far behind the trail an answer may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Entries of the access topic not yet in the store (settings `audit.max_lag_entries`).
    pub max_lag_entries: i64,
    /// Age of the oldest entry not yet in the store (settings `audit.max_lag_ms`).
    pub max_lag: Duration,
}

impl Default for Bounds {
    /// 1000 entries, 30 s: the defaults of `[audit]` in the settings.
    fn default() -> Self {
        Bounds {
            max_lag_entries: 1000,
            max_lag: Duration::from_secs(30),
        }
    }
}

/// Where the store stands on one partition of the access topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPosition {
    pub partition: i32,
    /// The offset after the last entry projected; none when nothing was ever projected from it.
    pub projected: Option<i64>,
    /// The end of the trail: the partition's last stable offset.
    pub end: i64,
    /// Offsets from the first entry the store lacks to the end (0: the store has everything).
    pub lag_entries: i64,
}

/// The freshness of an answer, measured just before it was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    /// The access topic.
    pub topic: String,
    pub positions: Vec<PartitionPosition>,
    /// Sum over the partitions.
    pub lag_entries: i64,
    /// Time of the newest entry in the store (none: nothing projected yet).
    pub as_of: Option<DateTime<Utc>>,
    /// How long the oldest entry not yet in the store has been on the trail (0: none missing).
    pub lag_ms: i64,
    pub measured_at: DateTime<Utc>,
}

impl Freshness {
    /// True when the store holds nothing of a trail that is not empty.
    #[must_use]
    pub fn never_projected(&self) -> bool {
        self.lag_entries > 0 && self.positions.iter().all(|p| p.projected.is_none())
    }
}

/// An answer and its freshness: `{"rows": [...], "truncated": false, "freshness": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct Answer<T> {
    #[serde(flatten)]
    pub page: T,
    pub freshness: Freshness,
}

/// Why an answer is refused.
#[derive(Debug, thiserror::Error)]
pub enum Stale {
    /// The store is behind the trail past a bound, or has never projected it.
    #[error("{}", behind_detail(.freshness, .bounds))]
    Behind {
        freshness: Box<Freshness>,
        bounds: Bounds,
    },
    /// The end of the trail cannot be read: the lag is unknown.
    #[error("the audit store's lag behind {topic} cannot be measured ({reason}); no answer is given without it")]
    Unknown { topic: String, reason: String },
    /// The store's own positions cannot be read.
    #[error(transparent)]
    Store(#[from] Error),
}

impl Stale {
    /// The stable problem code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Stale::Behind { .. } => "audit.store_behind",
            Stale::Unknown { .. } => "audit.freshness_unknown",
            Stale::Store(_) => "store.unavailable",
        }
    }

    /// A short title for the problem.
    #[must_use]
    pub fn title(&self) -> &'static str {
        match self {
            Stale::Behind { .. } => "The audit store is behind the access trail",
            Stale::Unknown { .. } => "The audit store's freshness cannot be measured",
            Stale::Store(_) => "The audit store cannot be reached",
        }
    }
}

fn behind_detail(f: &Freshness, b: &Bounds) -> String {
    if f.never_projected() {
        return format!(
            "the audit store has never projected {} ({} entries on the trail): `socle audit project` \
             must run and catch up before the auditors' queries answer",
            f.topic, f.lag_entries
        );
    }
    let as_of = f
        .as_of
        .map_or_else(|| "none".to_owned(), |t| t.to_rfc3339());
    format!(
        "the audit store is {} entries and {} ms behind {} (bounds: {} entries, {} ms; newest \
         entry projected: {as_of}): `socle audit project` must run and catch up before the \
         auditors' queries answer",
        f.lag_entries,
        f.lag_ms,
        f.topic,
        b.max_lag_entries,
        b.max_lag.as_millis()
    )
}

/// Measures the store against the trail, and refuses past the bounds.
#[derive(Debug, Clone)]
pub struct FreshnessCheck {
    pub brokers: String,
    /// The access topic.
    pub topic: String,
    pub bounds: Bounds,
    /// How long reading the end of the trail may take before the answer is refused.
    pub timeout: Duration,
}

impl FreshnessCheck {
    /// A check of the store against `topic` on `brokers`, with the default bounds and 5 s to
    /// read the trail's end.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        FreshnessCheck {
            brokers: brokers.into(),
            topic: topic.into(),
            bounds: Bounds::default(),
            timeout: Duration::from_secs(5),
        }
    }

    #[must_use]
    pub fn with_bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The freshness, within the bounds.
    ///
    /// # Errors
    /// [`Stale::Behind`] past a bound or when nothing was ever projected from a trail that has
    /// entries, [`Stale::Unknown`] when the trail's end cannot be read, [`Stale::Store`].
    pub async fn check(&self, pool: &PgPool) -> Result<Freshness, Stale> {
        let f = self.measure(pool).await?;
        let max_ms = i64::try_from(self.bounds.max_lag.as_millis()).unwrap_or(i64::MAX);
        if f.never_projected() || f.lag_entries > self.bounds.max_lag_entries || f.lag_ms > max_ms {
            return Err(Stale::Behind {
                freshness: Box::new(f),
                bounds: self.bounds,
            });
        }
        Ok(f)
    }

    /// The freshness, whatever it is.
    ///
    /// # Errors
    /// [`Stale::Unknown`] when the trail's end cannot be read, [`Stale::Store`].
    pub async fn measure(&self, pool: &PgPool) -> Result<Freshness, Stale> {
        let stored = stored_positions(pool, &self.topic).await?;
        let offsets: HashMap<i32, i64> = stored.iter().map(|(p, (o, _))| (*p, *o)).collect();
        let (brokers, topic, timeout) = (self.brokers.clone(), self.topic.clone(), self.timeout);
        let ends =
            tokio::task::spawn_blocking(move || read_trail(&brokers, &topic, &offsets, timeout))
                .await
                .map_err(|e| Stale::Unknown {
                    topic: self.topic.clone(),
                    reason: format!("measuring task failed: {e}"),
                })?
                .map_err(|reason| Stale::Unknown {
                    topic: self.topic.clone(),
                    reason,
                })?;
        let now = Utc::now();
        let mut positions = Vec::with_capacity(ends.len());
        let mut oldest: Option<DateTime<Utc>> = None;
        for e in &ends {
            let lag = match e.first_missing {
                Some((offset, at)) => {
                    oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    (e.end - offset).max(1)
                }
                None => 0,
            };
            positions.push(PartitionPosition {
                partition: e.partition,
                projected: stored.get(&e.partition).map(|(o, _)| *o),
                end: e.end,
                lag_entries: lag,
            });
        }
        Ok(Freshness {
            topic: self.topic.clone(),
            lag_entries: positions.iter().map(|p| p.lag_entries).sum(),
            positions,
            as_of: stored.values().map(|(_, at)| *at).max(),
            lag_ms: oldest.map_or(0, |o| (now - o).num_milliseconds().max(0)),
            measured_at: now,
        })
    }
}

/// Per partition: the offset after the last projected entry, and that entry's time.
async fn stored_positions(
    pool: &PgPool,
    topic: &str,
) -> Result<BTreeMap<i32, (i64, DateTime<Utc>)>, Error> {
    let rows = sqlx::query(
        "SELECT kafka_partition, next_offset, last_entry_at FROM audit.positions WHERE topic = $1",
    )
    .bind(topic)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("kafka_partition")?,
                (r.try_get("next_offset")?, r.try_get("last_entry_at")?),
            ))
        })
        .collect()
}

/// One partition of the trail, as read just now.
#[derive(Debug)]
struct PartitionEnd {
    partition: i32,
    /// The last stable offset.
    end: i64,
    /// The first committed entry at or after the store's position and before `end`: its offset
    /// and Kafka timestamp (none: the store has every entry).
    first_missing: Option<(i64, DateTime<Utc>)>,
}

/// Blocking: the end of each partition of `topic`, and the first entry the store lacks.
fn read_trail(
    brokers: &str,
    topic: &str,
    stored: &HashMap<i32, i64>,
    timeout: Duration,
) -> Result<Vec<PartitionEnd>, String> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let consumer: BaseConsumer = socle_kafka::client_config(brokers)
        .set("group.id", "socle-audit-freshness")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| format!("kafka client: {e}"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), left())
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let mut partitions = Vec::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        if let Some(e) = t.error() {
            return Err(format!("metadata of {topic}: {e:?}"));
        }
        partitions.extend(
            t.partitions()
                .iter()
                .map(rdkafka::metadata::MetadataPartition::id),
        );
    }
    if partitions.is_empty() {
        return Err(format!("topic {topic} has no partitions"));
    }
    partitions.sort_unstable();
    let mut out = Vec::with_capacity(partitions.len());
    let mut probe = TopicPartitionList::new();
    // Partition -> end, for the partitions where the store may lack entries.
    let mut pending: HashMap<i32, i64> = HashMap::new();
    for p in partitions {
        // A read_committed consumer's high watermark is the last stable offset.
        let (low, end) = consumer
            .fetch_watermarks(topic, p, left())
            .map_err(|e| format!("end of {topic}/{p}: {e}"))?;
        let from = stored.get(&p).copied().unwrap_or(low).max(low);
        if from < end {
            probe
                .add_partition_offset(topic, p, Offset::Offset(from))
                .map_err(|e| e.to_string())?;
            pending.insert(p, end);
        }
        out.push(PartitionEnd {
            partition: p,
            end,
            first_missing: None,
        });
    }
    if pending.is_empty() {
        return Ok(out);
    }
    // Between the store's position and the end there may be only transaction markers (or
    // aborted entries): read the first committed entry, if any.
    consumer.assign(&probe).map_err(|e| e.to_string())?;
    while !pending.is_empty() {
        let wait = left();
        if wait.is_zero() {
            let mut late: Vec<i32> = pending.keys().copied().collect();
            late.sort_unstable();
            return Err(format!(
                "the entries after the store's position on {topic} partitions {late:?} could not \
                 be read within {} ms",
                timeout.as_millis()
            ));
        }
        match consumer.poll(wait.min(Duration::from_millis(200))) {
            None => {}
            Some(Ok(m)) => {
                let p = m.partition();
                if let Some(end) = pending.remove(&p) {
                    if m.offset() < end {
                        let at = m
                            .timestamp()
                            .to_millis()
                            .and_then(DateTime::from_timestamp_millis)
                            .unwrap_or_else(Utc::now);
                        if let Some(e) = out.iter_mut().find(|e| e.partition == p) {
                            e.first_missing = Some((m.offset(), at));
                        }
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freshness(projected: Option<i64>, lag: i64) -> Freshness {
        Freshness {
            topic: "socle.access".into(),
            positions: vec![PartitionPosition {
                partition: 0,
                projected,
                end: projected.unwrap_or(0) + lag,
                lag_entries: lag,
            }],
            lag_entries: lag,
            as_of: None,
            lag_ms: 1234,
            measured_at: Utc::now(),
        }
    }

    #[test]
    fn the_refusal_says_how_far_behind_and_what_must_run() {
        let behind = Stale::Behind {
            freshness: Box::new(freshness(Some(10), 5000)),
            bounds: Bounds::default(),
        };
        assert_eq!(behind.code(), "audit.store_behind");
        let text = behind.to_string();
        assert!(
            text.contains("5000 entries and 1234 ms behind socle.access"),
            "{text}"
        );
        assert!(text.contains("bounds: 1000 entries, 30000 ms"), "{text}");
        assert!(text.contains("socle audit project"), "{text}");
        let never = Stale::Behind {
            freshness: Box::new(freshness(None, 3)),
            bounds: Bounds::default(),
        };
        assert!(never.to_string().contains("never projected"), "{never}");
        assert!(
            !freshness(None, 0).never_projected(),
            "an empty trail is not behind"
        );
        let unknown = Stale::Unknown {
            topic: "socle.access".into(),
            reason: "timeout".into(),
        };
        assert_eq!(unknown.code(), "audit.freshness_unknown");
    }

    #[test]
    fn an_answer_carries_its_freshness_beside_the_page() {
        let page = crate::queries::Page::<u8> {
            rows: vec![1],
            truncated: false,
        };
        let json = serde_json::to_value(Answer {
            page,
            freshness: freshness(Some(3), 0),
        })
        .expect("json");
        assert_eq!(json["rows"], serde_json::json!([1]));
        assert_eq!(json["truncated"], false);
        assert_eq!(json["freshness"]["lag_entries"], 0);
        assert_eq!(json["freshness"]["positions"][0]["projected"], 3);
    }
}
