//! The projector: canonical person events into PostgreSQL read models, exactly once.
//!
//! Exactly-once rests on three things, after the Kafka consumer pattern "storing offsets outside
//! Kafka":
//! 1. each batch's rows and the next offset of each of its partitions are written in **one**
//!    PostgreSQL transaction;
//! 2. on assignment the consumer seeks to the offsets stored in PostgreSQL (not Kafka's);
//! 3. inside that transaction the offset rows are locked and any message below the stored next
//!    offset is skipped, so a batch replayed after a crash or a rebalance is a no-op.
//!
//! Kafka's committed offsets are still written after each transaction (for lag monitoring), and
//! are never ahead of PostgreSQL, so even a fallback to them loses nothing.
//!
//! A message that can never be applied (bad frame, undecodable, wrong type, personal data that
//! does not open, a follow fact that is not its sender's: `follow.id_conflict`,
//! `follow.not_owned`) is recorded in `projector.rejected` with its reason and bytes in the same
//! transaction, and the partition moves on: a poison message never stalls it.

mod context;
pub mod events;
pub mod feed;
pub mod materialize;
pub mod metrics;
pub mod replay;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_kafka::Codec;
use socle_store::core::PersonFact;
use socle_store::offsets::Rejected;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::context::OffsetsContext;
pub use crate::materialize::{Layout, Models};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kafka(#[from] socle_kafka::Error),
    #[error("kafka: {0}")]
    Consumer(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Store(#[from] socle_store::Error),
    #[error(transparent)]
    Agreements(#[from] socle_agreements::Error),
}

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub brokers: String,
    /// The canonical persons topic.
    pub topic: String,
    /// Consumer group, also the name under which offsets are kept in PostgreSQL.
    pub group: String,
    /// A batch is written when it has this many messages...
    pub batch_size: usize,
    /// ...or when its first message is this old, whichever comes first.
    pub batch_timeout: Duration,
}

/// Which events a build applies: all of them (live, replay), those up to an instant (as-of),
/// or one person's (a person's history).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events that occurred at or before this instant.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this person's events.
    pub person: Option<Uuid>,
}

impl Filter {
    fn keeps(&self, fact: &PersonFact) -> bool {
        self.until.is_none_or(|t| fact.occurred_at <= t)
            && self.person.is_none_or(|p| fact.person_id == p)
    }
}

/// Advisory lock key taken (shared) by every live batch, and exclusively by a replay while it
/// swaps a rebuilt model in: the swap sees the live offsets standing still.
pub(crate) const LIVE_LOCK: &str = "socle.projector.live";

/// One message taken off the topic, owned.
#[derive(Debug)]
pub(crate) struct Taken {
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
}

/// Runs the projector until `shutdown` is cancelled, with dynamic group membership (see
/// [`run_as`]). The batch in hand is finished first.
///
/// # Errors
/// Kafka configuration errors, or PostgreSQL errors that retrying does not cure.
pub async fn run(
    config: ProjectorConfig,
    pool: PgPool,
    codec: Arc<Codec>,
    models: Models,
    shutdown: CancellationToken,
) -> Result<()> {
    run_as(config, None, pool, codec, models, shutdown).await
}

/// As [`run`], as the static member `group_instance_id` of the consumer group (Kafka's
/// `group.instance.id`; `None` or empty: dynamic membership). Unique and stable per instance
/// (`socle project` passes `projector.group_instance_id`, default `socle-projector-0`): a
/// restarted instance (crash, `kill -9`) gets its partitions back at once instead of after
/// `session.timeout.ms` (10 s). Two live instances with the same id fence each other: the
/// older one stops with a fatal consumer error.
///
/// # Errors
/// As [`run`]; also a fatal consumer error (fenced by another instance with the same id).
pub async fn run_as(
    config: ProjectorConfig,
    group_instance_id: Option<String>,
    pool: PgPool,
    codec: Arc<Codec>,
    models: Models,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    models.ensure(&mut tx).await?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    let context = OffsetsContext::new(
        pool.clone(),
        config.group.clone(),
        config.topic.clone(),
        tokio::runtime::Handle::current(),
    );
    let mut client = socle_kafka::client_config(&config.brokers);
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "300000");
    if let Some(id) = group_instance_id.as_deref().filter(|id| !id.is_empty()) {
        client.set("group.instance.id", id);
    }
    let consumer: StreamConsumer<OffsetsContext> = client
        .create_with_context(context)
        .map_err(socle_kafka::Error::from)?;
    consumer.subscribe(&[&config.topic])?;
    info!(topic = %config.topic, group = %config.group, "projector started");

    loop {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch = Vec::with_capacity(config.batch_size);
        match first {
            Ok(m) => batch.push(take(&m)),
            // Fenced by another instance with the same group.instance.id, or another fatal
            // consumer error: this consumer can never be used again.
            Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => return Err(e.into()),
            Err(e) => {
                warn!(error = %e, "kafka consumer error");
                metrics::CONSUMER_ERRORS.inc();
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + config.batch_timeout;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(take(&m)),
                Ok(Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(e.into())
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "kafka consumer error");
                    metrics::CONSUMER_ERRORS.inc();
                }
                Err(_) => break,
            }
        }
        let next = project_with_retry(
            &pool,
            &codec,
            &models,
            &config,
            &batch,
            Filter::default(),
            &shutdown,
        )
        .await?;
        let Some(next) = next else { break };
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in next {
            tpl.add_partition_offset(&config.topic, partition, Offset::Offset(offset))?;
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            // Only monitoring depends on Kafka's copy of the offsets.
            warn!(error = %e, "could not commit offsets to kafka");
        }
    }
    consumer.unsubscribe();
    info!("projector stopped");
    Ok(())
}

