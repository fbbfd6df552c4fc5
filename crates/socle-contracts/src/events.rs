//! The registry's changes as Avro events on `socle.schemas`: who registered, deleted or
//! changed the compatibility of what, and when.
//!
//! **Bootstrapping.** The registry cannot encode its own events through an HTTP client of
//! itself before it serves. So [`start`] registers the three event contracts
//! (`schemas/registry/*.avsc`) directly in its store, in-process, under their
//! `TopicRecordNameStrategy` subjects with `BACKWARD_TRANSITIVE`, and encodes every event
//! with the ids the registry assigned itself: any consumer decodes them with
//! `GET /schemas/ids/{id}` like any other event. Those first registrations are events too.
//!
//! **Nothing lost.** Each change is written to the registry's outbox (`registry.events`) in
//! the same PostgreSQL transaction as the change itself ([`Registry::with_events`]). The
//! relay spawned here publishes pending events in commit order with socle's idempotent,
//! `acks=all` producer and marks them published only after the broker's acknowledgement; the
//! registry's [`socle_registry::RegistrationSink`] hook only wakes it up. If Kafka is
//! unreachable, events wait in PostgreSQL (surviving restarts) and the relay retries with a
//! growing delay (up to 30 s); once `max_backlog` events wait, the registry refuses changes
//! with a 503 (error code 50301) — back-pressure, never a silent drop. A publication whose
//! acknowledgement was lost may be repeated: the event id (UUIDv7, fixed at commit) lets
//! consumers drop the duplicate.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use socle_domain::Envelope;
use socle_kafka::framing::Frame;
use socle_kafka::schemas::Contract;
use socle_kafka::EventProducer;
use socle_registry::{RegistrationKind, RegistrationRecord, RegistrationSink, Registry};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::subjects::COMPATIBILITY;
use crate::{Error, Result};

/// The principal of the registry's own registrations.
pub const SELF_PRINCIPAL: &str = "socle-registry";

/// Events leased per batch.
const BATCH: i64 = 200;

/// Longest delay between two attempts while Kafka fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often the relay looks for events without being woken (other instances' changes).
const POLL: Duration = Duration::from_secs(1);

/// Where and how registry events are published.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub brokers: String,
    /// `socle.schemas` in production.
    pub topic: String,
    /// `producer_organisation` of the events' envelope (SIRET of the backbone's operator).
    pub organisation: String,
    pub delivery_timeout: Duration,
    /// Unpublished events beyond which the registry refuses changes.
    pub max_backlog: i64,
}

fn contract(name: &'static str, raw: &'static str) -> Contract {
    Contract {
        name,
        raw,
        schema: apache_avro::Schema::parse_str(raw)
            .unwrap_or_else(|e| panic!("compiled-in schema {name} does not parse: {e}")),
    }
}

/// The three event contracts, compiled in (a unit test parses them).
fn contracts() -> [Contract; 3] {
    [
        contract(
            "socle.registry.SchemaRegistered",
            include_str!("../../../schemas/registry/SchemaRegistered.avsc"),
        ),
        contract(
            "socle.registry.SchemaDeleted",
            include_str!("../../../schemas/registry/SchemaDeleted.avsc"),
        ),
        contract(
            "socle.registry.CompatibilityChanged",
            include_str!("../../../schemas/registry/CompatibilityChanged.avsc"),
        ),
    ]
}

/// The event contracts with the ids the registry gave them.
struct Encoder {
    registered: (Contract, u32),
    deleted: (Contract, u32),
    compatibility: (Contract, u32),
    organisation: String,
}

#[derive(Serialize)]
struct Reference {
    name: String,
    subject: String,
    version: i32,
}

#[derive(Serialize)]
struct SchemaRegistered {
    envelope: Envelope,
    subject: String,
    version: i32,
    schema_id: i32,
    schema_type: String,
    schema: String,
    references: Vec<Reference>,
    registered_by: String,
    registered_at: i64,
}

#[derive(Serialize)]
struct SchemaDeleted {
    envelope: Envelope,
    subject: String,
    version: i32,
    schema_id: i32,
    permanent: bool,
    deleted_by: String,
    deleted_at: i64,
}

#[derive(Serialize)]
struct CompatibilityChanged {
    envelope: Envelope,
    subject: Option<String>,
    compatibility: String,
    previous: Option<String>,
    changed_by: String,
    changed_at: i64,
}

