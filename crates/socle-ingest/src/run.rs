//! `socle ingest`: the consumer loop over the operators' ingress topics, exactly once.
//!
//! Each batch (up to `batch_size` messages or `batch_timeout`, whichever comes first) is
//! decided entirely before anything is sent: every message becomes either a canonical event for
//! the persons topic or a dead letter. Then, in **one Kafka transaction**, the batch's outputs
//! are produced and the consumer's next offsets are committed with
//! `send_offsets_to_transaction` (with the consumer's group metadata, so a rebalance fences a
//! stale instance). Downstream consumers read with `isolation.level=read_committed`, so they
//! see a batch's events if and only if its input offsets moved: after a crash or an abort the
//! batch is read again and produces the same outputs once.
//!
//! A message that can never be accepted is dead-lettered, never retried: it cannot stall its
//! partition. What retrying can cure (registry or PostgreSQL unreachable, a transaction that
//! failed) is retried with a growing delay, the batch rewound to its first offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use socle_domain::reference::Referential;
use socle_domain::time::to_micros;
use socle_kafka::framing::Frame;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::canonical::{DeadLetter, DeadLetterHeader};
use crate::canonicalize::{canonical, encode};
use crate::contracts;
use crate::decode;
use crate::follows::{self, Claim};
use crate::ingress::Ingress;
use crate::keys::{get_or_create_many, PersonKey};
use crate::registry::Registry;
use crate::rules::{self, Context, Rejection};
use crate::{Error, Result};

/// An ingress topic and the operator that alone may publish on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub topic: String,
    /// One of `socle_domain::person::OPERATORS`.
    pub operator: String,
}

/// How `socle ingest` runs.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub brokers: String,
    pub registry_url: String,
    /// Consumer group shared by every instance.
    pub group: String,
    /// Unique and stable per instance (e.g. `socle-ingest-0` for the first pod): a restarted
    /// instance fences its previous incarnation's open transaction at once.
    pub transactional_id: String,
    /// Kafka's `group.instance.id` (static group membership), unique and stable per instance
    /// like `transactional_id`: a restarted instance (after a crash, `kill -9`) gets its
    /// partitions back at once instead of after `session.timeout.ms` (10 s). `None`: dynamic
    /// membership. Two live instances with the same id fence each other: the older one stops.
    pub group_instance_id: Option<String>,
    pub sources: Vec<Source>,
    /// The canonical persons topic.
    pub persons_topic: String,
    pub deadletter_topic: String,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    /// Kafka's `transaction.timeout.ms`: an instance that dies mid-transaction holds back
    /// read_committed consumers at most this long (less if it restarts with the same id).
    pub transaction_timeout: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub published: u64,
    pub dead_lettered: u64,
    pub batches: u64,
    pub aborted: u64,
}

/// One message taken off an ingress topic, owned.
#[derive(Debug, Clone)]
pub struct Taken {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch, when the broker gave one.
    pub timestamp: Option<i64>,
}

impl Taken {
    fn from_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Taken {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Taken {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: m.timestamp().to_millis(),
        }
    }
}

/// A message's fate before sealing.
#[derive(Debug)]
enum Verdict {
    Accept {
        operator: String,
        person_id: Uuid,
        message: Box<Ingress>,
        schema_id: u32,
    },
    Reject {
        rejection: Rejection,
        schema_id: Option<u32>,
        producer_organisation: Option<String>,
    },
}

/// One record to produce in the batch's transaction.
#[derive(Debug)]
struct Output {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// The decisions of ingestion, without the consumer loop: usable for one message at a time
/// (tests, the API's write commands) as well as by [`run`].
#[derive(Debug)]
pub struct Ingestor {
    pool: PgPool,
    registry: Registry,
    referential: Arc<Referential>,
    operators: HashMap<String, String>,
    persons_topic: String,
    deadletter_topic: String,
    /// Schema ids of the canonical contracts on the persons topic, by record name.
    canonical_ids: HashMap<&'static str, u32>,
    dead_letter_id: u32,
}

impl Ingestor {
    /// Registers the ingress contracts under each source topic (so operators' serializers find
    /// them), the canonical contracts under the persons topic and the dead-letter contract.
    ///
    /// # Errors
    /// [`Error::Registry`] when the registry refuses or cannot be reached; [`Error::Invalid`]
    /// for a source with an unknown operator.
    pub async fn new(
        config: &IngestConfig,
        pool: PgPool,
        referential: Arc<Referential>,
    ) -> Result<Self> {
        decode::limit_allocations();
        let registry = Registry::new(&config.registry_url)?;
        let mut operators = HashMap::new();
        for s in &config.sources {
            if rules::ecosystem_of(&s.operator).is_none() {
                return Err(Error::Invalid(format!(
                    "ingress topic {}: unknown operator {:?}; expected one of {:?}",
                    s.topic,
                    s.operator,
                    socle_domain::person::OPERATORS
                )));
            }
            operators.insert(s.topic.clone(), s.operator.clone());
            for c in contracts::ingress() {
                registry.register(&s.topic, c).await?;
            }
        }
        let mut canonical_ids = HashMap::new();
        for c in contracts::canonical() {
            canonical_ids.insert(c.name, registry.register(&config.persons_topic, c).await?);
        }
        let dead_letter_id = registry
            .register(&config.deadletter_topic, &contracts::DEAD_LETTER)
            .await?;
        Ok(Ingestor {
            pool,
            registry,
            referential,
            operators,
            persons_topic: config.persons_topic.clone(),
            deadletter_topic: config.deadletter_topic.clone(),
            canonical_ids,
            dead_letter_id,
        })
    }

