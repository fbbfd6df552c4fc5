//! Replay, as-of, a person's history, the verifier and the export over a persons topic written
//! as in production: by `socle ingest`, with Kafka transactions (so a commit marker takes the
//! last offset of a partition, and is never delivered), plus aborted transactions (in the
//! middle and at the very end of a partition) and a transaction left open while reading. Each
//! reader reads to the last stable offset, finishes promptly, and sees the committed events
//! only; a failed or interrupted build leaves no schema behind. `socle audit tail`'s reader
//! does the same on an access topic written in transactions.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::{
    brokers, codec, committed_reader, ingest_config, ingest_topics, registry_url, topic, unique,
    IngestTopics, TestDb, REFERENTIAL,
};
use ed25519_dalek::SigningKey;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use socle_ingest::synthetic;
use socle_ingest::Totals;
use socle_projector::replay::{self, Source as ReplaySource};
use socle_seal::sealer::SealerConfig;
use socle_seal::Range;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Each reader must be done well within this (it used to wait 30 s and fail).
const PROMPT: Duration = Duration::from_secs(10);

const OPERATOR: &str = "france-travail";
const PEOPLE: u64 = 20;

/// Sends persons `range`'s lives (5 messages each) to the operator's ingress topic, framed as
/// an operator's serializer would.
async fn send_lives(t: &IngestTopics, range: std::ops::Range<u64>, now: chrono::DateTime<Utc>) {
    let ingress = &t.ingress[OPERATOR];
    let registry = socle_ingest::registry::Registry::new(&registry_url()).expect("registry");
    let mut ids = HashMap::new();
    for c in socle_ingest::contracts::ingress() {
        ids.insert(
            c.name,
            registry.register(ingress, c).await.expect("register"),
        );
    }
    let p: FutureProducer = socle_kafka::client_config(&brokers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for n in range {
        for m in synthetic::life(OPERATOR, n, now) {
            let c = socle_ingest::decode::contract_of(&m);
            let value = socle_kafka::framing::Frame::encode(
                ids[c.name],
                &socle_ingest::decode::encode_body(&m).expect("encodes"),
            );
            let key = synthetic::operator_ref(n);
            p.send(
                FutureRecord::to(ingress).key(&key).payload(&value),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .expect("sent");
        }
    }
}

/// How many committed records `topic` holds, by an independent reader (a subscribed
/// read_committed consumer), after waiting up to `timeout` for at least `want`.
async fn committed(topic: &str, want: usize, timeout: Duration) -> usize {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = committed_reader("it-count", &topic);
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        while Instant::now() < deadline && seen < want {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                m.expect("reading");
                seen += 1;
            }
        }
        seen
    })
    .await
    .expect("counter")
}

/// A transactional producer of its own, transactions initialised.
fn tx_producer() -> BaseProducer {
    let p: BaseProducer = socle_kafka::client_config(&brokers())
        .set("transactional.id", unique("it-raw-tx"))
        .set("transaction.timeout.ms", "30000")
        .create()
        .expect("transactional producer");
    p.init_transactions(Duration::from_secs(20))
        .expect("init transactions");
    p
}

/// Writes `value` (keyed by `key`) to each of `partitions` of `topic` inside one transaction
/// of `p`, flushed (the records are in the log), and left open.
fn write_open(p: &BaseProducer, topic: &str, partitions: &[i32], key: &str, value: &[u8]) {
    p.begin_transaction().expect("begin");
    for partition in partitions {
        p.send(
            BaseRecord::to(topic)
                .partition(*partition)
                .key(key)
                .payload(value),
        )
        .map_err(|(e, _)| e)
        .expect("enqueued");
    }
    p.flush(Duration::from_secs(10)).expect("flushed");
}

