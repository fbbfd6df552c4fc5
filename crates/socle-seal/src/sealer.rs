//! `socle seal`: chains every entry of the sealed topics, per partition, and writes a signed
//! checkpoint every N entries or T seconds, whichever comes first.
//!
//! Exactly once, after the projector's pattern: the chain head of a partition is its consumer
//! offset, stored in PostgreSQL in the same transaction as the checkpoint that advances it.
//! Entries chained since the last checkpoint are only held in memory; after a crash they are
//! read again from the stored offset and chained again to the same hashes (the chain is a pure
//! function of the bytes). The checkpoint then goes to the seal topic; one committed but not yet
//! published (crash, Kafka unreachable) is republished at start and retried in the background
//! while the sealer goes on sealing, so the topic may hold a checkpoint twice but never misses
//! one, and the verifier ignores exact duplicates.
//!
//! **Bounded checkpoints.** A checkpoint never holds more than `every_entries` entries (at most
//! [`MAX_EVERY_ENTRIES`], well under the broker's 1 MB message limit): entries that arrive
//! while due partitions are gathered stay pending for the next checkpoint, and a partition that
//! holds several times the bound (a burst) is sealed in several consecutive checkpoints of one
//! transaction. A stored checkpoint that the broker still refuses as too large (written by an
//! older release) never wedges the sealer: it is split into pieces of at most `every_entries`
//! entries, re-signed, which chain to the same head, and the pieces replace it in PostgreSQL
//! (one transaction) before they are published. Only a checkpoint the broker refused is split,
//! so none is ever on the seal topic both whole and in pieces.
//!
//! One sealer per topic: a PostgreSQL advisory lock per sealed topic refuses a second instance
//! (two writers would fork the chain). Scale out by giving instances different topic lists.
//! Partitions are listed at start (Kafka unreachable then is waited out, on the blocking pool):
//! restart the sealer after adding partitions to a topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_kafka::{Codec, EventProducer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::chain::{leaf, Checkpoint, Hash, GENESIS};
use crate::store::{self, Head};
use crate::{Error, Result, CHECKPOINT};

/// How the sealer runs.
#[derive(Debug, Clone)]
pub struct SealerConfig {
    pub brokers: String,
    /// The topics to seal (the access topic, and the canonical topics).
    pub topics: Vec<String>,
    /// Where checkpoints are published.
    pub seal_topic: String,
    /// A checkpoint is written after this many entries of a partition...
    pub every_entries: usize,
    /// ...or when its oldest unsealed entry is this old.
    pub every: Duration,
}

/// How long partitions that reached N entries wait for others before being sealed together.
const GATHER: Duration = Duration::from_millis(20);

/// The largest `every_entries` accepted: a checkpoint carries about 42 bytes per entry (offset and
/// leaf), so 20 000 entries stay under the 1 MB default message limit of Kafka and librdkafka.
pub const MAX_EVERY_ENTRIES: usize = 20_000;

/// First delay before unpublished checkpoints are published again; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

struct Partition {
    head: Head,
    pending: Vec<(i64, Hash)>,
    since: Option<Instant>,
}