    /// Decodes and checks one message.
    async fn judge(&self, taken: &Taken, now: chrono::DateTime<chrono::Utc>) -> Result<Verdict> {
        let reject = |rejection: Rejection, schema_id: Option<u32>, org: Option<String>| {
            Ok(Verdict::Reject {
                rejection,
                schema_id,
                producer_organisation: org,
            })
        };
        let Some(operator) = self.operators.get(&taken.topic) else {
            return Err(Error::Internal(format!(
                "message from {}, which is not an ingress topic",
                taken.topic
            )));
        };
        let names: Vec<&str> = taken.headers.iter().map(|(k, _)| k.as_str()).collect();
        let frame: Frame<'_> = match decode::frame(taken.payload.as_deref(), &names) {
            Ok(f) => f,
            Err(r) => return reject(r, None, None),
        };
        let id = Some(frame.schema_id);
        let writer = match self.registry.writer(frame.schema_id).await? {
            Ok(w) => w,
            Err(r) => return reject(r, id, None),
        };
        let reader = match &writer.reader {
            Ok(r) => *r,
            Err(r) => return reject(r.clone(), id, None),
        };
        let message = match decode::body(&writer.schema, reader, writer.same, frame.body) {
            Ok(m) => m,
            Err(r) => return reject(r, id, None),
        };
        let ctx = Context {
            referential: &self.referential,
            operator,
            now,
        };
        let org = Some(message.submission().producer_organisation.clone());
        match rules::check(&message, taken.key.as_deref(), &ctx) {
            Ok(person_id) => Ok(Verdict::Accept {
                operator: operator.clone(),
                person_id,
                message: Box::new(message),
                schema_id: frame.schema_id,
            }),
            Err(r) => reject(r, id, org),
        }
    }

