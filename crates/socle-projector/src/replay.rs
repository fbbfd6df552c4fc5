//! Rebuilding models from the first offset, and the state of the models as it was at an instant.
//!
//! Both read the canonical topic from the beginning with a consumer of their own (manual
//! assignment, no group, nothing committed), through the same batch code as the live projector,
//! into schemas of their own:
//!
//! - **rebuild** (`socle replay --ecosystem X`): into `rb_<id>_core` and `rb_<id>_eco_x`, while
//!   the live model keeps serving; once caught up with the live projector it takes the live lock
//!   (live batches wait), reads to the live offsets exactly, and swaps the rebuilt schema in
//!   under the live name in one transaction;
//! - **as-of** (`socle replay --as-of T`): only the events that occurred at or before `T`, into
//!   `asof_<id>_eco_*`, made read-only by triggers; the core state used to build it is dropped;
//! - **person diff**: the same for one person at two instants, compared field by field.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};
use socle_agreements::Agreements;
use socle_kafka::Codec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::info;
use uuid::Uuid;

use crate::{
    project_with_retry, take, Error, Filter, Layout, Models, ProjectorConfig, Result, Taken,
    LIVE_LOCK,
};

/// Progress of a build: events read so far, out of how many at the start.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Where and what to read.
#[derive(Debug, Clone)]
pub struct Source {
    pub brokers: String,
    pub topic: String,
    pub batch_size: usize,
}

/// A short id for the schemas of one build.
fn build_id() -> String {
    Uuid::now_v7().simple().to_string()[..12].to_owned()
}

/// Reads `source` from the beginning until each partition reaches `target` (or its end when
/// `target` is `None`), applying every batch to `models`.
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
) -> Result<(StreamConsumer, BTreeMap<i32, i64>)> {
    let consumer: StreamConsumer = socle_kafka::client_config(&source.brokers)
        .set("group.id", consumer_name)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(socle_kafka::Error::from)?;
    let timeout = Duration::from_secs(10);
    let topic = source.topic.clone();
    let (consumer, bounds) = tokio::task::spawn_blocking(move || -> Result<_> {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut bounds = BTreeMap::new();
        for t in metadata.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(&topic, p.id(), timeout)?;
                bounds.insert(p.id(), (low, high));
            }
        }
        Ok((consumer, bounds))
    })
    .await
    .map_err(|e| Error::Kafka(socle_kafka::Error::Internal(e.to_string())))??;
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
    let mut next: BTreeMap<i32, i64> = bounds.iter().map(|(p, (l, _))| (*p, *l)).collect();
    let target: BTreeMap<i32, i64> = bounds.iter().map(|(p, (_, h))| (*p, *h)).collect();
    read_until(
        pool,
        codec,
        models,
        source,
        consumer_name,
        filter,
        &consumer,
        &mut next,
        &target,
        total,
        progress,
        shutdown,
    )
    .await?;
    Ok((consumer, next))
}

