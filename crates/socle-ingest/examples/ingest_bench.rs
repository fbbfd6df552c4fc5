//! The ingest benchmark (bench/ingest/run.sh, docs/benchmarks.md "Ingest"): on one backlog of
//! synthetic ingress messages, measures in the same run
//! 1. the **raw** rate: a minimal rdkafka loop that consumes the backlog and produces each
//!    message unchanged to another topic (same broker, same messages, same client library and
//!    producer settings, no decoding, no validation, no transactions): the ceiling;
//! 2. **ingest**: `socle_ingest::run` on the same backlog (decode, validate, authorize, seal,
//!    encode, publish in transactions), until its committed offsets reach the end;
//! 3. ingest on a second backlog with 10% broken messages (the dead-letter path).
//!
//! Prints one JSON object. Arguments: `--persons N` (5 messages each; default 200000 = 1M
//! messages), `--bad-persons N` (default 40000), `--batch N` (default 2000).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_domain::reference::{ReferencePaths, Referential};
use socle_ingest::ingress::Ingress;
use socle_ingest::synthetic::{self, Bad};
use socle_ingest::{IngestConfig, Source};
use tokio_util::sync::CancellationToken;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const PARTITIONS: i32 = 6;

async fn create_topics(brokers: &str, names: &[&str]) -> BoxResult<()> {
    let admin: AdminClient<DefaultClientContext> = socle_kafka::client_config(brokers).create()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        r.map_err(|(t, e)| format!("creating {t}: {e}"))?;
    }
    Ok(())
}

async fn delete_topics(brokers: &str, names: &[&str]) {
    if let Ok(admin) =
        socle_kafka::client_config(brokers).create::<AdminClient<DefaultClientContext>>()
    {
        let _ = admin.delete_topics(names, &AdminOptions::new()).await;
    }
}

fn producer(brokers: &str) -> BoxResult<FutureProducer> {
    Ok(socle_kafka::client_config(brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "200000")
        .create()?)
}

/// Sends `(key, value)` pairs, back-pressured by the local queue; returns when all are acked.
async fn send_all(
    p: &FutureProducer,
    topic: &str,
    messages: impl Iterator<Item = (String, Vec<u8>)>,
) -> BoxResult<u64> {
    let mut pending = Vec::new();
    let mut n = 0;
    for (key, value) in messages {
        let mut record = FutureRecord::to(topic).key(&key).payload(&value);
        loop {
            match p.send_result(record) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    for d in pending.drain(..) {
                        d.await.map_err(|_| "canceled")?.map_err(|(e, _)| e)?;
                    }
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        n += 1;
    }
    for d in pending {
        d.await.map_err(|_| "canceled")?.map_err(|(e, _)| e)?;
    }
    Ok(n)
}

/// The backlog: `persons` synthetic lives of France Travail, with one broken message every
/// 9 good ones when `bad` (10% of all messages).
fn backlog<'a>(
    persons: u64,
    offset: u64,
    bad: bool,
    ids: &'a HashMap<&'static str, u32>,
) -> impl Iterator<Item = (String, Vec<u8>)> + 'a {
    let now = chrono::Utc::now();
    let id_of = move |m: &Ingress| ids[socle_ingest::decode::contract_of(m).name];
    let mut good = 0u64;
    let mut bad_sent = 0u64;
    (offset..offset + persons).flat_map(move |n| {
        let mut out = Vec::with_capacity(6);
        for m in synthetic::life("france-travail", n, now) {
            let body = socle_ingest::decode::encode_body(&m).unwrap_or_default();
            out.push((
                synthetic::operator_ref(n),
                socle_kafka::framing::Frame::encode(id_of(&m), &body),
            ));
            good += 1;
        }
        while bad && bad_sent * 9 < good {
            let kind = Bad::ALL[usize::try_from(bad_sent).unwrap_or(0) % Bad::ALL.len()];
            out.push(kind.message("france-travail", n + 10_000_000_000, now, &id_of));
            bad_sent += 1;
        }
        out
    })
}

