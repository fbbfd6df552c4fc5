//! Rebuilding models from the first offset, and the state of the models as it was at an instant.
//!
//! Both read the canonical topic from the beginning with a consumer of their own (manual
//! assignment, no group, nothing committed), through the same batch code as the live projector,
//! into schemas of their own. They read committed records only (`isolation.level =
//! read_committed`) up to the last stable offset as of their start, and know they got there by
//! the consumer's position, not by receiving the record before the end: on a topic written with
//! transactions the last offset of a partition is a transaction marker, never delivered (see
//! [`socle_kafka::tail`]).
//!
//! - **rebuild** (`socle replay --ecosystem X`): into `rb_<id>_core` and `rb_<id>_eco_x`, while
//!   the live model keeps serving; once caught up with the topic it takes the live lock (live
//!   batches wait), reads to the live offsets exactly, and swaps the rebuilt schema in under the
//!   live name in one transaction;
//! - **as-of** (`socle replay --as-of T`): only the events that occurred at or before `T`, into
//!   `asof_<id>_eco_*`, made read-only by triggers; the core state used to build it is dropped;
//! - **person diff**: the same for one person at two instants, compared field by field.
//!
//! A build that fails or is interrupted drops the schemas it created (and its rows in
//! `projector.models`, its offsets and rejects).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};
use socle_agreements::Agreements;
use socle_kafka::tail::{positions, stalled, POSITION_POLL};
use socle_kafka::Codec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    project_with_retry, take, Error, Filter, Layout, Models, ProjectorConfig, Result, Taken,
    LIVE_LOCK,
};

/// Progress of a build: offsets read so far, out of how many to read (the count grows when the
/// rebuild catches up with the live projector).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Where and what to read.
#[derive(Debug, Clone)]
pub struct Source {
    pub brokers: String,
    pub topic: String,
    pub batch_size: usize,
}

/// How many times a rebuild catches up with the topic's end before it takes the live lock
/// anyway (the topic may be written faster than it is read).
const CATCH_UP_ROUNDS: usize = 5;

/// How long a build waits without its position moving before it gives up.
const STALL: Duration = Duration::from_secs(30);

/// A short id for the schemas of one build.
fn build_id() -> String {
    Uuid::now_v7().simple().to_string()[..12].to_owned()
}

/// A bounded reading of the canonical topic by a consumer of its own (manual assignment,
/// committed records only).
struct Reading {
    consumer: Arc<StreamConsumer>,
    /// Per partition: the offset of the next record to read (the consumer's position).
    next: BTreeMap<i32, i64>,
    /// Offsets read so far (records, transaction markers, aborted records), for progress.
    done: u64,
    /// Records applied so far.
    records: u64,
}

/// Reads `source` from the beginning to its last stable offset as of now, applying every
/// batch to `models`. Committed records only (`isolation.level=read_committed`): the records of
/// aborted transactions are skipped, and a partition is read when the consumer's position
/// reaches its end, so the transaction markers of a transactional topic (`socle ingest` writes
/// `socle.persons` so), never delivered, do not make it wait.
#[allow(clippy::too_many_arguments)]
async fn build(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    source: &Source,
    consumer_name: &str,
    filter: Filter,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<Reading> {
    let consumer: StreamConsumer = socle_kafka::client_config(&source.brokers)
        .set("group.id", consumer_name)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(socle_kafka::Error::from)?;
    let consumer = Arc::new(consumer);
    let bounds = watermarks(&consumer, &source.topic).await?;
    if bounds.is_empty() {
        return Err(Error::Kafka(socle_kafka::Error::Topics(format!(
            "topic {} does not exist",
            source.topic
        ))));
    }
    let mut tpl = TopicPartitionList::new();
    for (p, (low, _)) in &bounds {
        tpl.add_partition_offset(&source.topic, *p, Offset::Offset(*low))?;
    }
    consumer.assign(&tpl)?;
    let total: u64 = bounds.values().map(|(l, h)| (h - l).max(0) as u64).sum();
    let mut reading = Reading {
        consumer,
        next: bounds.iter().map(|(p, (l, _))| (*p, *l)).collect(),
        done: 0,
        records: 0,
    };
    let target: BTreeMap<i32, i64> = bounds.iter().map(|(p, (_, h))| (*p, *h)).collect();
    read_until(
        pool,
        codec,
        models,
        source,
        consumer_name,
        filter,
        &mut reading,
        &target,
        total,
        progress,
        shutdown,
    )
    .await?;
    Ok(reading)
}

/// The low watermark and the last stable offset of each partition of `topic`, as of now
/// (`fetch_watermarks` under read_committed answers the last stable offset as the high one).
async fn watermarks(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
) -> Result<BTreeMap<i32, (i64, i64)>> {
    let timeout = Duration::from_secs(10);
    let (consumer, topic) = (Arc::clone(consumer), topic.to_owned());
    tokio::task::spawn_blocking(move || -> Result<_> {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut bounds = BTreeMap::new();
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
                bounds.insert(p.id(), (low, high));
            }
        }
        Ok(bounds)
    })
    .await
    .map_err(|e| Error::Kafka(socle_kafka::Error::Internal(e.to_string())))?
}

