//! The sealer under a burst and across restarts, on the real services: a backlog twenty times
//! `seal.every_entries` is sealed in checkpoints that never exceed the bound and verifies; a
//! stored checkpoint too large for the broker (as an older release wrote) is split, re-signed,
//! published and sealing resumes after it; a restart after published checkpoints resumes the
//! chain without publishing them again; checkpoints the broker refuses never stop the sealer
//! and are published once the seal topic takes them.

mod common;

use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use rdkafka::producer::{FutureProducer, FutureRecord};
use socle_seal::chain::{leaf, Checkpoint, GENESIS};
use socle_seal::sealer::SealerConfig;
use socle_seal::Range;
use tokio_util::sync::CancellationToken;

type Sealer = tokio::task::JoinHandle<socle_seal::Result<()>>;

/// Appends `count` raw entries (the sealer chains bytes, whatever they hold), keyed so they
/// spread over the partitions, as fast as the broker takes them.
async fn burst(topic: &str, from: usize, count: usize) {
    let producer: FutureProducer = socle_kafka::client_config(&brokers())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let mut pending = Vec::with_capacity(count);
    for n in from..from + count {
        let key = format!("user-{}", n % 13);
        let value = format!("entry {n} {}", "x".repeat(n % 50));
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        pending.push(
            producer
                .send_result(record)
                .unwrap_or_else(|_| panic!("entry {n} queued")),
        );
    }
    for (n, delivery) in pending.into_iter().enumerate() {
        delivery
            .await
            .expect("delivery reported")
            .unwrap_or_else(|(e, _)| panic!("entry {n} delivered: {e}"));
    }
}

fn start_sealer(
    db: &TestDb,
    topic: &str,
    seal_topic: &str,
    key: &SigningKey,
    every_entries: usize,
) -> (CancellationToken, Sealer) {
    let shutdown = CancellationToken::new();
    let config = SealerConfig {
        brokers: brokers(),
        topics: vec![topic.to_owned()],
        seal_topic: seal_topic.to_owned(),
        every_entries,
        every: Duration::from_millis(300),
    };
    let handle = tokio::spawn(socle_seal::sealer::run(
        config,
        db.pool.clone(),
        codec(),
        producer(),
        key.clone(),
        shutdown.clone(),
    ));
    (shutdown, handle)
}