/// Writes `records` (partition, key, value) to `topic` in one transaction of a producer of its
/// own, committed or aborted.
async fn write_transaction(topic: &str, records: Vec<(i32, String, Vec<u8>)>, commit: bool) {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let p = tx_producer();
        p.begin_transaction().expect("begin");
        for (partition, key, value) in &records {
            p.send(
                BaseRecord::to(&topic)
                    .partition(*partition)
                    .key(key)
                    .payload(value),
            )
            .map_err(|(e, _)| e)
            .expect("enqueued");
        }
        p.flush(Duration::from_secs(10)).expect("flushed");
        if commit {
            p.commit_transaction(Duration::from_secs(10))
                .expect("commit");
        } else {
            p.abort_transaction(Duration::from_secs(10)).expect("abort");
        }
    })
    .await
    .expect("transaction");
}

/// `value` (keyed by `key`) on each of `partitions` of `topic`, in one aborted transaction:
/// records in the log that read_committed consumers skip.
async fn write_aborted(topic: &str, partitions: &[i32], key: &str, value: &[u8]) {
    let records = partitions
        .iter()
        .map(|p| (*p, key.to_owned(), value.to_vec()))
        .collect();
    write_transaction(topic, records, false).await;
}

/// Schemas of a build (`rb_`, `asof_`, `diff_`) in the test database.
async fn build_schemas(db: &TestDb) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname LIKE 'rb\\_%' OR nspname LIKE 'asof\\_%' OR nspname LIKE 'diff\\_%'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("schemas")
    .into_iter()
    .collect()
}

async fn ids_in(db: &TestDb, schema: &str) -> HashSet<Uuid> {
    socle_store::ecosystem::person_ids(&db.pool, schema)
        .await
        .expect("person ids")
}

/// Records every progress report.
#[derive(Default)]
struct Seen(Mutex<Vec<(u64, u64)>>);