    /// The records a batch produces, in input order: canonical events or dead letters.
    async fn decide(&self, batch: &[Taken]) -> Result<Vec<Output>> {
        let now = chrono::Utc::now();
        let recorded_at = to_micros(now);
        let mut verdicts = Vec::with_capacity(batch.len());
        for t in batch {
            verdicts.push(self.judge(t, now).await?);
        }
        // Follows belong to a person and an organisation: checked against the batch itself and
        // the stored follows (new ids claimed), here, before the batch's transaction opens.
        let claims: Vec<Option<Claim>> = verdicts
            .iter()
            .map(|v| match v {
                Verdict::Accept {
                    operator,
                    person_id,
                    message,
                    ..
                } => Claim::of(message, operator, *person_id),
                Verdict::Reject { .. } => None,
            })
            .collect();
        let refusals = follows::check(&self.pool, follows::CORE_SCHEMA, &claims).await?;
        for (verdict, refusal) in verdicts.iter_mut().zip(refusals) {
            if let (
                Some(rejection),
                Verdict::Accept {
                    message, schema_id, ..
                },
            ) = (refusal, &*verdict)
            {
                *verdict = Verdict::Reject {
                    rejection,
                    schema_id: Some(*schema_id),
                    producer_organisation: Some(message.submission().producer_organisation.clone()),
                };
            }
        }
        let need_keys: Vec<Uuid> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Accept {
                    person_id, message, ..
                } if message.has_personal() => Some(*person_id),
                _ => None,
            })
            .collect();
        let keys = get_or_create_many(&self.pool, &need_keys).await?;
        let mut outputs = Vec::with_capacity(batch.len());
        for (taken, verdict) in batch.iter().zip(verdicts) {
            let dead = match verdict {
                Verdict::Accept {
                    operator,
                    person_id,
                    message,
                    ..
                } => {
                    let key = if message.has_personal() {
                        match keys.get(&person_id) {
                            Some(PersonKey::Live(k)) => Some(k),
                            _ => {
                                outputs.push(self.dead_letter(
                                    taken,
                                    Rejection::new(
                                        "pii.key_erased",
                                        format!("person {person_id} was erased: socle keeps no new personal data about them"),
                                        None,
                                    ),
                                    None,
                                    Some(message.submission().producer_organisation.clone()),
                                    recorded_at,
                                )?);
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let (contract, body) =
                        canonical(&message, &operator, person_id, key, recorded_at)?;
                    let id = self
                        .canonical_ids
                        .get(contract.name)
                        .copied()
                        .ok_or_else(|| {
                            Error::Internal(format!("{} not registered", contract.name))
                        })?;
                    outputs.push(Output {
                        topic: self.persons_topic.clone(),
                        key: Some(person_id.to_string().into_bytes()),
                        payload: Frame::encode(id, &body),
                    });
                    None
                }
                Verdict::Reject {
                    rejection,
                    schema_id,
                    producer_organisation,
                } => Some((rejection, schema_id, producer_organisation)),
            };
            if let Some((rejection, schema_id, org)) = dead {
                outputs.push(self.dead_letter(taken, rejection, schema_id, org, recorded_at)?);
            }
        }
        Ok(outputs)
    }

    fn dead_letter(
        &self,
        taken: &Taken,
        rejection: Rejection,
        schema_id: Option<u32>,
        producer_organisation: Option<String>,
        recorded_at: i64,
    ) -> Result<Output> {
        debug!(topic = %taken.topic, partition = taken.partition, offset = taken.offset,
               code = rejection.code, "dead-lettered");
        let letter = DeadLetter {
            envelope: socle_domain::Envelope {
                // Derived from the provenance: a batch read again yields the same id.
                event_id: dead_letter_id(taken),
                occurred_at: taken
                    .timestamp
                    .map_or(recorded_at, |ms| ms.saturating_mul(1000)),
                recorded_at,
                producer_organisation: String::new(),
                actor: Some("socle-ingest".to_owned()),
                correlation_id: None,
                causation_id: None,
                schema_version: 1,
            },
            source_topic: taken.topic.clone(),
            source_partition: taken.partition,
            source_offset: taken.offset,
            source_timestamp: taken.timestamp.map(|ms| ms.saturating_mul(1000)),
            key: taken.key.clone(),
            value: taken.payload.clone(),
            headers: taken
                .headers
                .iter()
                .map(|(k, v)| DeadLetterHeader {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            reason_code: rejection.code.to_owned(),
            reason_detail: Some(rejection.detail),
            field: rejection.field.map(str::to_owned),
            schema_id: schema_id.and_then(|i| i32::try_from(i).ok()),
            producer_organisation,
        };
        Ok(Output {
            topic: self.deadletter_topic.clone(),
            key: taken.key.clone(),
            payload: Frame::encode(
                self.dead_letter_id,
                &encode(&contracts::DEAD_LETTER, &letter)?,
            ),
        })
    }
}

/// The dead letter's event id: a UUIDv8-shaped hash of its provenance.
fn dead_letter_id(taken: &Taken) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest =
        Sha256::digest(format!("{}|{}|{}", taken.topic, taken.partition, taken.offset).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs ingestion until `shutdown` is cancelled; the batch in hand is finished (or aborted and
/// left for the next run) first.
///
/// # Errors
/// Configuration errors, the registry refusing socle's contracts at start, or a fatal Kafka
/// transaction error (e.g. fenced by another instance with the same transactional id).
pub async fn run(
    config: IngestConfig,
    pool: PgPool,
    referential: Arc<Referential>,
    shutdown: CancellationToken,
) -> Result<Totals> {
    let ingestor = Ingestor::new(&config, pool, referential).await?;
    let mut client = socle_kafka::client_config(&config.brokers);
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000");
    if let Some(id) = config
        .group_instance_id
        .as_deref()
        .filter(|id| !id.is_empty())
    {
        client.set("group.instance.id", id);
    }
    let consumer: StreamConsumer = client.create()?;
    let topics: Vec<&str> = config.sources.iter().map(|s| s.topic.as_str()).collect();
    consumer.subscribe(&topics)?;
    let producer: FutureProducer = socle_kafka::client_config(&config.brokers)
        .set("transactional.id", &config.transactional_id)
        .set(
            "transaction.timeout.ms",
            config.transaction_timeout.as_millis().to_string(),
        )
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?;
    let p = producer.clone();
    blocking(move || p.init_transactions(Duration::from_secs(30))).await?;
    info!(topics = ?topics, group = %config.group, transactional_id = %config.transactional_id,
          "ingest started");

    let mut totals = Totals::default();
    let mut delay = RETRY_FIRST;
    loop {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch = Vec::with_capacity(config.batch_size);
        match first {
            Ok(m) => batch.push(Taken::from_message(&m)),
            // Fenced by another instance with the same group.instance.id, or another fatal
            // consumer error: this consumer can never be used again.
            Err(e @ KafkaError::MessageConsumptionFatal(_)) => return Err(e.into()),
            Err(e) => {
                warn!(error = %e, "kafka consumer error");
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + config.batch_timeout;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(Taken::from_message(&m)),
                Ok(Err(e @ KafkaError::MessageConsumptionFatal(_))) => return Err(e.into()),
                Ok(Err(e)) => warn!(error = %e, "kafka consumer error"),
                Err(_) => break,
            }
        }
        match process(&ingestor, &consumer, &producer, &batch).await {
            Ok((published, dead)) => {
                totals.batches += 1;
                totals.published += published;
                totals.dead_lettered += dead;
                delay = RETRY_FIRST;
            }
            Err(e) if e.is_transient() => {
                // The batch is dropped and read again from its first offsets (never retried
                // from memory: after a rebalance another instance may own its partitions).
                totals.aborted += 1;
                warn!(error = %e, retry_in = ?delay, "batch not published, will read it again");
                rewind(&consumer, &batch);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
    consumer.unsubscribe();
    info!(?totals, "ingest stopped");
    Ok(totals)
}

/// Decides `batch` and publishes its outputs and its offsets in one transaction.
async fn process(
    ingestor: &Ingestor,
    consumer: &StreamConsumer,
    producer: &FutureProducer,
    batch: &[Taken],
) -> Result<(u64, u64)> {
    let outputs = ingestor.decide(batch).await?;
    let published = outputs
        .iter()
        .filter(|o| o.topic == ingestor.persons_topic)
        .count() as u64;
    let dead = outputs.len() as u64 - published;

    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for t in batch {
        let e = next.entry((&t.topic, t.partition)).or_insert(t.offset + 1);
        *e = (*e).max(t.offset + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in &next {
        offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    let group = consumer
        .group_metadata()
        .ok_or_else(|| Error::Internal("consumer has no group metadata".into()))?;

    producer.begin_transaction()?;
    let result = async {
        let mut pending = Vec::with_capacity(outputs.len());
        for o in &outputs {
            let mut record = FutureRecord::to(&o.topic).payload(&o.payload);
            if let Some(k) = &o.key {
                record = record.key(k);
            }
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    // A full local queue is back-pressure: wait for the oldest delivery.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(Error::Consumer(e)),
                }
            }
        }
        for f in pending {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(Error::Consumer(e)),
                Err(_) => return Err(Error::Internal("delivery report dropped".into())),
            }
        }
        let p = producer.clone();
        blocking(move || p.send_offsets_to_transaction(&offsets, &group, Duration::from_secs(30)))
            .await?;
        let p = producer.clone();
        blocking(move || p.commit_transaction(Duration::from_secs(60))).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        if is_fatal(&e) {
            return Err(e);
        }
        let p = producer.clone();
        if let Err(abort) = blocking(move || p.abort_transaction(Duration::from_secs(30))).await {
            warn!(error = %abort, "abort failed");
            if is_fatal(&abort) {
                return Err(abort);
            }
        }
        // Whatever went wrong, the transaction is gone: the batch must be read again.
        return Err(Error::Aborted(Box::new(e)));
    }
    debug!(messages = batch.len(), published, dead, "batch committed");
    Ok((published, dead))
}

fn is_fatal(e: &Error) -> bool {
    matches!(e, Error::Consumer(KafkaError::Transaction(t)) if t.is_fatal())
}

/// Puts each partition of `batch` back to the batch's first offset, so that an aborted batch
/// is read again. A partition no longer assigned is left to its new owner, which starts from
/// the committed offset.
fn rewind(consumer: &StreamConsumer, batch: &[Taken]) {
    let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for t in batch {
        let e = first.entry((&t.topic, t.partition)).or_insert(t.offset);
        *e = (*e).min(t.offset);
    }
    for ((topic, partition), offset) in first {
        if let Err(e) = consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            debug!(topic, partition, error = %e, "not rewound (no longer assigned?)");
        }
    }
}

async fn blocking<F>(f: F) -> Result<()>
where
    F: FnOnce() -> rdkafka::error::KafkaResult<()> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking Kafka call: {e}")))?
        .map_err(Error::Consumer)
}
