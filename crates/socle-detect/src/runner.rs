//! `socle detect`: the detector on the live access topic, its alerts and sanctions written to
//! PostgreSQL (what the API reads) and published to the alerts and sanctions topics.
//!
//! One event at a time, no batching: what matters is the delay from a read to a suspension.
//! Offsets are committed to Kafka after the event is processed (at least once): after a crash
//! the windows are rebuilt from the committed position, and an alert raised just before the
//! crash may be raised again (a sanction already in force is not imposed twice). Several
//! instances share the topic's partitions; since the access topic is keyed by user, each actor's
//! window lives in exactly one instance. Organisation windows are per instance (a partial view
//! when there are several).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use socle_domain::{AccessEvent, Envelope};
use socle_kafka::schemas::ACCESS_EVENT;
use socle_kafka::{Codec, EventProducer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::detector::{Alert, Detector, Observation, SanctionKind};
use crate::events::{
    AlertRaised, SanctionChanged, ALERT_RAISED, SANCTION_CHANGED, SOCLE_ORGANISATION,
};
use crate::rules::Rules;
use crate::store::{self, Sanction};
use crate::Result;

/// How the detector runs.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    pub brokers: String,
    pub access_topic: String,
    pub alerts_topic: String,
    pub sanctions_topic: String,
    pub group: String,
    /// Kafka's `group.instance.id` (static group membership), unique and stable per instance:
    /// a restarted instance gets its partitions back at once instead of after
    /// `session.timeout.ms` (10 s). `None`: dynamic membership. Two live instances with the same
    /// id fence each other: the older one stops.
    pub group_instance_id: Option<String>,
    pub rules: Rules,
}

/// Counters a benchmark or a test can read while the detector runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub observed: AtomicU64,
    pub alerts: AtomicU64,
    pub sanctions: AtomicU64,
    /// Seconds between an event's `recorded_at` and the moment the detector had judged it.
    pub lags: Mutex<Vec<f64>>,
}

/// Runs the detector until `shutdown` is cancelled.
///
/// # Errors
/// Kafka configuration errors; PostgreSQL or Kafka errors while recording an alert (the event is
/// then read again on restart).
pub async fn run(
    config: DetectConfig,
    pool: PgPool,
    codec: Arc<Codec>,
    producer: EventProducer,
    progress: Option<Arc<Progress>>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut client = socle_kafka::client_config(&config.brokers);
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        .set("session.timeout.ms", "10000");
    if let Some(id) = config
        .group_instance_id
        .as_deref()
        .filter(|id| !id.is_empty())
    {
        client.set("group.instance.id", id);
    }
    let consumer: StreamConsumer = client.create().map_err(socle_kafka::Error::from)?;
    consumer
        .subscribe(&[&config.access_topic])
        .map_err(socle_kafka::Error::from)?;
    let mut detector = Detector::new(config.rules.clone());
    info!(topic = %config.access_topic, group = %config.group, "detector started");
    loop {
        let m = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let m = match m {
            Ok(m) => m,
            // Fenced by another instance with the same group.instance.id, or another fatal
            // consumer error: this consumer can never be used again.
            Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => {
                return Err(socle_kafka::Error::from(e).into())
            }
            Err(e) => {
                warn!(error = %e, "kafka consumer error");
                continue;
            }
        };
        let event: Option<AccessEvent> = match m.payload() {
            None => None,
            Some(p) => match codec.decode_as::<AccessEvent>(p, &ACCESS_EVENT).await {
                Ok(e) => Some(e),
                Err(e) if e.is_poison() => {
                    warn!(partition = m.partition(), offset = m.offset(), error = %e,
                          "access event does not decode; not judged");
                    None
                }
                Err(e) => return Err(e.into()),
            },
        };
        if let Some(event) = event {
            let alerts = detector.observe(&Observation::from(&event));
            for alert in &alerts {
                respond(
                    &pool,
                    &codec,
                    &producer,
                    &config,
                    alert,
                    progress.as_deref(),
                )
                .await?;
            }
            if let Some(p) = &progress {
                p.observed.fetch_add(1, Ordering::Relaxed);
                let lag = (Utc::now().timestamp_micros() - event.envelope.recorded_at) as f64 / 1e6;
                p.lags.lock().unwrap_or_else(|e| e.into_inner()).push(lag);
            }
        }
        if let Err(e) = consumer.store_offset_from_message(&m) {
            warn!(error = %e, "could not store the offset");
        }
    }
    info!("detector stopped");
    Ok(())
}