/// Runs the sealer until `shutdown` is cancelled. Unsealed entries in memory are dropped on
/// shutdown and sealed by the next run.
///
/// # Errors
/// [`Error::Busy`] if another sealer holds one of the topics; Kafka, registry or PostgreSQL errors.
pub async fn run(
    config: SealerConfig,
    pool: PgPool,
    codec: Arc<Codec>,
    producer: EventProducer,
    key: SigningKey,
    shutdown: CancellationToken,
) -> Result<()> {
    if config.topics.is_empty() {
        return Err(Error::Config("no topic to seal".into()));
    }
    if !(1..=MAX_EVERY_ENTRIES).contains(&config.every_entries) {
        return Err(Error::Config(format!(
            "seal.every_entries must be between 1 and {MAX_EVERY_ENTRIES} (a checkpoint above \
             about 1 MB is refused by the broker), not {}",
            config.every_entries
        )));
    }
    // Held for the whole run, on a connection taken out of the pool: the locks are released when
    // it closes (on return, error or not), never left behind in a pooled connection.
    let mut lock = pool.acquire().await?.detach();
    for topic in &config.topics {
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('socle-seal:' || $1))")
                .bind(topic)
                .fetch_one(&mut lock)
                .await?;
        if !got {
            return Err(Error::Busy(topic.clone()));
        }
    }
    // Checkpoints stored but not yet on the seal topic are published in the background (and
    // retried until they are): sealing never waits for them.
    let mut republish_at = Some(Instant::now());
    let mut republish_delay = RETRY_FIRST;
    let mut republishing = false;

    let consumer: StreamConsumer = socle_kafka::client_config(&config.brokers)
        .set("group.id", "socle-seal")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .create()
        .map_err(socle_kafka::Error::from)?;
    let mut state: HashMap<(String, i32), Partition> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for topic in &config.topics {
        let heads: HashMap<i32, Head> = store::heads(&pool, topic).await?.into_iter().collect();
        // Kafka unreachable at start is waited out (with a growing delay), not a failure.
        let mut delay = RETRY_FIRST;
        let listed = loop {
            match partitions(&config.brokers, topic).await {
                Err(Error::Kafka(e)) => {
                    warn!(topic, error = %e, retry_in = ?delay, "cannot list the partitions yet; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                }
                other => break other?,
            }
        };
        for p in listed {
            let head = heads.get(&p).cloned().unwrap_or(Head {
                next_offset: 0,
                hash: GENESIS,
                chained: 0,
            });
            let offset = if head.chained == 0 {
                Offset::Beginning
            } else {
                Offset::Offset(head.next_offset)
            };
            tpl.add_partition_offset(topic, p, offset)
                .map_err(socle_kafka::Error::from)?;
            state.insert(
                (topic.clone(), p),
                Partition {
                    head,
                    pending: Vec::new(),
                    since: None,
                },
            );
        }
    }
    consumer.assign(&tpl).map_err(socle_kafka::Error::from)?;
    info!(topics = ?config.topics, partitions = state.len(), seal_topic = %config.seal_topic, "sealer started");

    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Partitions that reached N entries: sealed together in one transaction, at most
    // `GATHER` after the first of them (one commit for many checkpoints under load).
    let mut due: Vec<(String, i32)> = Vec::new();
    let mut due_since: Option<Instant> = None;
    // Each task says whether it republished every stored unpublished checkpoint, and how it went.
    let mut publishing: tokio::task::JoinSet<(bool, Result<()>)> = tokio::task::JoinSet::new();
    loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                for (k, s) in &state {
                    if s.since.is_some_and(|t| t.elapsed() >= config.every) && !due.contains(k) {
                        due.push(k.clone());
                    }
                }
                if !due.is_empty() {
                    checkpoint(&pool, &codec, &producer, &config, &key, &mut state, &due, &mut publishing).await?;
                    due.clear();
                    due_since = None;
                }
                while let Some(done) = publishing.try_join_next() {
                    let (all, result) =
                        done.map_err(|e| Error::Internal(format!("publish task: {e}")))?;
                    republishing &= !all;
                    match result {
                        Ok(()) if all => republish_delay = RETRY_FIRST,
                        Ok(()) => {}
                        Err(e) => {
                            // Stored in PostgreSQL: published again later, never lost.
                            warn!(error = %e, retry_in = ?republish_delay, "checkpoint not published yet; retrying");
                            republish_at.get_or_insert_with(|| Instant::now() + republish_delay);
                            republish_delay = (republish_delay * 2).min(RETRY_MAX);
                        }
                    }
                }
                if !republishing && republish_at.is_some_and(|t| Instant::now() >= t) {
                    republish_at = None;
                    republishing = true;
                    let (pool, codec, producer, key) =
                        (pool.clone(), codec.clone(), producer.clone(), key.clone());
                    let (topics, seal_topic, bound) =
                        (config.topics.clone(), config.seal_topic.clone(), config.every_entries);
                    publishing.spawn(async move {
                        let result = republish(&pool, &codec, &producer, &seal_topic, &topics, &key, bound).await;
                        (true, result)
                    });
                }
                continue;
            }
            m = consumer.recv() => m,
        };
        let m = match message {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "kafka consumer error");
                continue;
            }
        };
        let k = (m.topic().to_owned(), m.partition());
        let Some(s) = state.get_mut(&k) else { continue };
        let next = s.pending.last().map_or(s.head.next_offset, |(o, _)| o + 1);
        if s.head.chained > 0 && m.offset() < next {
            continue; // already chained (a fetch repeated after a seek)
        }
        s.pending.push((m.offset(), leaf(m.key(), m.payload())));
        s.since.get_or_insert_with(Instant::now);
        if s.pending.len() >= config.every_entries && !due.contains(&k) {
            due.push(k);
            due_since.get_or_insert_with(Instant::now);
        }
        if due_since.is_some_and(|t| t.elapsed() >= GATHER)
            || (!due.is_empty() && due.len() == state.len())
        {
            checkpoint(
                &pool,
                &codec,
                &producer,
                &config,
                &key,
                &mut state,
                &due,
                &mut publishing,
            )
            .await?;
            due.clear();
            due_since = None;
        }
    }
    while let Some(done) = publishing.join_next().await {
        let (_, result) = done.map_err(|e| Error::Internal(format!("publish task: {e}")))?;
        if let Err(e) = result {
            warn!(error = %e, "checkpoint not published; it will be at the next start");
        }
    }
    info!("sealer stopped");
    Ok(())
}

