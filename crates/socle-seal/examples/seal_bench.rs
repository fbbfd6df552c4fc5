//! Benchmark `seal`: sealing throughput against the raw consume rate of the same topic, in the
//! same run. N access-sized messages (default 300 000, 400 bytes, keyed by 1 000 users) are
//! written to a fresh 6-partition topic; then (1) a plain consumer reads them all (baseline),
//! (2) `socle seal`'s sealer chains and checkpoints them all (checkpoints every 1 000 entries,
//! PostgreSQL transaction + seal topic each time). Prints one JSON object.
//!
//! `cargo run --release -p socle-seal --example seal_bench -- [N]`

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: i64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300_000);
    let brokers =
        std::env::var("SOCLE__KAFKA__BROKERS").unwrap_or_else(|_| "localhost:9092".into());
    let db = std::env::var("SOCLE__DATABASE__URL")
        .unwrap_or_else(|_| "postgres://socle:socle@localhost:5432/socle".into());
    let registry =
        std::env::var("SOCLE__REGISTRY__URL").unwrap_or_else(|_| "http://localhost:8081".into());
    let id = uuid_ish();
    let topic = format!("bench-seal-{id}");
    let seal_topic = format!("bench-seal-cp-{id}");
    let admin: AdminClient<DefaultClientContext> = socle_kafka::client_config(&brokers).create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in admin
        .create_topics(
            [
                &NewTopic::new(&topic, 6, TopicReplication::Fixed(1)),
                &NewTopic::new(&seal_topic, 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await?
    {
        r.map_err(|(t, e)| format!("{t}: {e}"))?;
    }
    let producer: FutureProducer = socle_kafka::client_config(&brokers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("acks", "all")
        .create()?;
    let value = vec![0x5au8; 400];
    let t = Instant::now();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..n {
        let key = format!("user-{}", i % 1000);
        let mut v = value.clone();
        v[..8].copy_from_slice(&i.to_be_bytes());
        let p = producer.clone();
        let topic = topic.clone();
        pending.push(tokio::spawn(async move {
            p.send(
                FutureRecord::to(&topic).key(&key).payload(&v),
                Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
        }));
        if pending.len() == 10_000 {
            for h in pending.drain(..) {
                h.await??;
            }
        }
    }
    for h in pending.drain(..) {
        h.await??;
    }
    eprintln!("produced {n} in {:.1} s", t.elapsed().as_secs_f64());

    // Baseline: read everything, nothing else.
    let consumer: StreamConsumer = socle_kafka::client_config(&brokers)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let t = Instant::now();
    let mut seen = 0i64;
    while seen < n {
        let m = consumer.recv().await?;
        std::hint::black_box(&m);
        seen += 1;
    }
    let raw_secs = t.elapsed().as_secs_f64();
    drop(consumer);

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db)
        .await?;
    socle_seal::migrate(&pool).await?;
    let key = socle_seal::keys::generate();
    let shutdown = CancellationToken::new();
    let config = socle_seal::sealer::SealerConfig {
        brokers: brokers.clone(),
        topics: vec![topic.clone()],
        seal_topic: seal_topic.clone(),
        every_entries: 1000,
        every: Duration::from_secs(1),
    };
    let codec = std::sync::Arc::new(socle_kafka::Codec::new(&registry)?);
    let producer = socle_kafka::EventProducer::new(&brokers, Duration::from_secs(10))?;
    let t = Instant::now();
    let handle = tokio::spawn(socle_seal::sealer::run(
        config,
        pool.clone(),
        codec,
        producer,
        key,
        shutdown.clone(),
    ));
    loop {
        let chained: i64 = socle_seal::store::heads(&pool, &topic)
            .await?
            .iter()
            .map(|(_, h)| h.chained)
            .sum();
        if chained >= n {
            break;
        }
        if handle.is_finished() {
            return Err(format!("sealer stopped: {:?}", handle.await).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seal_secs = t.elapsed().as_secs_f64();
    shutdown.cancel();
    handle.await??;
    let raw = n as f64 / raw_secs;
    let sealed = n as f64 / seal_secs;
    println!(
        "{}",
        serde_json::json!({"entries": n, "raw_per_s": raw, "seal_per_s": sealed, "ratio": sealed / raw,
                           "raw_secs": raw_secs, "seal_secs": seal_secs, "topic": topic})
    );
    Ok(())
}

fn uuid_ish() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