/// Waits until `total` entries are chained and every stored checkpoint is published.
async fn wait_sealed_and_published(db: &TestDb, topic: &str, total: i64, sealer: &Sealer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let heads = socle_seal::store::heads(&db.pool, topic)
            .await
            .expect("heads");
        let chained: i64 = heads.iter().map(|(_, h)| h.chained).sum();
        let unpublished = socle_seal::store::checkpoints(&db.pool, topic, true)
            .await
            .expect("unpublished checkpoints")
            .len();
        if chained == total && unpublished == 0 {
            return;
        }
        assert!(
            !sealer.is_finished(),
            "the sealer stopped ({chained} of {total} chained)"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "{chained} of {total} entries sealed, {unpublished} checkpoints unpublished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_back(
    topic: &str,
    seal_topic: &str,
) -> (Vec<socle_seal::Entry>, Vec<socle_seal::Checkpoint>) {
    let t = Duration::from_secs(60);
    let entries = socle_seal::read::entries(&brokers(), topic, None, t)
        .await
        .expect("entries");
    let cps = socle_seal::read::checkpoints(&brokers(), &codec(), seal_topic, topic, t)
        .await
        .expect("checkpoints");
    (entries, cps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_is_sealed_in_checkpoints_within_the_bound() {
    let db = TestDb::new().await;
    socle_seal::migrate(&db.pool)
        .await
        .expect("seal migrations");
    let topic = common::topic("seal-burst", 2).await;
    let seal_topic = common::topic("seal-burst-seal", 1).await;
    let key = SigningKey::from_bytes(&[51u8; 32]);
    // The whole burst is on the topic before the sealer starts: it reads at full speed, and
    // partitions keep filling while due ones are gathered.
    burst(&topic, 0, 20_000).await;
    let (stop, sealer) = start_sealer(&db, &topic, &seal_topic, &key, 1000);
    wait_sealed_and_published(&db, &topic, 20_000, &sealer).await;
    stop.cancel();
    sealer.await.expect("joined").expect("sealer ran");

    let stored = socle_seal::store::checkpoints(&db.pool, &topic, false)
        .await
        .expect("stored");
    assert!(stored.len() >= 20, "{} checkpoints", stored.len());
    let largest = stored.iter().map(|c| c.count).max().unwrap_or(0);
    assert!(largest <= 1000, "a stored checkpoint of {largest} entries");
    let (entries, cps) = read_back(&topic, &seal_topic).await;
    assert_eq!(entries.len(), 20_000);
    assert!(
        cps.iter().all(|c| c.count <= 1000),
        "bound kept on the seal topic"
    );
    let report = socle_seal::verify(&entries, &cps, &key.verifying_key(), Range::default());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.verified, report.unsealed), (20_000, 0));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stored_checkpoint_too_large_for_the_broker_is_split_and_sealing_resumes() {
    let db = TestDb::new().await;
    socle_seal::migrate(&db.pool)
        .await
        .expect("seal migrations");
    let topic = common::topic("seal-oversized", 1).await;
    let seal_topic = common::topic("seal-oversized-seal", 1).await;
    let key = SigningKey::from_bytes(&[52u8; 32]);
    burst(&topic, 0, 30_000).await;

    // What an older release left: one checkpoint of 30 000 entries (about 1.2 MB), committed
    // in PostgreSQL with the chain head, never published.
    let entries = socle_seal::read::entries(&brokers(), &topic, None, Duration::from_secs(60))
        .await
        .expect("entries");
    assert_eq!(entries.len(), 30_000);
    let leaves: Vec<(i64, [u8; 32])> = entries
        .iter()
        .map(|e| (e.offset, leaf(e.key.as_deref(), e.value.as_deref())))
        .collect();
    let sealed_at = chrono::Utc::now().timestamp_micros();
    let oversized =
        Checkpoint::seal(&topic, 0, GENESIS, 0, &leaves, sealed_at, &key).expect("checkpoint");
    let codec = codec();
    let payload = codec
        .encode(&seal_topic, &socle_seal::CHECKPOINT, &oversized)
        .await
        .expect("encoded");
    assert!(payload.len() > 1_000_000, "{} bytes", payload.len());
    let refused = producer().send(&seal_topic, "x", &payload).await;
    assert!(refused.is_err(), "the broker takes {} bytes", payload.len());
    let mut tx = db.pool.begin().await.expect("tx");
    socle_seal::store::record(&mut tx, &oversized)
        .await
        .expect("stored");
    tx.commit().await.expect("commit");

    burst(&topic, 30_000, 500).await;
    let (stop, sealer) = start_sealer(&db, &topic, &seal_topic, &key, 1000);
    wait_sealed_and_published(&db, &topic, 30_500, &sealer).await;
    stop.cancel();
    sealer.await.expect("joined").expect("sealer ran");

    let stored = socle_seal::store::checkpoints(&db.pool, &topic, false)
        .await
        .expect("stored");
    assert!(
        stored.iter().all(|c| c.count <= 1000),
        "the oversized checkpoint was replaced by bounded pieces"
    );
    assert_eq!(stored.iter().map(|c| c.count).sum::<i64>(), 30_500);
    let (entries, cps) = read_back(&topic, &seal_topic).await;
    assert!(cps.iter().all(|c| c.count <= 1000));
    let report = socle_seal::verify(&entries, &cps, &key.verifying_key(), Range::default());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.verified, report.unsealed), (30_500, 0));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_published_checkpoints_resumes_the_chain() {
    let db = TestDb::new().await;
    socle_seal::migrate(&db.pool)
        .await
        .expect("seal migrations");
    let topic = common::topic("seal-restart", 2).await;
    let seal_topic = common::topic("seal-restart-seal", 1).await;
    let key = SigningKey::from_bytes(&[53u8; 32]);
    burst(&topic, 0, 2_500).await;
    let (stop, sealer) = start_sealer(&db, &topic, &seal_topic, &key, 1000);
    wait_sealed_and_published(&db, &topic, 2_500, &sealer).await;
    stop.cancel();
    sealer.await.expect("joined").expect("sealer ran");
    let (_, first) = read_back(&topic, &seal_topic).await;

    // Restarted with every stored checkpoint already published: it resumes at the chain head,
    // seals what came since, and publishes only the new checkpoints.
    burst(&topic, 2_500, 700).await;
    let (stop, sealer) = start_sealer(&db, &topic, &seal_topic, &key, 1000);
    wait_sealed_and_published(&db, &topic, 3_200, &sealer).await;
    stop.cancel();
    sealer.await.expect("joined").expect("sealer ran");

    let stored = socle_seal::store::checkpoints(&db.pool, &topic, false)
        .await
        .expect("stored");
    let (entries, cps) = read_back(&topic, &seal_topic).await;
    assert_eq!(cps.len(), stored.len(), "nothing published twice");
    assert!(cps.len() > first.len());
    assert!(first.iter().all(|c| cps.contains(c)));
    let report = socle_seal::verify(&entries, &cps, &key.verifying_key(), Range::default());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.verified, report.unsealed), (3_200, 0));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_the_broker_refuses_never_stop_the_sealer_and_are_published_later() {
    use rdkafka::admin::TopicReplication;
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier};
    let db = TestDb::new().await;
    socle_seal::migrate(&db.pool)
        .await
        .expect("seal migrations");
    let topic = common::topic("seal-refused", 1).await;
    // A seal topic that refuses every checkpoint (smaller than any).
    let seal_topic = unique("seal-refused-seal");
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        socle_kafka::client_config(&brokers())
            .create()
            .expect("admin");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in admin
        .create_topics(
            [&NewTopic::new(&seal_topic, 1, TopicReplication::Fixed(1))
                .set("max.message.bytes", "200")],
            &options,
        )
        .await
        .expect("Kafka answers")
    {
        r.expect("seal topic created");
    }
    let key = SigningKey::from_bytes(&[54u8; 32]);
    burst(&topic, 0, 1_500).await;
    let (stop, sealer) = start_sealer(&db, &topic, &seal_topic, &key, 1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let heads = socle_seal::store::heads(&db.pool, &topic)
            .await
            .expect("heads");
        if heads.iter().map(|(_, h)| h.chained).sum::<i64>() == 1_500 {
            break;
        }
        assert!(!sealer.is_finished(), "the sealer stopped");
        assert!(tokio::time::Instant::now() < deadline, "not sealed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Sealed in PostgreSQL, refused by the broker: the sealer keeps going and keeps retrying.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !sealer.is_finished(),
        "a refused checkpoint stopped the sealer"
    );
    let unpublished = socle_seal::store::checkpoints(&db.pool, &topic, true)
        .await
        .expect("unpublished");
    assert!(!unpublished.is_empty(), "the broker refused them");
    burst(&topic, 1_500, 300).await;

    // The seal topic takes them again: everything is published, nothing was lost.
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&seal_topic));
    alter = alter.set("max.message.bytes", "1048588");
    for r in admin
        .alter_configs([&alter], &options)
        .await
        .expect("Kafka answers")
    {
        r.expect("seal topic altered");
    }
    wait_sealed_and_published(&db, &topic, 1_800, &sealer).await;
    stop.cancel();
    sealer.await.expect("joined").expect("sealer ran");
    let (entries, cps) = read_back(&topic, &seal_topic).await;
    assert!(cps.iter().all(|c| c.count <= 1000));
    let report = socle_seal::verify(&entries, &cps, &key.verifying_key(), Range::default());
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!((report.verified, report.unsealed), (1_800, 0));
    db.drop_db().await;
}