/// The partitions of `topic`, asked on the blocking thread pool (the metadata request blocks).
async fn partitions(brokers: &str, topic: &str) -> Result<Vec<i32>> {
    let (brokers, owned) = (brokers.to_owned(), topic.to_owned());
    let metadata = tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer =
            socle_kafka::client_config(&brokers).create()?;
        consumer.fetch_metadata(Some(&owned), Duration::from_secs(10))
    })
    .await
    .map_err(|e| Error::Internal(format!("metadata task failed: {e}")))?
    .map_err(socle_kafka::Error::from)?;
    let ps: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if ps.is_empty() {
        return Err(Error::NoTopic(format!("topic {topic} does not exist")));
    }
    Ok(ps)
}

/// Seals the pending entries of `due` partitions: one transaction, then the seal topic.
///
/// Each checkpoint holds at most `every_entries` entries: a partition due by count is sealed in
/// as many full checkpoints as it holds (the rest, fewer than `every_entries`, stays pending); a
/// partition due by time (its oldest unsealed entry is `every` old) is sealed whole, in pieces
/// of at most `every_entries`.
#[allow(clippy::too_many_arguments)]
async fn checkpoint(
    pool: &PgPool,
    codec: &Arc<Codec>,
    producer: &EventProducer,
    config: &SealerConfig,
    key: &SigningKey,
    state: &mut HashMap<(String, i32), Partition>,
    due: &[(String, i32)],
    publishing: &mut tokio::task::JoinSet<(bool, Result<()>)>,
) -> Result<()> {
    let now = chrono::Utc::now().timestamp_micros();
    let bound = config.every_entries.max(1);
    let mut sealed = Vec::new();
    // Per partition: how many pending entries the checkpoints take.
    let mut taken: Vec<((String, i32), usize)> = Vec::new();
    for k in due {
        let Some(s) = state.get(k) else { continue };
        let whole = s.since.is_some_and(|t| t.elapsed() >= config.every);
        let (mut prev, mut chained, mut n) = (s.head.hash, s.head.chained, 0);
        while n < s.pending.len() {
            let rest = s.pending.len() - n;
            if rest < bound && !whole {
                break;
            }
            let Some(cp) = Checkpoint::seal(
                &k.0,
                k.1,
                prev,
                chained,
                &s.pending[n..n + rest.min(bound)],
                now,
                key,
            ) else {
                break;
            };
            prev = Hash::try_from(cp.hash.as_slice()).unwrap_or(GENESIS);
            chained = cp.chained;
            n += rest.min(bound);
            sealed.push(cp);
        }
        if n > 0 {
            taken.push((k.clone(), n));
        }
    }
    if sealed.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for cp in &sealed {
        store::record(&mut tx, cp).await?;
    }
    tx.commit().await?;
    for (k, n) in taken {
        let Some(last) = sealed
            .iter()
            .rev()
            .find(|cp| cp.topic == k.0 && cp.partition == k.1)
        else {
            continue;
        };
        if let Some(s) = state.get_mut(&k) {
            s.head = Head {
                next_offset: last.last_offset + 1,
                hash: Hash::try_from(last.hash.as_slice()).unwrap_or(GENESIS),
                chained: last.chained,
            };
            s.pending.drain(..n);
            // What is left arrived during the gather window, just now.
            s.since = (!s.pending.is_empty()).then(Instant::now);
        }
    }
    // Published in the background: the checkpoints are already durable in PostgreSQL, order on
    // the seal topic does not matter to the verifier, and an unpublished one is published again
    // (in the background, and at the next start).
    for cp in sealed {
        let (pool, codec, producer, key) =
            (pool.clone(), codec.clone(), producer.clone(), key.clone());
        let topic = config.seal_topic.clone();
        publishing.spawn(async move {
            let result = publish(&pool, &codec, &producer, &topic, &cp, &key, bound).await;
            (false, result)
        });
    }
    Ok(())
}

