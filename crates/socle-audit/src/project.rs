//! The audit projector: access events into `audit.access` and `audit.access_person`, and the
//! envelope of canonical person events into `audit.person_events`.
//!
//! Rows are keyed by event id and inserted with `ON CONFLICT DO NOTHING`, and Kafka offsets are
//! committed only after the PostgreSQL transaction: a batch read twice (crash, rebalance) adds
//! nothing the second time. The same transaction records, per partition, the offset after the
//! last entry projected and that entry's time (`audit.positions`, never moved back): what the
//! auditors' answers measure their freshness against (see [`crate::freshness`]). An entry that
//! does not decode is logged with its position and skipped (the seal still covers it:
//! `socle audit verify` reads the raw bytes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use socle_domain::AccessEvent;
use socle_kafka::schemas::ACCESS_EVENT;
use socle_kafka::Codec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{Error, Result};

/// How the audit projector runs.
#[derive(Debug, Clone)]
pub struct AuditProjectorConfig {
    pub brokers: String,
    pub access_topic: String,
    /// Canonical topics whose events carry a `person_id` (for timelines).
    pub person_topics: Vec<String>,
    pub group: String,
    /// Kafka's `group.instance.id` (static group membership), unique and stable per instance:
    /// a restarted instance gets its partitions back at once instead of after
    /// `session.timeout.ms` (10 s). `None`: dynamic membership. Two live instances with the same
    /// id fence each other: the older one stops.
    pub group_instance_id: Option<String>,
    pub batch_size: usize,
    pub batch_timeout: Duration,
}

/// Runs until `shutdown` is cancelled.
///
/// # Errors
/// Kafka configuration errors, PostgreSQL errors.
pub async fn run(
    config: AuditProjectorConfig,
    pool: PgPool,
    codec: Arc<Codec>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut client = socle_kafka::client_config(&config.brokers);
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000");
    if let Some(id) = config
        .group_instance_id
        .as_deref()
        .filter(|id| !id.is_empty())
    {
        client.set("group.instance.id", id);
    }
    let consumer: StreamConsumer = client.create().map_err(socle_kafka::Error::from)?;
    let mut topics: Vec<&str> = vec![&config.access_topic];
    topics.extend(config.person_topics.iter().map(String::as_str));
    consumer
        .subscribe(&topics)
        .map_err(socle_kafka::Error::from)?;
    info!(topics = ?topics, "audit projector started");
    loop {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(config.batch_size);
        match first {
            Ok(m) => batch.push(m.detach()),
            // Fenced by another instance with the same group.instance.id, or another fatal
            // consumer error: this consumer can never be used again.
            Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                return Err(socle_kafka::Error::from(e).into())
            }
            Err(e) => {
                warn!(error = %e, "kafka consumer error");
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + config.batch_timeout;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(socle_kafka::Error::from(e).into())
                }
                Ok(Err(e)) => warn!(error = %e, "kafka consumer error"),
                Err(_) => break,
            }
        }
        apply(&pool, &codec, &config.access_topic, &batch).await?;
        for m in &batch {
            if let Err(e) = consumer.store_offset(m.topic(), m.partition(), m.offset()) {
                warn!(error = %e, "could not store the offset");
            }
        }
    }
    info!("audit projector stopped");
    Ok(())
}