fn interrupted() -> Error {
    Error::Kafka(socle_kafka::Error::Internal("interrupted".into()))
}

/// Reads until the position of every partition of `target` reaches it, applying each batch.
/// Progress is reported as `(reading.done, total)` after each batch, and while waiting.
#[allow(clippy::too_many_arguments)]
async fn read_until(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    source: &Source,
    consumer_name: &str,
    filter: Filter,
    reading: &mut Reading,
    target: &BTreeMap<i32, i64>,
    total: u64,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let config = ProjectorConfig {
        brokers: source.brokers.clone(),
        topic: source.topic.clone(),
        group: consumer_name.to_owned(),
        batch_size: source.batch_size,
        batch_timeout: Duration::from_millis(100),
    };
    let behind = |next: &BTreeMap<i32, i64>| {
        target
            .iter()
            .any(|(p, t)| next.get(p).copied().unwrap_or(0) < *t)
    };
    // Moves `next` forward to `to` on `partition`, counting the offsets passed.
    let advance = |reading: &mut Reading, partition: i32, to: i64| -> bool {
        let at = reading.next.entry(partition).or_insert(to);
        if to > *at {
            reading.done += (to - *at) as u64;
            *at = to;
            true
        } else {
            false
        }
    };
    let mut moved = tokio::time::Instant::now();
    progress(reading.done, total.max(reading.done));
    while behind(&reading.next) {
        let mut batch: Vec<Taken> = Vec::with_capacity(source.batch_size);
        while batch.len() < source.batch_size {
            let wait = if batch.is_empty() {
                POSITION_POLL
            } else {
                Duration::from_millis(50)
            };
            let message = tokio::select! {
                () = shutdown.cancelled() => return Err(interrupted()),
                m = tokio::time::timeout(wait, reading.consumer.recv()) => m,
            };
            match message {
                Ok(Ok(m)) => {
                    let t = take(&m);
                    advance(reading, t.partition, t.offset + 1);
                    batch.push(t);
                    moved = tokio::time::Instant::now();
                    if !behind(&reading.next) {
                        break;
                    }
                }
                Ok(Err(e)) => return Err(Error::Consumer(e)),
                Err(_) => {
                    // Nothing delivered: past the last record of a partition only transaction
                    // markers or aborted records may be left, which move the position only.
                    for (p, at) in positions(&reading.consumer, &source.topic)? {
                        if advance(reading, p, at) {
                            moved = tokio::time::Instant::now();
                        }
                    }
                    if batch.is_empty() && behind(&reading.next) && moved.elapsed() >= STALL {
                        let short: Vec<(i32, i64, i64)> = target
                            .iter()
                            .map(|(p, t)| (*p, reading.next.get(p).copied().unwrap_or(0), *t))
                            .collect();
                        return Err(Error::Kafka(socle_kafka::Error::Internal(stalled(
                            &source.topic,
                            &short,
                            STALL,
                        ))));
                    }
                    break;
                }
            }
        }
        if !batch.is_empty() {
            if project_with_retry(pool, codec, models, &config, &batch, filter, shutdown)
                .await?
                .is_none()
            {
                return Err(interrupted());
            }
            reading.records += batch.len() as u64;
        }
        progress(reading.done, total.max(reading.done));
    }
    Ok(())
}

/// Drops what a build created: its schemas (core and models), their rows in
/// `projector.models`, its offsets and rejects. Used when a build fails or is interrupted, so
/// that no `rb_*`, `asof_*` or `diff_*` schema is left behind.
async fn discard(pool: &PgPool, models: &Models, consumer_name: &str) -> Result<()> {
    let mut schemas = vec![models.layout.core.clone()];
    schemas.extend(models.entries.iter().map(|(_, m)| m.schema.clone()));
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    for schema in &schemas {
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            socle_store::ident(schema)?
        ))
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
    }
    sqlx::query("DELETE FROM projector.models WHERE schema_name = ANY($1)")
        .bind(&schemas)
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
    for table in ["projector.offsets", "projector.rejected"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE consumer = $1"))
            .bind(consumer_name)
            .execute(&mut *tx)
            .await
            .map_err(socle_store::Error::from)?;
    }
    tx.commit().await.map_err(socle_store::Error::from)?;
    Ok(())
}