/// Records an alert and the sanction it asks for (unless one as severe is in force), then
/// publishes both.
async fn respond(
    pool: &PgPool,
    codec: &Codec,
    producer: &EventProducer,
    config: &DetectConfig,
    alert: &Alert,
    progress: Option<&Progress>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    store::record_alert(&mut tx, alert).await?;
    let mut sanction = None;
    if let (Some(kind), Some(user)) = (alert.response, &alert.user) {
        let active = store::active(&mut *tx, user).await?;
        if !active.iter().any(|s| s.kind >= kind) {
            let now = Utc::now();
            let expires = match kind {
                SanctionKind::Suspend => None,
                SanctionKind::Throttle => {
                    Some(now + chrono::Duration::seconds(config.rules.throttle_secs))
                }
                SanctionKind::RequireMfa => {
                    Some(now + chrono::Duration::seconds(config.rules.require_mfa_secs))
                }
            };
            let s = Sanction {
                sanction_id: Uuid::now_v7(),
                user: user.clone(),
                kind,
                reason: alert.rule.clone(),
                alert_id: Some(alert.alert_id),
                imposed_at: now,
                expires_at: expires,
            };
            store::impose(&mut tx, &s).await?;
            sanction = Some(s);
        }
    }
    tx.commit().await?;
    warn!(subject = %alert.subject, rule = %alert.rule, response = ?alert.response.map(SanctionKind::as_str),
          distinct_persons = alert.figures.distinct_persons, lookups = alert.figures.lookups, "alert");
    let payload = codec
        .encode(
            &config.alerts_topic,
            &ALERT_RAISED,
            &AlertRaised::from_alert(alert),
        )
        .await?;
    producer
        .send(&config.alerts_topic, &alert.subject, &payload)
        .await?;
    if let Some(p) = progress {
        p.alerts.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(s) = sanction {
        publish_sanction(
            codec,
            producer,
            &config.sanctions_topic,
            &s,
            "imposed",
            &s.reason,
            "socle-detect",
        )
        .await?;
        if let Some(p) = progress {
            p.sanctions.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Publishes a sanction change on the sanctions topic.
///
/// # Errors
/// Registry or Kafka errors.
pub async fn publish_sanction(
    codec: &Codec,
    producer: &EventProducer,
    topic: &str,
    s: &Sanction,
    change: &str,
    reason: &str,
    by: &str,
) -> Result<()> {
    let event = SanctionChanged {
        envelope: Envelope::new(SOCLE_ORGANISATION, Utc::now()).with_actor(by),
        sanction_id: s.sanction_id.to_string(),
        user: s.user.clone(),
        kind: s.kind.as_str().to_owned(),
        change: change.to_owned(),
        reason: reason.to_owned(),
        alert_id: s.alert_id.map(|a| a.to_string()),
        by: by.to_owned(),
        expires_at: s.expires_at.map(|e| e.timestamp_micros()),
    };
    let payload = codec.encode(topic, &SANCTION_CHANGED, &event).await?;
    producer.send(topic, &s.user, &payload).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // each is a distinct, named input of one reviewer action
/// A reviewer lifts `user`'s sanctions (only `kind` if given): recorded, then published.
///
/// # Errors
/// [`crate::Error::NothingToLift`] when no sanction is in force; database, registry or Kafka errors.
pub async fn lift(
    pool: &PgPool,
    codec: &Codec,
    producer: &EventProducer,
    sanctions_topic: &str,
    user: &str,
    kind: Option<SanctionKind>,
    by: &str,
    reason: &str,
) -> Result<Vec<Sanction>> {
    let lifted = store::lift(pool, user, kind, by, reason).await?;
    if lifted.is_empty() {
        return Err(crate::Error::NothingToLift(user.to_owned()));
    }
    for s in &lifted {
        publish_sanction(codec, producer, sanctions_topic, s, "lifted", reason, by).await?;
    }
    Ok(lifted)
}