impl Encoder {
    /// The Kafka key (the subject, `""` for the global level) and the framed value.
    fn encode(&self, seq: i64, record: &RegistrationRecord) -> Result<(String, Vec<u8>)> {
        let bad = |message: String| Error::BadRecord { seq, message };
        let event_id = uuid::Uuid::parse_str(&record.event_id)
            .map_err(|e| bad(format!("event id {:?}: {e}", record.event_id)))?;
        let at = socle_domain::time::to_micros(record.at);
        let mut envelope =
            Envelope::new(self.organisation.clone(), record.at).with_actor(record.actor.clone());
        envelope.event_id = event_id;
        envelope.recorded_at = at;
        let (body, id) = match record.kind {
            RegistrationKind::Registered => {
                let event = SchemaRegistered {
                    envelope,
                    subject: record.subject.clone(),
                    version: record.version,
                    schema_id: record.id,
                    schema_type: record.schema_type.clone(),
                    schema: record.schema.clone(),
                    references: record
                        .references
                        .iter()
                        .map(|r| Reference {
                            name: r.name.clone(),
                            subject: r.subject.clone(),
                            version: r.version,
                        })
                        .collect(),
                    registered_by: record.actor.clone(),
                    registered_at: at,
                };
                let (c, id) = &self.registered;
                (socle_kafka::codec::to_datum(&event, c)?, *id)
            }
            RegistrationKind::SoftDeleted | RegistrationKind::HardDeleted => {
                let event = SchemaDeleted {
                    envelope,
                    subject: record.subject.clone(),
                    version: record.version,
                    schema_id: record.id,
                    permanent: record.kind == RegistrationKind::HardDeleted,
                    deleted_by: record.actor.clone(),
                    deleted_at: at,
                };
                let (c, id) = &self.deleted;
                (socle_kafka::codec::to_datum(&event, c)?, *id)
            }
            RegistrationKind::CompatibilityChanged => {
                let event = CompatibilityChanged {
                    envelope,
                    subject: (!record.subject.is_empty()).then(|| record.subject.clone()),
                    compatibility: record
                        .compatibility
                        .clone()
                        .ok_or_else(|| bad("compatibility change without a level".into()))?,
                    previous: record.previous.clone(),
                    changed_by: record.actor.clone(),
                    changed_at: at,
                };
                let (c, id) = &self.compatibility;
                (socle_kafka::codec::to_datum(&event, c)?, *id)
            }
        };
        Ok((record.subject.clone(), Frame::encode(id, &body)))
    }
}

/// Wakes the relay when the registry commits a change (the `RegistrationSink` hook).
struct Wake(Arc<Notify>);

impl RegistrationSink for Wake {
    fn record(&self, _record: RegistrationRecord) {
        // The event itself is already in the outbox, committed with the change.
        self.0.notify_one();
    }
}

/// Turns on registration events for `registry`: registers the event contracts in its own
/// store (see the module docs), then spawns the relay that publishes the outbox to
/// `config.topic` until `shutdown`. Returns the registry to serve and the relay's task.
///
/// # Errors
/// [`Error::Store`] when PostgreSQL fails or the registry refuses its own contracts (409 if
/// a contract change breaks compatibility, 42205 in read-only mode); [`Error::Kafka`] when the
/// producer cannot be configured. An unreachable Kafka is not an error here: events wait.
pub async fn start(
    registry: Registry,
    config: EventsConfig,
    shutdown: CancellationToken,
) -> Result<(Registry, tokio::task::JoinHandle<()>)> {
    let wake = Arc::new(Notify::new());
    let registry = registry
        .with_events(config.max_backlog)
        .with_sink(Arc::new(Wake(wake.clone())));
    let [registered, deleted, compatibility] = contracts();
    let mut ids = Vec::with_capacity(3);
    for c in [&registered, &deleted, &compatibility] {
        let subject = format!("{}-{}", config.topic, c.name);
        registry
            .set_compatibility(&subject, COMPATIBILITY, SELF_PRINCIPAL)
            .await?;
        // Looked up first: a registry in read-only mode still starts once they are there.
        let id = match registry.lookup_schema(&subject, c.raw).await? {
            Some(id) => id,
            None => {
                registry
                    .register_schema(&subject, c.raw, SELF_PRINCIPAL)
                    .await?
            }
        };
        ids.push(u32::try_from(id).map_err(|_| Error::BadRecord {
            seq: 0,
            message: format!("schema id {id} of {subject} is negative"),
        })?);
    }
    let encoder = Encoder {
        registered: (registered, ids[0]),
        deleted: (deleted, ids[1]),
        compatibility: (compatibility, ids[2]),
        organisation: config.organisation.clone(),
    };
    let producer = EventProducer::new(&config.brokers, config.delivery_timeout)?;
    let relay = Relay {
        registry: registry.clone(),
        encoder,
        producer,
        topic: config.topic,
        wake,
    };
    // Shown on /metrics from the start, at zero, rather than after the first occurrence.
    std::sync::LazyLock::force(&crate::metrics::PUBLISHED);
    std::sync::LazyLock::force(&crate::metrics::FAILURES);
    std::sync::LazyLock::force(&crate::metrics::WAITING);
    tracing::info!(topic = %relay.topic, "registry events: publishing the outbox");
    let handle = tokio::spawn(relay.run(shutdown));
    Ok((registry, handle))
}

