//! `socle seal`: chains every entry of the sealed topics, per partition, and writes a signed
//! checkpoint every N entries or T seconds, whichever comes first.
//!
//! Exactly once, after the projector's pattern: the chain head of a partition is its consumer
//! offset, stored in PostgreSQL in the same transaction as the checkpoint that advances it.
//! Entries chained since the last checkpoint are only held in memory; after a crash they are
//! read again from the stored offset and chained again to the same hashes (the chain is a pure
//! function of the bytes). The checkpoint then goes to the seal topic; one committed but not yet
//! published (crash in between) is republished at start, so the topic may hold a checkpoint twice
//! but never misses one, and the verifier ignores exact duplicates.
//!
//! One sealer per topic: a PostgreSQL advisory lock per sealed topic refuses a second instance
//! (two writers would fork the chain). Scale out by giving instances different topic lists.
//! Partitions are listed at start: restart the sealer after adding partitions to a topic.

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
    for topic in &config.topics {
        for cp in store::checkpoints(&pool, topic, true).await? {
            publish(&pool, &codec, &producer, &config.seal_topic, &cp).await?;
        }
    }

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
        for p in partitions(&consumer, topic).await? {
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
    let mut publishing = tokio::task::JoinSet::new();
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
                    done.map_err(|e| Error::Internal(format!("publish task: {e}")))??;
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
        done.map_err(|e| Error::Internal(format!("publish task: {e}")))??;
    }
    info!("sealer stopped");
    Ok(())
}

async fn partitions(consumer: &StreamConsumer, topic: &str) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
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
#[allow(clippy::too_many_arguments)]
async fn checkpoint(
    pool: &PgPool,
    codec: &Arc<Codec>,
    producer: &EventProducer,
    config: &SealerConfig,
    key: &SigningKey,
    state: &mut HashMap<(String, i32), Partition>,
    due: &[(String, i32)],
    publishing: &mut tokio::task::JoinSet<Result<()>>,
) -> Result<()> {
    let now = chrono::Utc::now().timestamp_micros();
    let mut sealed = Vec::new();
    for k in due {
        let Some(s) = state.get(k) else { continue };
        if let Some(cp) =
            Checkpoint::seal(&k.0, k.1, s.head.hash, s.head.chained, &s.pending, now, key)
        {
            sealed.push(cp);
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
    for cp in &sealed {
        if let Some(s) = state.get_mut(&(cp.topic.clone(), cp.partition)) {
            s.head = Head {
                next_offset: cp.last_offset + 1,
                hash: Hash::try_from(cp.hash.as_slice()).unwrap_or(GENESIS),
                chained: cp.chained,
            };
            s.pending.clear();
            s.since = None;
        }
    }
    // Published in the background: the checkpoints are already durable in PostgreSQL, order on
    // the seal topic does not matter to the verifier, and an unpublished one is republished at
    // the next start.
    for cp in sealed {
        let (pool, codec, producer) = (pool.clone(), codec.clone(), producer.clone());
        let topic = config.seal_topic.clone();
        publishing.spawn(async move { publish(&pool, &codec, &producer, &topic, &cp).await });
    }
    Ok(())
}

async fn publish(
    pool: &PgPool,
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
    store::mark_published(pool, cp).await
}