#[allow(clippy::too_many_arguments)]
async fn read_until(
    pool: &PgPool,
    codec: &Codec,
    models: &Models,
    source: &Source,
    consumer_name: &str,
    filter: Filter,
    consumer: &StreamConsumer,
    next: &mut BTreeMap<i32, i64>,
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
    let start: i64 = next.values().sum();
    let behind = |next: &BTreeMap<i32, i64>| {
        target
            .iter()
            .any(|(p, t)| next.get(p).copied().unwrap_or(0) < *t)
    };
    while behind(next) {
        let mut batch: Vec<Taken> = Vec::with_capacity(source.batch_size);
        while batch.len() < source.batch_size {
            let wait = if batch.is_empty() {
                Duration::from_secs(30)
            } else {
                Duration::from_millis(50)
            };
            let message = tokio::select! {
                () = shutdown.cancelled() => return Err(Error::Kafka(socle_kafka::Error::Internal("interrupted".into()))),
                m = tokio::time::timeout(wait, consumer.recv()) => m,
            };
            match message {
                Ok(Ok(m)) => {
                    let t = take(&m);
                    next.insert(t.partition, t.offset + 1);
                    batch.push(t);
                    if !behind(next) {
                        break;
                    }
                }
                Ok(Err(e)) => return Err(Error::Consumer(e)),
                Err(_) if batch.is_empty() => {
                    return Err(Error::Kafka(socle_kafka::Error::DeliveryTimeout(wait)))
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty()
            && project_with_retry(pool, codec, models, &config, &batch, filter, shutdown)
                .await?
                .is_none()
        {
            return Err(Error::Kafka(socle_kafka::Error::Internal(
                "interrupted".into(),
            )));
        }
        let done: i64 = next.values().sum::<i64>() - start;
        progress(done.max(0) as u64, total);
    }
    Ok(())
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub ecosystems: Vec<String>,
    pub events: u64,
}

/// Rebuilds the models of `ecosystems` from the first offset and swaps them in atomically.
///
/// # Errors
/// Kafka, registry or database errors; the live models are untouched unless the swap commits.
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
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    models.ensure(&mut tx).await?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    let consumer_name = format!("socle-replay-{id}");
    info!(%id, ?ecosystems, "rebuild started");
    let (consumer, mut next) = build(
        pool,
        &codec,
        &models,
        source,
        &consumer_name,
        Filter::default(),
        progress,
        shutdown,
    )
    .await?;

    // Catch up with the live projector while it waits on the live lock, then swap.
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
        read_until(
            pool,
            &codec,
            &models,
            source,
            &consumer_name,
            Filter::default(),
            &consumer,
            &mut next,
            &live,
            0,
            &|_, _| {},
            shutdown,
        )
        .await?;
        swap(pool, &models, &id).await
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(LIVE_LOCK)
        .execute(&mut *lock)
        .await
        .map_err(socle_store::Error::from)?;
    result?;
    sqlx::query("DELETE FROM projector.offsets WHERE consumer = $1")
        .bind(&consumer_name)
        .execute(pool)
        .await
        .map_err(socle_store::Error::from)?;
    let events: i64 = next.values().sum();
    info!(%id, "rebuild swapped in");
    Ok(Rebuilt {
        ecosystems: ecosystems.iter().cloned().collect(),
        events: events.max(0) as u64,
    })
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
/// Kafka, registry or database errors.
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
    let models = snapshot(
        pool,
        &codec,
        agreements,
        &format!("asof_{id}"),
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
    Ok(Snapshot {
        at,
        schemas: models
            .entries
            .iter()
            .map(|(a, m)| (a.ecosystem.clone(), m.schema.clone()))
            .collect(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn snapshot(
    pool: &PgPool,
    codec: &Codec,
    agreements: &Agreements,
    prefix: &str,
    filter: Filter,
    source: &Source,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<Models> {
    let layout = Layout {
        core: format!("{prefix}_core"),
        eco_prefix: format!("{prefix}_eco_"),
        only: None,
    };
    let models = Models::new(agreements, layout);
    let mut tx = pool.begin().await.map_err(socle_store::Error::from)?;
    sqlx::query(include_str!("sql/refuse_write.sql"))
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
    models.ensure(&mut tx).await?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    let consumer_name = format!("socle-{prefix}");
    let (_consumer, _read) = build(
        pool,
        codec,
        &models,
        source,
        &consumer_name,
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
        .bind(&consumer_name)
        .execute(&mut *tx)
        .await
        .map_err(socle_store::Error::from)?;
    tx.commit().await.map_err(socle_store::Error::from)?;
    Ok(models)
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
/// Kafka, registry or database errors.
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
    let id = build_id();
    let mut states = Vec::new();
    for (label, at) in [("a", from), ("b", to)] {
        let prefix = format!("diff_{id}_{label}");
        let models = snapshot(
            pool,
            &codec,
            agreements,
            &prefix,
            Filter {
                until: Some(at),
                person: Some(person),
            },
            source,
            &|_, _| {},
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
            sqlx::query(&format!(
                "DROP SCHEMA {} CASCADE",
                socle_store::ident(&m.schema)?
            ))
            .execute(pool)
            .await
            .map_err(socle_store::Error::from)?;
            sqlx::query("DELETE FROM projector.models WHERE schema_name = $1")
                .bind(&m.schema)
                .execute(pool)
                .await
                .map_err(socle_store::Error::from)?;
        }
        states.push(rows);
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