struct Relay {
    registry: Registry,
    encoder: Encoder,
    producer: EventProducer,
    topic: String,
    wake: Arc<Notify>,
}

impl Relay {
    async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.publish_pending().await {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(250);
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(250);
                    if let Ok(waiting) = self.registry.events_backlog().await {
                        crate::metrics::WAITING.set(waiting);
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
                Err(e) => {
                    crate::metrics::FAILURES.inc();
                    let waiting = self.registry.events_backlog().await.unwrap_or(-1);
                    crate::metrics::WAITING.set(waiting);
                    tracing::warn!(
                        error = %socle_kafka_error_chain(&e),
                        waiting,
                        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                        "registry events not published yet; kept in the outbox and retried"
                    );
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // Last attempt at what is pending; what fails stays in the outbox for the next start.
        if let Err(e) = self.publish_pending().await {
            tracing::warn!(error = %socle_kafka_error_chain(&e), "registry events left in the outbox at shutdown");
        }
    }

    /// Publishes one batch of pending events in order; returns how many.
    async fn publish_pending(&self) -> Result<usize> {
        let Some(batch) = self.registry.pending_events(BATCH).await? else {
            return Ok(0); // another instance is publishing
        };
        let mut done: Option<i64> = None;
        let mut failure = None;
        for (seq, record) in &batch.events {
            let sent = match self.encoder.encode(*seq, record) {
                Ok((key, payload)) => self
                    .producer
                    .send(&self.topic, &key, &payload)
                    .await
                    .map_err(Error::from),
                Err(e) => Err(e),
            };
            match sent {
                Ok(_) => done = Some(*seq),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let count = batch
            .events
            .iter()
            .take_while(|(s, _)| done.is_some_and(|d| *s <= d))
            .count();
        match done {
            Some(seq) => {
                batch.published(seq).await?;
                crate::metrics::PUBLISHED.inc_by(u64::try_from(count).unwrap_or(u64::MAX));
            }
            None => drop(batch),
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }
}

/// An error and its causes, for logs.
fn socle_kafka_error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_contracts_parse_under_their_names() {
        for c in contracts() {
            let apache_avro::Schema::Record(r) = &c.schema else {
                panic!("{} is not a record", c.name);
            };
            assert_eq!(r.name.fullname(None), c.name);
        }
    }

    fn record(kind: RegistrationKind) -> RegistrationRecord {
        RegistrationRecord {
            event_id: uuid::Uuid::now_v7().to_string(),
            kind,
            subject: "t-socle.x.Y".into(),
            version: 2,
            id: 7,
            schema_type: "AVRO".into(),
            schema: r#"{"type":"string"}"#.into(),
            references: vec![socle_registry::SchemaReference {
                name: "n".into(),
                subject: "s".into(),
                version: 1,
            }],
            compatibility: Some("FULL".into()),
            previous: None,
            actor: "alice".into(),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn every_kind_encodes_under_its_contract_and_id() {
        let [r, d, c] = contracts();
        let encoder = Encoder {
            registered: (r, 11),
            deleted: (d, 12),
            compatibility: (c, 13),
            organisation: "90000100500012".into(),
        };
        for (kind, id) in [
            (RegistrationKind::Registered, 11),
            (RegistrationKind::SoftDeleted, 12),
            (RegistrationKind::HardDeleted, 12),
            (RegistrationKind::CompatibilityChanged, 13),
        ] {
            let rec = record(kind);
            let (key, payload) = encoder.encode(1, &rec).expect("encodes");
            assert_eq!(key, "t-socle.x.Y");
            let frame = Frame::parse(&payload).expect("framed");
            assert_eq!(frame.schema_id, id);
        }
        let mut bad = record(RegistrationKind::Registered);
        bad.event_id = "not-a-uuid".into();
        assert!(matches!(
            encoder.encode(9, &bad),
            Err(Error::BadRecord { seq: 9, .. })
        ));
        let mut bad = record(RegistrationKind::CompatibilityChanged);
        bad.compatibility = None;
        assert!(matches!(
            encoder.encode(3, &bad),
            Err(Error::BadRecord { seq: 3, .. })
        ));
    }
}