/// Decodes and writes one batch in one transaction.
///
/// # Errors
/// Registry errors (transient), PostgreSQL errors.
pub async fn apply(
    pool: &PgPool,
    codec: &Codec,
    access_topic: &str,
    batch: &[OwnedMessage],
) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Per (topic, partition): the last offset of the batch and its entry's time.
    let mut positions: BTreeMap<(&str, i32), (i64, DateTime<Utc>)> = BTreeMap::new();
    for m in batch {
        let at = m
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(Utc::now);
        let last = positions
            .entry((m.topic(), m.partition()))
            .or_insert((m.offset(), at));
        if m.offset() >= last.0 {
            *last = (m.offset(), at);
        }
        let Some(payload) = m.payload() else { continue };
        if m.topic() == access_topic {
            match codec.decode_as::<AccessEvent>(payload, &ACCESS_EVENT).await {
                Ok(e) => insert_access(&mut tx, &e, m.partition(), m.offset()).await?,
                Err(e) if e.is_poison() => {
                    warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(),
                          error = %e, "access event does not decode; not in the audit store");
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            match codec.decode(payload).await {
                Ok(d) => {
                    if let Some(row) = person_event(&d.name, &d.value) {
                        insert_person_event(&mut tx, &row, m.topic(), m.partition(), m.offset())
                            .await?;
                    }
                }
                Err(e) if e.is_poison() => {
                    warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(),
                          error = %e, "person event does not decode; not in the timeline");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    for ((topic, partition), (offset, at)) in positions {
        sqlx::query(
            "INSERT INTO audit.positions (topic, kafka_partition, next_offset, last_entry_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (topic, kafka_partition) DO UPDATE \
             SET next_offset = EXCLUDED.next_offset, last_entry_at = EXCLUDED.last_entry_at, \
                 projected_at = now() \
             WHERE audit.positions.next_offset < EXCLUDED.next_offset",
        )
        .bind(topic)
        .bind(partition)
        .bind(offset + 1)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn ts(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::Internal(format!("timestamp {micros} out of range")))
}

async fn insert_access(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    e: &AccessEvent,
    partition: i32,
    offset: i64,
) -> Result<()> {
    let occurred = ts(e.envelope.occurred_at)?;
    let inserted = sqlx::query(
        "INSERT INTO audit.access (event_id, occurred_at, recorded_at, request_id, user_id, \
         organisation, ecosystem, purpose, auth_strength, action, resource, person_ids, decision, \
         reason, policy_version, agreement_version, kafka_partition, kafka_offset) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) \
         ON CONFLICT DO NOTHING",
    )
    .bind(e.envelope.event_id)
    .bind(occurred)
    .bind(ts(e.envelope.recorded_at)?)
    .bind(&e.request_id)
    .bind(&e.user)
    .bind(&e.organisation)
    .bind(&e.ecosystem)
    .bind(&e.purpose)
    .bind(&e.auth_strength)
    .bind(&e.action)
    .bind(&e.resource)
    .bind(&e.person_ids)
    .bind(e.decision.as_str())
    .bind(&e.reason)
    .bind(&e.policy_version)
    .bind(&e.agreement_version)
    .bind(partition)
    .bind(offset)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted > 0 && !e.person_ids.is_empty() {
        sqlx::query(
            "INSERT INTO audit.access_person (person_id, occurred_at, event_id) \
             SELECT p, $2, $3 FROM UNNEST($1::text[]) AS p ON CONFLICT DO NOTHING",
        )
        .bind(&e.person_ids)
        .bind(occurred)
        .bind(e.envelope.event_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The envelope fields of a canonical event that names a person.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonEventRow {
    pub event_id: Uuid,
    pub person_id: String,
    pub occurred_at: i64,
    pub event_type: String,
    pub producer_organisation: String,
    pub actor: Option<String>,
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Uuid(u) => Some(u.to_string()),
        Value::Union(_, inner) => text(inner),
        _ => None,
    }
}

fn micros(v: &Value) -> Option<i64> {
    match v {
        Value::TimestampMicros(t) | Value::Long(t) | Value::LocalTimestampMicros(t) => Some(*t),
        Value::TimestampMillis(t) => Some(t * 1000),
        _ => None,
    }
}

/// Reads the envelope and `person_id` of any decoded canonical event; `None` for an event that
/// names no person (it has no place in a person's timeline).
pub fn person_event(name: &str, value: &Value) -> Option<PersonEventRow> {
    let envelope = field(value, "envelope")?;
    Some(PersonEventRow {
        event_id: text(field(envelope, "event_id")?)?.parse().ok()?,
        person_id: text(field(value, "person_id")?)?,
        occurred_at: micros(field(envelope, "occurred_at")?)?,
        event_type: name.to_owned(),
        producer_organisation: text(field(envelope, "producer_organisation")?)?,
        actor: field(envelope, "actor").and_then(text),
    })
}

async fn insert_person_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    r: &PersonEventRow,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit.person_events (event_id, person_id, occurred_at, event_type, \
         producer_organisation, actor, kafka_topic, kafka_partition, kafka_offset) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING",
    )
    .bind(r.event_id)
    .bind(&r.person_id)
    .bind(ts(r.occurred_at)?)
    .bind(&r.event_type)
    .bind(&r.producer_organisation)
    .bind(&r.actor)
    .bind(topic)
    .bind(partition)
    .bind(offset)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