/// `result`, after discarding what the build created if it failed.
async fn or_discard<T>(
    pool: &PgPool,
    models: &Models,
    consumer_name: &str,
    result: Result<T>,
) -> Result<T> {
    if let Err(e) = &result {
        match discard(pool, models, consumer_name).await {
            Ok(()) => {
                info!(error = %e, schema = %models.layout.core, "build failed, its schemas dropped")
            }
            Err(d) => warn!(error = %e, cleanup = %d, schema = %models.layout.core,
                            "build failed and its schemas could not all be dropped"),
        }
    }
    result
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub ecosystems: Vec<String>,
    /// Records read and applied (committed events).
    pub events: u64,
}

/// Rebuilds the models of `ecosystems` from the first offset and swaps them in atomically.
/// Progress is reported while reading and while catching up with the live projector.
///
/// # Errors
/// Kafka, registry or database errors, or `shutdown`: the live models are untouched unless the
/// swap commits, and the schemas the rebuild created are dropped.
#[allow(clippy::too_many_arguments)]
pub async fn rebuild(
    pool: &PgPool,
    codec: Arc<Codec>,
    agreements: &Agreements,
    ecosystems: &BTreeSet<String>,
    source: &Source,
    live_group: &str,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<Rebuilt> {
    for e in ecosystems {
        if agreements.get(e).is_none() {
            return Err(Error::Agreements(socle_agreements::Error::Invalid {
                file: e.clone(),
                message: "no agreement for this ecosystem".into(),
            }));
        }
    }
    let id = build_id();
    let layout = Layout {
        core: format!("rb_{id}_core"),
        eco_prefix: format!("rb_{id}_eco_"),
        only: Some(ecosystems.clone()),
    };
    let models = Models::new(agreements, layout);
    let consumer_name = format!("socle-replay-{id}");
    let result = rebuild_into(
        pool,
        &codec,
        &models,
        &id,
        source,
        &consumer_name,
        live_group,
        progress,
        shutdown,
    )
    .await;
    let events = or_discard(pool, &models, &consumer_name, result).await?;
    info!(%id, "rebuild swapped in");
    Ok(Rebuilt {
        ecosystems: ecosystems.iter().cloned().collect(),
        events,
    })
}

#[allow(clippy::too_many_arguments)]
async fn rebuild_into(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    id: &str,
    source: &Source,
    consumer_name: &str,
    live_group: &str,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<u64> {
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    models.ensure(&mut tx).await?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    info!(%id, schema = %models.layout.core, "rebuild started");
    let mut reading = build(
        pool,
        codec,
        models,
        source,
        consumer_name,
        Filter::default(),
        progress,
        shutdown,
    )
    .await?;

    // Catch up with what was written meanwhile, the live projector running, while more than a
    // batch is left; then with the live projector while it waits on the live lock, and swap.
    for _ in 0..CATCH_UP_ROUNDS {
        let ends: BTreeMap<i32, i64> = watermarks(&reading.consumer, &source.topic)
            .await?
            .into_iter()
            .map(|(p, (_, end))| (p, end))
            .collect();
        let gap: u64 = ends
            .iter()
            .map(|(p, e)| (e - reading.next.get(p).copied().unwrap_or(0)).max(0) as u64)
            .sum();
        if gap <= source.batch_size as u64 {
            break;
        }
        info!(%id, gap, "catching up with what was written meanwhile");
        let total = reading.done + gap;
        read_until(
            pool,
            codec,
            models,
            source,
            consumer_name,
            Filter::default(),
            &mut reading,
            &ends,
            total,
            progress,
            shutdown,
        )
        .await?;
    }
    let mut lock = pool.acquire().await.map_err(socle_store::Error::from)?;
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(LIVE_LOCK)
        .execute(&mut *lock)
        .await
        .map_err(socle_store::Error::from)?;
    let result = async {
        let live: BTreeMap<i32, i64> = socle_store::offsets::load(pool, live_group, &source.topic)
            .await?
            .into_iter()
            .collect();
        let ahead: u64 = live
            .iter()
            .map(|(p, l)| (l - reading.next.get(p).copied().unwrap_or(0)).max(0) as u64)
            .sum();
        info!(%id, behind_live = ahead, "live lock taken; reading to the live offsets");
        let total = reading.done + ahead;
        read_until(
            pool,
            codec,
            models,
            source,
            consumer_name,
            Filter::default(),
            &mut reading,
            &live,
            total,
            progress,
            shutdown,
        )
        .await?;
        swap(pool, models, id).await
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(LIVE_LOCK)
        .execute(&mut *lock)
        .await
        .map_err(socle_store::Error::from)?;
    result?;
    sqlx::query("DELETE FROM projector.offsets WHERE consumer = $1")
        .bind(consumer_name)
        .execute(pool)
        .await
        .map_err(socle_store::Error::from)?;
    Ok(reading.records)
}

async fn swap(pool: &PgPool, models: &Models, id: &str) -> Result<()> {
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    for (agreement, model) in &models.entries {
        let live = agreement.schema();
        let old = format!("old_{id}_{}", agreement.ecosystem.replace('-', "_"));
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&live)
                .fetch_one(&mut *tx)
                .await
                .map_err(socle_store::Error::from)?;
        if exists {
            sqlx::query(&format!(
                "ALTER SCHEMA {} RENAME TO {}",
                socle_store::ident(&live)?,
                socle_store::ident(&old)?
            ))
            .execute(&mut *tx)
            .await
            .map_err(socle_store::Error::from)?;
        }
        sqlx::query(&format!(
            "ALTER SCHEMA {} RENAME TO {}",
            socle_store::ident(&model.schema)?,
            socle_store::ident(&live)?
        ))
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
        sqlx::query("DELETE FROM projector.models WHERE schema_name = $1")
            .bind(&live)
            .execute(&mut *tx)
            .await
            .map_err(socle_store::Error::from)?;
        sqlx::query(
            "UPDATE projector.models SET schema_name = $1, built_at = now() WHERE schema_name = $2",
        )
        .bind(&live)
        .bind(&model.schema)
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
        if exists {
            sqlx::query(&format!(
                "DROP SCHEMA {} CASCADE",
                socle_store::ident(&old)?
            ))
            .execute(&mut *tx)
            .await
            .map_err(socle_store::Error::from)?;
        }
    }
    sqlx::query(&format!(
        "DROP SCHEMA {} CASCADE",
        socle_store::ident(&models.layout.core)?
    ))
    .execute(&mut *tx)
    .await
    .map_err(socle_store::Error::from)?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    Ok(())
}

/// An as-of snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    /// Schema of each ecosystem's model as it was at `at`.
    pub schemas: Vec<(String, String)>,
}

/// Builds the models as they were at `at` into read-only schemas `asof_<id>_eco_*`.
///
/// # Errors
/// Kafka, registry or database errors, or `shutdown`: the schemas the build created are then
/// dropped.
pub async fn as_of(
    pool: &PgPool,
    codec: Arc<Codec>,
    agreements: &Agreements,
    at: DateTime<Utc>,
    source: &Source,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<Snapshot> {
    let id = build_id();
    let (models, consumer_name) = snapshot_models(agreements, &format!("asof_{id}"));
    let result = async {
        snapshot(
            pool,
            &codec,
            &models,
            &consumer_name,
            Filter {
                until: Some(at),
                person: None,
            },
            source,
            progress,
            shutdown,
        )
        .await?;
        for (_, model) in &models.entries {
            let schema = socle_store::ident(&model.schema)?;
            for table in ["persons", "links", "notices"] {
                sqlx::query(&format!(
                    "CREATE TRIGGER read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.{table} \
                     FOR EACH STATEMENT EXECUTE FUNCTION projector.refuse_write()"
                ))
                .execute(pool)
                .await
                .map_err(socle_store::Error::from)?;
            }
        }
        Ok(())
    }
    .await;
    or_discard(pool, &models, &consumer_name, result).await?;
    Ok(Snapshot {
        at,
        schemas: models
            .entries
            .iter()
            .map(|(a, m)| (a.ecosystem.clone(), m.schema.clone()))
            .collect(),
    })
}

/// The models of a snapshot build under `prefix` (every ecosystem), and its consumer name.
fn snapshot_models(agreements: &Agreements, prefix: &str) -> (Models, String) {
    let layout = Layout {
        core: format!("{prefix}_core"),
        eco_prefix: format!("{prefix}_eco_"),
        only: None,
    };
    (Models::new(agreements, layout), format!("socle-{prefix}"))
}

/// Builds `models` from the whole topic under `filter`, then drops the core state used.
/// The caller discards the schemas if this fails.
#[allow(clippy::too_many_arguments)]
async fn snapshot(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    consumer_name: &str,
    filter: Filter,
    source: &Source,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    sqlx::query(include_str!("sql/refuse_write.sql"))
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
    models.ensure(&mut tx).await?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    build(
        pool,
        codec,
        models,
        source,
        consumer_name,
        filter,
        progress,
        shutdown,
    )
    .await?;
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    sqlx::query(&format!(
        "DROP SCHEMA {} CASCADE",
        socle_store::ident(&models.layout.core)?
    ))
    .execute(&mut *tx)
    .await
    .map_err(socle_store::Error::from)?;
    sqlx::query("DELETE FROM projector.offsets WHERE consumer = $1")
        .bind(consumer_name)
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    Ok(())
}

/// How one person's record differs, per ecosystem, between two instants.
#[derive(Debug, Clone, PartialEq)]
pub struct EcosystemDiff {
    pub ecosystem: String,
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
    /// Fields whose value differs (including entering or leaving scope: every field).
    pub changed: Vec<String>,
}

/// One person's record in every ecosystem at `from` and at `to`, and what changed.
///
/// # Errors
/// Kafka, registry or database errors, or `shutdown`; the schemas built are dropped either way.
#[allow(clippy::too_many_arguments)]
pub async fn person_diff(
    pool: &PgPool,
    codec: Arc<Codec>,
    agreements: &Agreements,
    person: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    source: &Source,
    shutdown: &CancellationToken,
) -> Result<Vec<EcosystemDiff>> {
    person_history(
        pool,
        codec,
        agreements,
        person,
        (from, to),
        source,
        &|_, _| {},
        shutdown,
    )
    .await
}

/// As [`person_diff`], reporting progress: the two builds (at `from`, then at `to`) read the
/// topic one after the other, and count as one reading of both.
///
/// # Errors
/// As [`person_diff`].
#[allow(clippy::too_many_arguments)]
pub async fn person_history(
    pool: &PgPool,
    codec: Arc<Codec>,
    agreements: &Agreements,
    person: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    source: &Source,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<Vec<EcosystemDiff>> {
    let id = build_id();
    let mut states = Vec::new();
    let offset = std::sync::atomic::AtomicU64::new(0);
    for (label, at) in [("a", from), ("b", to)] {
        let (models, consumer_name) = snapshot_models(agreements, &format!("diff_{id}_{label}"));
        let base = offset.load(std::sync::atomic::Ordering::Relaxed);
        let last = std::sync::atomic::AtomicU64::new(0);
        let report = |done: u64, total: u64| {
            last.store(done, std::sync::atomic::Ordering::Relaxed);
            progress(base + done, base + total);
        };
        let result = async {
            snapshot(
                pool,
                &codec,
                &models,
                &consumer_name,
                Filter {
                    until: Some(at),
                    person: Some(person),
                },
                source,
                &report,
                shutdown,
            )
            .await?;
            let mut rows = BTreeMap::new();
            for (a, m) in &models.entries {
                let row: Option<Value> = sqlx::query_scalar(&format!(
                    "SELECT to_jsonb(p) - 'in_scope_since' - 'updated_at' FROM {}.persons p WHERE person_id = $1",
                    socle_store::ident(&m.schema)?
                ))
                .bind(person)
                .fetch_optional(pool)
                .await
                .map_err(socle_store::Error::from)?;
                rows.insert(
                    a.ecosystem.clone(),
                    row.and_then(|v| match v {
                        Value::Object(m) => Some(m),
                        _ => None,
                    }),
                );
            }
            discard(pool, &models, &consumer_name).await?;
            Ok(rows)
        }
        .await;
        states.push(or_discard(pool, &models, &consumer_name, result).await?);
        offset.fetch_add(
            last.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    let (before, after) = (&states[0], &states[1]);
    Ok(agreements
        .all
        .iter()
        .map(|a| {
            let b = before.get(&a.ecosystem).cloned().flatten();
            let f = after.get(&a.ecosystem).cloned().flatten();
            let keys: BTreeSet<String> = b
                .iter()
                .chain(f.iter())
                .flat_map(|m| m.keys().cloned())
                .collect();
            let changed = keys
                .into_iter()
                .filter(|k| k != "agreement_version")
                .filter(|k| b.as_ref().and_then(|m| m.get(k)) != f.as_ref().and_then(|m| m.get(k)))
                .collect();
            EcosystemDiff {
                ecosystem: a.ecosystem.clone(),
                before: b,
                after: f,
                changed,
            }
        })
        .collect())
}