/// Publishes every stored checkpoint of `topics` not yet on the seal topic.
async fn republish(
    pool: &PgPool,
    codec: &Codec,
    producer: &EventProducer,
    seal_topic: &str,
    topics: &[String],
    key: &SigningKey,
    bound: usize,
) -> Result<()> {
    for topic in topics {
        let unpublished = store::checkpoints(pool, topic, true).await?;
        if !unpublished.is_empty() {
            info!(
                topic,
                count = unpublished.len(),
                "publishing stored checkpoints"
            );
        }
        for cp in &unpublished {
            publish(pool, codec, producer, seal_topic, cp, key, bound).await?;
        }
    }
    Ok(())
}

/// Publishes `cp` on the seal topic and notes it. If the producer or the broker refuses it as too
/// large (only a checkpoint stored by an older release can be), it is split into re-signed
/// pieces of at most `bound` entries (and at most half of its own) that replace it in
/// PostgreSQL, and those are published.
async fn publish(
    pool: &PgPool,
    codec: &Codec,
    producer: &EventProducer,
    seal_topic: &str,
    cp: &Checkpoint,
    key: &SigningKey,
    bound: usize,
) -> Result<()> {
    match send(codec, producer, seal_topic, cp).await {
        Ok(()) => return store::mark_published(pool, cp).await,
        Err(e) if too_large(&e) && cp.count > 1 => {
            warn!(topic = %cp.topic, partition = cp.partition, last_offset = cp.last_offset,
                  entries = cp.count, "checkpoint too large for the broker; split and re-signed");
        }
        Err(e) => return Err(e),
    }
    let half = usize::try_from(cp.count).unwrap_or(usize::MAX).div_ceil(2);
    let pieces = cp.split(bound.min(half).max(1), key).ok_or_else(|| {
        Error::Corrupt(format!(
            "stored checkpoint {}/{}@{} has inconsistent leaves",
            cp.topic, cp.partition, cp.last_offset
        ))
    })?;
    if !store::replace(pool, cp, &pieces).await? {
        return Ok(()); // published or replaced meanwhile
    }
    for piece in &pieces {
        // A piece still too large stays stored: it is split again when published again.
        send(codec, producer, seal_topic, piece).await?;
        store::mark_published(pool, piece).await?;
    }
    Ok(())
}

async fn send(
    codec: &Codec,
    producer: &EventProducer,
    seal_topic: &str,
    cp: &Checkpoint,
) -> Result<()> {
    let payload = codec.encode(seal_topic, &CHECKPOINT, cp).await?;
    producer
        .send(
            seal_topic,
            &format!("{}:{}", cp.topic, cp.partition),
            &payload,
        )
        .await?;
    Ok(())
}

/// Whether the producer or the broker refused a message as too large.
fn too_large(e: &Error) -> bool {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;
    matches!(
        e,
        Error::Kafka(socle_kafka::Error::Kafka(KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )))
    )
}