pub(crate) fn take(m: &rdkafka::message::BorrowedMessage<'_>) -> Taken {
    Taken {
        partition: m.partition(),
        offset: m.offset(),
        payload: m.payload().map(<[u8]>::to_vec),
    }
}

/// Applies `batch`, retrying transient failures (registry or database unavailable) with a
/// growing delay until they pass or shutdown is asked. Returns the next offset per partition,
/// or `None` if shutdown interrupted the retries (the batch will be read again).
pub(crate) async fn project_with_retry(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    config: &ProjectorConfig,
    batch: &[Taken],
    filter: Filter,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<(i32, i64)>>> {
    let mut delay = Duration::from_millis(200);
    loop {
        match project_batch(pool, codec, models, config, batch, filter).await {
            Ok(next) => return Ok(Some(next)),
            Err(e) if is_transient(&e) => {
                metrics::RETRIES.inc();
                warn!(error = %e, retry_in = ?delay, "batch not applied, will retry");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_transient(e: &Error) -> bool {
    match e {
        Error::Kafka(k) => !k.is_poison(),
        Error::Store(s) => s.is_transient(),
        Error::Consumer(_) => true,
        Error::Agreements(_) => false,
    }
}

/// Decodes and writes one batch in a single transaction: core facts, the ecosystem models of
/// every person touched, rejects, and the next offsets.
async fn project_batch(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    config: &ProjectorConfig,
    batch: &[Taken],
    filter: Filter,
) -> Result<Vec<(i32, i64)>> {
    let started = std::time::Instant::now();
    let mut facts: Vec<(&Taken, PersonFact)> = Vec::with_capacity(batch.len());
    let mut rejected: Vec<Rejected> = Vec::new();
    for taken in batch {
        let Some(payload) = &taken.payload else {
            rejected.push(reject(
                taken,
                "frame.empty",
                "message without a value".into(),
            ));
            continue;
        };
        match codec.decode(payload).await {
            Ok(decoded) => match events::to_fact(&decoded.name, &decoded.value) {
                Ok(fact) => facts.push((taken, fact)),
                Err(e) => rejected.push(reject(taken, e.code(), e.to_string())),
            },
            Err(e) if e.is_poison() => {
                rejected.push(reject(taken, poison_code(&e), e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }

    // Next offset per partition of this batch.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for t in batch {
        let e = next.entry(t.partition).or_insert(t.offset + 1);
        *e = (*e).max(t.offset + 1);
    }
    let partitions: Vec<i32> = next.keys().copied().collect();

    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    if models.layout == Layout::live() {
        sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext($1))")
            .bind(LIVE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(socle_store::Error::from)?;
    }
    let stored: BTreeMap<i32, i64> =
        socle_store::offsets::lock(&mut tx, &config.group, &config.topic, &partitions)
            .await?
            .into_iter()
            .collect();
    let fresh = |partition: i32, offset: i64| stored.get(&partition).is_none_or(|s| offset >= *s);
    let (taken, apply): (Vec<&Taken>, Vec<PersonFact>) = facts
        .into_iter()
        .filter(|(t, f)| fresh(t.partition, t.offset) && filter.keeps(f))
        .unzip();
    let mut rejected: Vec<Rejected> = rejected
        .into_iter()
        .filter(|r| fresh(r.partition, r.offset))
        .collect();
    let skipped = batch
        .iter()
        .filter(|t| !fresh(t.partition, t.offset))
        .count();

    let applied = socle_store::core::apply(&mut tx, &models.layout.core, &apply).await?;
    // A fact the core state refuses (a follow that is not the sender's) is a reject, never
    // silently dropped. The first message carrying its event id is the one applied (and refused).
    for refused in &applied.refused {
        if let Some(i) = apply.iter().position(|f| f.event_id == refused.event_id) {
            rejected.push(reject(taken[i], refused.code, refused.reason.clone()));
        }
    }
    let refused = applied.refused.len();
    let touched: Vec<Uuid> = applied.touched.into_iter().collect();
    let keys = socle_store::keys::find_many(pool, &touched).await?;
    materialize::refresh(&mut tx, models, &keys, &touched).await?;
    socle_store::offsets::reject(&mut tx, &config.group, &config.topic, &rejected).await?;
    let advanced: Vec<(i32, i64)> = next
        .iter()
        .map(|(p, n)| (*p, (*n).max(stored.get(p).copied().unwrap_or(0))))
        .collect();
    socle_store::offsets::advance(&mut tx, &config.group, &config.topic, &advanced).await?;
    tx.commit().await.map_err(socle_store::Error::from)?;

    metrics::EVENTS
        .with_label_values(&["applied"])
        .inc_by(apply.len().saturating_sub(refused) as u64);
    metrics::EVENTS
        .with_label_values(&["rejected"])
        .inc_by(rejected.len() as u64);
    metrics::EVENTS
        .with_label_values(&["skipped"])
        .inc_by(skipped as u64);
    metrics::BATCH_SECONDS.observe(started.elapsed().as_secs_f64());
    for r in &rejected {
        warn!(partition = r.partition, offset = r.offset, code = %r.code, reason = %r.reason,
              "event rejected");
    }
    Ok(advanced)
}

fn reject(taken: &Taken, code: &str, reason: String) -> Rejected {
    Rejected {
        partition: taken.partition,
        offset: taken.offset,
        code: code.to_owned(),
        reason,
        payload: taken.payload.clone(),
    }
}

fn poison_code(e: &socle_kafka::Error) -> &'static str {
    match e {
        socle_kafka::Error::Frame(f) => f.code(),
        socle_kafka::Error::UnexpectedType { .. } => "event.unexpected_type",
        socle_kafka::Error::UnknownSchema(_) => "schema.unknown_id",
        socle_kafka::Error::Pii(_) => "pii.does_not_open",
        _ => "avro.undecodable",
    }
}