/// The raw consume → produce loop: the ceiling ingest is compared with.
async fn raw(brokers: &str, from: &str, to: &str, total: u64) -> BoxResult<f64> {
    let consumer: StreamConsumer = socle_kafka::client_config(brokers)
        .set(
            "group.id",
            format!("bench-raw-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[from])?;
    let p = producer(brokers)?;
    let mut pending = Vec::with_capacity(20_000);
    let mut n = 0u64;
    let mut started = None;
    while n < total {
        let m = consumer.recv().await?;
        started.get_or_insert_with(Instant::now);
        let mut record = FutureRecord::to(to).payload(m.payload().unwrap_or_default());
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        loop {
            match p.send_result(record) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    for d in pending.drain(..) {
                        d.await.map_err(|_| "canceled")?.map_err(|(e, _)| e)?;
                    }
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        n += 1;
        if pending.len() >= 20_000 {
            for d in pending.drain(..) {
                d.await.map_err(|_| "canceled")?.map_err(|(e, _)| e)?;
            }
        }
    }
    for d in pending {
        d.await.map_err(|_| "canceled")?.map_err(|(e, _)| e)?;
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(total as f64 / secs)
}

/// Sum of the group's committed offsets on `topic`.
fn committed(brokers: &str, group: &str, topic: &str) -> BoxResult<i64> {
    let c: BaseConsumer = socle_kafka::client_config(brokers)
        .set("group.id", group)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(got
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum())
}

fn end_offsets(brokers: &str, topic: &str) -> BoxResult<i64> {
    let c: BaseConsumer = socle_kafka::client_config(brokers).create()?;
    let mut sum = 0;
    for p in 0..PARTITIONS {
        sum += c.fetch_watermarks(topic, p, Duration::from_secs(10))?.1;
    }
    Ok(sum)
}

struct IngestRun {
    rate: f64,
    secs: f64,
    published: u64,
    dead: u64,
}

async fn ingest(
    brokers: &str,
    registry: &str,
    pool: sqlx::PgPool,
    referential: Arc<Referential>,
    topics: (&str, &str, &str),
    total: i64,
    batch: usize,
) -> BoxResult<IngestRun> {
    let group = format!("bench-ingest-{}", uuid::Uuid::new_v4().simple());
    let config = IngestConfig {
        brokers: brokers.to_owned(),
        registry_url: registry.to_owned(),
        group: group.clone(),
        transactional_id: format!("bench-tx-{}", uuid::Uuid::new_v4().simple()),
        group_instance_id: None,
        sources: vec![Source {
            topic: topics.0.to_owned(),
            operator: "france-travail".into(),
        }],
        persons_topic: topics.1.to_owned(),
        deadletter_topic: topics.2.to_owned(),
        batch_size: batch,
        batch_timeout: Duration::from_millis(100),
        transaction_timeout: Duration::from_secs(60),
    };
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(socle_ingest::run(
        config,
        pool,
        referential,
        shutdown.clone(),
    ));
    let (b, g, t) = (brokers.to_owned(), group.clone(), topics.0.to_owned());
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (b2, g2, t2) = (b.clone(), g.clone(), t.clone());
        let done = tokio::task::spawn_blocking(move || committed(&b2, &g2, &t2)).await??;
        if done >= total {
            break;
        }
        if handle.is_finished() {
            return Err("ingest stopped early".into());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    shutdown.cancel();
    let totals = handle.await??;
    Ok(IngestRun {
        rate: total as f64 / secs,
        secs,
        published: totals.published,
        dead: totals.dead_lettered,
    })
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let brokers = env("SOCLE__KAFKA__BROKERS", "localhost:9092");
    let registry = env("SOCLE__REGISTRY__URL", "http://localhost:8081");
    let db_url = env(
        "SOCLE__DATABASE__URL",
        "postgres://socle:socle@localhost:5432/socle",
    );
    let reference = PathBuf::from(env(
        "SOCLE__REFERENCE__DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../reference"),
    ));
    let persons = arg("--persons", 200_000);
    let bad_persons = arg("--bad-persons", 40_000);
    let batch = usize::try_from(arg("--batch", 2000))?;

    let referential = Arc::new(Referential::load(&ReferencePaths::under(&reference))?);
    // A database of its own (the keys of the synthetic people), dropped at the end.
    let db_name = format!("socle_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url).await?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let base = db_url.rsplit_once('/').map_or(db_url.as_str(), |(b, _)| b);
    let pool = socle_store::connect(&format!("{base}/{db_name}"), 8).await?;
    socle_store::migrate(&pool).await?;

    let run = uuid::Uuid::new_v4().simple().to_string();
    let t = |n: &str| format!("bench-{n}-{run}");
    let (ingress, raw_out, persons_t, dead_t) = (t("ingress"), t("raw"), t("persons"), t("dead"));
    let (ingress_bad, persons_bad, dead_bad) = (t("ingress-bad"), t("persons-bad"), t("dead-bad"));
    let all = [
        &ingress,
        &raw_out,
        &persons_t,
        &dead_t,
        &ingress_bad,
        &persons_bad,
        &dead_bad,
    ];
    let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
    create_topics(&brokers, &names).await?;

    let reg = socle_ingest::registry::Registry::new(&registry)?;
    let mut ids = HashMap::new();
    let mut ids_bad = HashMap::new();
    for c in socle_ingest::contracts::ingress() {
        ids.insert(c.name, reg.register(&ingress, c).await?);
        ids_bad.insert(c.name, reg.register(&ingress_bad, c).await?);
    }

    let p = producer(&brokers)?;
    let t0 = Instant::now();
    let total = send_all(&p, &ingress, backlog(persons, 0, false, &ids)).await?;
    let gen_secs = t0.elapsed().as_secs_f64();
    eprintln!("backlog: {total} messages in {gen_secs:.1}s");
    let total_bad = send_all(
        &p,
        &ingress_bad,
        backlog(bad_persons, persons, true, &ids_bad),
    )
    .await?;
    eprintln!("bad-mix backlog: {total_bad} messages");
    let total_i = i64::try_from(total)?;
    if end_offsets(&brokers, &ingress)? != total_i {
        return Err("backlog offsets do not match the message count".into());
    }

    let raw_rate = raw(&brokers, &ingress, &raw_out, total).await?;
    eprintln!("raw consume→produce: {raw_rate:.0} msg/s");
    let good = ingest(
        &brokers,
        &registry,
        pool.clone(),
        referential.clone(),
        (&ingress, &persons_t, &dead_t),
        total_i,
        batch,
    )
    .await?;
    eprintln!("ingest: {:.0} events/s ({:.1}s)", good.rate, good.secs);
    let bad = ingest(
        &brokers,
        &registry,
        pool.clone(),
        referential,
        (&ingress_bad, &persons_bad, &dead_bad),
        i64::try_from(total_bad)?,
        batch,
    )
    .await?;
    eprintln!(
        "ingest with 10% bad: {:.0} msg/s, {} dead letters",
        bad.rate, bad.dead
    );

    println!(
        "{}",
        serde_json::json!({
            "messages": total,
            "backlog_seconds": gen_secs,
            "raw_rate": raw_rate,
            "ingest_rate": good.rate,
            "ingest_seconds": good.secs,
            "ratio": good.rate / raw_rate,
            "published": good.published,
            "dead_lettered": good.dead,
            "bad_mix_messages": total_bad,
            "bad_mix_rate": bad.rate,
            "bad_mix_seconds": bad.secs,
            "bad_mix_published": bad.published,
            "bad_mix_dead_lettered": bad.dead,
            "batch": batch,
        })
    );
    pool.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    delete_topics(&brokers, &names).await;
    Ok(())
}