impl Seen {
    fn report(&self, done: u64, total: u64) {
        self.0.lock().expect("lock").push((done, total));
    }
    fn last(&self) -> (u64, u64) {
        *self
            .0
            .lock()
            .expect("lock")
            .last()
            .expect("progress was reported")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_as_of_history_verify_and_export_read_transactional_topics_to_the_last_stable_offset(
) {
    let db = TestDb::new().await;
    socle_seal::migrate(&db.pool)
        .await
        .expect("seal migrations");
    let t = ingest_topics(1, "it-persons-tx").await;
    let now = Utc::now();

    // A registration for a person who must never appear: published to a scratch topic for its
    // bytes, then written to the persons topic only inside aborted transactions.
    let scratch = topic("it-scratch", 1).await;
    let ghost = common::registration(7);
    let ghost_id = ghost.person_id;
    common::publisher(&db, &scratch)
        .register(ghost)
        .await
        .expect("published to the scratch topic");
    let ghost_bytes = socle_seal::read::entries(&brokers(), &scratch, None, PROMPT)
        .await
        .expect("scratch entries")[0]
        .value
        .clone()
        .expect("a value");

    // The persons topic, written by ingest in transactions: half the people, an aborted
    // transaction on every partition, the other half, and an aborted transaction at the very
    // end of partition 0 (partitions 1 and 2 end with ingest's commit markers).
    let ingest = {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(socle_ingest::run(
            ingest_config(&t, &unique("it-ingest"), &unique("it-tx"), 20),
            db.pool.clone(),
            REFERENTIAL.clone(),
            shutdown.clone(),
        ));
        (shutdown, handle)
    };
    send_lives(&t, 0..PEOPLE / 2, now).await;
    assert_eq!(
        committed(&t.persons, 50, Duration::from_secs(60)).await,
        50,
        "ingest published the first half"
    );
    let ghost_key = ghost_id.to_string();
    write_aborted(&t.persons, &[0, 1, 2], &ghost_key, &ghost_bytes).await;
    send_lives(&t, PEOPLE / 2..PEOPLE, now).await;
    assert_eq!(
        committed(&t.persons, 100, Duration::from_secs(60)).await,
        100,
        "ingest published the second half"
    );
    ingest.0.cancel();
    let totals: Totals = ingest
        .1
        .await
        .expect("ingest task")
        .expect("ingest ran without error");
    assert_eq!(totals.published, PEOPLE * 5);
    assert_eq!(totals.dead_lettered, 0);
    write_aborted(&t.persons, &[0], &ghost_key, &ghost_bytes).await;

    let people: HashSet<Uuid> = (0..PEOPLE)
        .map(|n| {
            socle_ingest::rules::person_id(OPERATOR, &synthetic::submission(OPERATOR, n, 0, now))
        })
        .collect();
    let source = ReplaySource {
        brokers: brokers(),
        topic: t.persons.clone(),
        batch_size: 30,
    };
    let agreements = common::agreements();
    let no_stop = CancellationToken::new();

    // The live projector, for the rebuild to catch up with.
    let group = unique("it-live");
    let projector = common::start_projector(&db, &t.persons, &group);
    common::eventually(
        Duration::from_secs(30),
        "the live model has every person",
        || async {
            socle_store::ecosystem::person_ids(&db.pool, "eco_france_travail")
                .await
                .is_ok_and(|ids| ids == people)
        },
    )
    .await;
    let live = socle_store::ecosystem::checksum(&db.pool, "eco_france_travail")
        .await
        .expect("checksum");

    // Rebuild: reads to the end, catches up with the live offsets, swaps in.
    let seen = Seen::default();
    let started = Instant::now();
    let rebuilt = replay::rebuild(
        &db.pool,
        codec(),
        &agreements,
        &BTreeSet::from(["france-travail".to_owned()]),
        &source,
        &group,
        &|d, t| seen.report(d, t),
        &no_stop,
    )
    .await
    .expect("rebuild");
    assert!(
        started.elapsed() < PROMPT,
        "rebuild took {:?}",
        started.elapsed()
    );
    assert_eq!(rebuilt.events, PEOPLE * 5, "the committed events, no more");
    let (done, total) = seen.last();
    assert_eq!(done, total, "progress reached its end");
    assert!(
        total > PEOPLE * 5,
        "offsets counted include markers and aborted records: {total}"
    );
    assert_eq!(ids_in(&db, "eco_france_travail").await, people);
    assert_eq!(
        socle_store::ecosystem::checksum(&db.pool, "eco_france_travail")
            .await
            .expect("checksum"),
        live,
        "the rebuilt model equals the live one"
    );
    projector.shutdown.cancel();
    projector
        .handle
        .await
        .expect("projector task")
        .expect("projector");

    // As-of now: everyone registered (30 days ago), the ghost nowhere; 40 days ago: nobody.
    let seen = Seen::default();
    let started = Instant::now();
    let snapshot = replay::as_of(
        &db.pool,
        codec(),
        &agreements,
        now,
        &source,
        &|d, t| seen.report(d, t),
        &no_stop,
    )
    .await
    .expect("as of now");
    assert!(
        started.elapsed() < PROMPT,
        "as-of took {:?}",
        started.elapsed()
    );
    let (done, total) = seen.last();
    assert_eq!(done, total);
    for (ecosystem, schema) in &snapshot.schemas {
        let ids = ids_in(&db, schema).await;
        assert!(!ids.contains(&ghost_id), "{ecosystem}: aborted records");
        if ecosystem == "france-travail" {
            assert_eq!(ids, people);
        }
    }
    let before = replay::as_of(
        &db.pool,
        codec(),
        &agreements,
        now - TimeDelta::days(40),
        &source,
        &|_, _| {},
        &no_stop,
    )
    .await
    .expect("as of 40 days ago");
    for (ecosystem, schema) in &before.schemas {
        assert!(ids_in(&db, schema).await.is_empty(), "{ecosystem}");
    }

    // A person's history: entered France Travail's model; the ghost never existed.
    let first =
        socle_ingest::rules::person_id(OPERATOR, &synthetic::submission(OPERATOR, 0, 0, now));
    let seen = Seen::default();
    let started = Instant::now();
    let history = replay::person_history(
        &db.pool,
        codec(),
        &agreements,
        first,
        (now - TimeDelta::days(40), now),
        &source,
        &|d, t| seen.report(d, t),
        &no_stop,
    )
    .await
    .expect("person history");
    assert!(
        started.elapsed() < PROMPT,
        "person history took {:?}",
        started.elapsed()
    );
    let (done, total) = seen.last();
    assert_eq!(done, total);
    let ft = history
        .iter()
        .find(|d| d.ecosystem == "france-travail")
        .expect("france-travail");
    assert!(ft.before.is_none() && ft.after.is_some(), "{ft:?}");
    assert!(ft.changed.iter().any(|f| f == "identity_family_name"));
    let ghost_history = replay::person_diff(
        &db.pool,
        codec(),
        &agreements,
        ghost_id,
        now - TimeDelta::days(40),
        now + TimeDelta::days(1),
        &source,
        &no_stop,
    )
    .await
    .expect("ghost history");
    assert!(ghost_history
        .iter()
        .all(|d| d.before.is_none() && d.after.is_none()));
    let left = build_schemas(&db).await;
    assert!(
        left.iter().all(|s| s.starts_with("asof_")),
        "only the as-of snapshots stay: {left:?}"
    );

    // The seal over the transactional topic: the sealer chains the committed records; read
    // back online (with a transaction left open meanwhile: the reader stops at the last stable
    // offset) they verify, and so does their export.
    let seal_topic = topic("it-seal", 1).await;
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let sealer_stop = CancellationToken::new();
    let sealer = tokio::spawn(socle_seal::sealer::run(
        SealerConfig {
            brokers: brokers(),
            topics: vec![t.persons.clone()],
            seal_topic: seal_topic.clone(),
            every_entries: 10,
            every: Duration::from_millis(300),
        },
        db.pool.clone(),
        codec(),
        common::producer(),
        key.clone(),
        sealer_stop.clone(),
    ));
    common::eventually(
        Duration::from_secs(30),
        "every committed record sealed",
        || async {
            socle_seal::store::heads(&db.pool, &t.persons)
                .await
                .expect("heads")
                .iter()
                .map(|(_, h)| h.chained)
                .sum::<i64>()
                == (PEOPLE * 5) as i64
        },
    )
    .await;
    let open = {
        let (persons, key, value) = (t.persons.clone(), ghost_key.clone(), ghost_bytes.clone());
        tokio::task::spawn_blocking(move || {
            let p = tx_producer();
            write_open(&p, &persons, &[1], &key, &value);
            p
        })
        .await
        .expect("open transaction")
    };
    let started = Instant::now();
    let entries = socle_seal::read::entries(&brokers(), &t.persons, None, Duration::from_secs(30))
        .await
        .expect("entries");
    assert!(
        started.elapsed() < PROMPT,
        "reading the entries took {:?}",
        started.elapsed()
    );
    assert_eq!(entries.len() as u64, PEOPLE * 5, "committed records only");
    assert!(entries
        .iter()
        .all(|e| e.value.as_deref() != Some(ghost_bytes.as_slice())));
    let started = Instant::now();
    let checkpoints = socle_seal::read::checkpoints(
        &brokers(),
        &codec(),
        &seal_topic,
        &t.persons,
        Duration::from_secs(30),
    )
    .await
    .expect("checkpoints");
    assert!(started.elapsed() < PROMPT);
    let report = socle_seal::verify(
        &entries,
        &checkpoints,
        &key.verifying_key(),
        Range::default(),
    );
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.verified, PEOPLE * 5, "{report:?}");
    let mut file = Vec::new();
    socle_seal::export::write(&mut file, &entries, &checkpoints).expect("export");
    let (exported, exported_cps) = socle_seal::export::read(file.as_slice()).expect("read export");
    assert_eq!(exported.len(), entries.len());
    let offline = socle_seal::verify(
        &exported,
        &exported_cps,
        &key.verifying_key(),
        Range::default(),
    );
    assert!(offline.is_clean(), "{:?}", offline.findings);
    assert_eq!(offline.verified, PEOPLE * 5);
    tokio::task::spawn_blocking(move || {
        open.abort_transaction(Duration::from_secs(10))
            .expect("abort");
    })
    .await
    .expect("aborted");
    sealer_stop.cancel();
    sealer.await.expect("sealer task").expect("sealer");

    // A build that fails or is interrupted drops what it created.
    let schemas = build_schemas(&db).await;
    let models: i64 = sqlx::query_scalar("SELECT count(*) FROM projector.models")
        .fetch_one(&db.pool)
        .await
        .expect("models");
    let stopped = CancellationToken::new();
    stopped.cancel();
    let interrupted = replay::rebuild(
        &db.pool,
        codec(),
        &agreements,
        &BTreeSet::from(["france-travail".to_owned()]),
        &source,
        &group,
        &|_, _| {},
        &stopped,
    )
    .await;
    assert!(interrupted.is_err(), "an interrupted rebuild fails");
    let interrupted = replay::as_of(
        &db.pool,
        codec(),
        &agreements,
        now,
        &source,
        &|_, _| {},
        &stopped,
    )
    .await;
    assert!(interrupted.is_err(), "an interrupted as-of build fails");
    let interrupted = replay::person_diff(
        &db.pool,
        codec(),
        &agreements,
        first,
        now - TimeDelta::days(40),
        now,
        &source,
        &stopped,
    )
    .await;
    assert!(interrupted.is_err(), "an interrupted history fails");
    let missing = ReplaySource {
        topic: unique("it-no-such-topic"),
        ..source.clone()
    };
    let failed = replay::as_of(
        &db.pool,
        codec(),
        &agreements,
        now,
        &missing,
        &|_, _| {},
        &no_stop,
    )
    .await;
    assert!(failed.is_err(), "no topic, no snapshot");
    assert_eq!(build_schemas(&db).await, schemas, "no schema left behind");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM projector.models")
        .fetch_one(&db.pool)
        .await
        .expect("models");
    assert_eq!(after, models, "no model row left behind");
    assert_eq!(
        ids_in(&db, "eco_france_travail").await,
        people,
        "the live model is untouched by the interrupted rebuild"
    );
    db.drop_db().await;
}

fn access_event(n: usize) -> socle_domain::AccessEvent {
    socle_domain::AccessEvent {
        envelope: socle_domain::Envelope::new(common::ORG, Utc::now()).with_actor("auditor"),
        request_id: format!("req-{n}"),
        user: format!("user-{}", n % 3),
        organisation: common::ORG.to_owned(),
        ecosystem: Some("france-travail".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "mfa".into(),
        action: "person.read".into(),
        resource: format!("/persons/{n}"),
        person_ids: vec![Uuid::now_v7().to_string()],
        decision: socle_domain::Decision::Allow,
        reason: None,
        policy_version: Some("test".into()),
        agreement_version: None,
    }
}

#[tokio::test]
async fn the_trail_tail_reads_a_transactional_topic_to_its_last_stable_offset() {
    // Access events encoded as the trail writes them (on a scratch topic, for their bytes)...
    let scratch = topic("it-scratch-access", 1).await;
    let trail = socle_kafka::AccessTrail::new(common::producer(), codec(), &scratch);
    for n in 0..7 {
        trail.record(&access_event(n)).await.expect("recorded");
    }
    let events: Vec<Vec<u8>> = socle_seal::read::entries(&brokers(), &scratch, None, PROMPT)
        .await
        .expect("scratch entries")
        .into_iter()
        .map(|e| e.value.expect("a value"))
        .collect();
    assert_eq!(events.len(), 7);
    // ...then written to a two-partition topic in transactions: committed, aborted, committed,
    // and an aborted one last, so both partitions end with a marker.
    let access = topic("it-access-tx", 2).await;
    let record = |n: usize| ((n % 2) as i32, format!("user-{n}"), events[n].clone());
    write_transaction(&access, (0..3).map(record).collect(), true).await;
    write_transaction(&access, vec![record(3), record(4)], false).await;
    write_transaction(&access, vec![record(5), record(6)], true).await;
    write_transaction(&access, vec![record(3), record(4)], false).await;

    let started = Instant::now();
    let reader = socle_kafka::tail::TrailReader::open(&brokers(), &access, 1000, PROMPT)
        .await
        .expect("open");
    let read = reader
        .read_to_end(&codec(), Duration::from_secs(30))
        .await
        .expect("read to the end");
    assert!(
        started.elapsed() < PROMPT,
        "tail took {:?}",
        started.elapsed()
    );
    let mut ids: Vec<String> = read.iter().map(|t| t.event.request_id.clone()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["req-0", "req-1", "req-2", "req-5", "req-6"],
        "committed events only"
    );
}
