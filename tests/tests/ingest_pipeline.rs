//! `socle ingest` on the real Kafka, PostgreSQL and registry: good events reach the canonical
//! topic exactly once and in order per person (also across a crash and a restart mid-stream),
//! each kind of bad input is dead-lettered with its reason and the original bytes, and an
//! operator cannot speak for another.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use common::{
    brokers, committed_reader, ingest_config, ingest_topics, registry_url, unique, IngestTopics,
    TestDb, REFERENTIAL,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::Message;
use socle_ingest::canonical::DeadLetter;
use socle_ingest::ingress::Ingress;
use socle_ingest::synthetic::{self, Bad};
use socle_ingest::{IngestConfig, Totals};
use tokio_util::sync::CancellationToken;

fn config(t: &IngestTopics, group: &str, transactional_id: &str) -> IngestConfig {
    ingest_config(t, group, transactional_id, 200)
}

struct Running {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<socle_ingest::Result<Totals>>,
}

fn start(db: &TestDb, config: IngestConfig) -> Running {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(socle_ingest::run(
        config,
        db.pool.clone(),
        REFERENTIAL.clone(),
        shutdown.clone(),
    ));
    Running { shutdown, handle }
}

impl Running {
    async fn stop(self) -> Totals {
        self.shutdown.cancel();
        self.handle
            .await
            .expect("ingest task")
            .expect("ingest ran without error")
    }
}

/// The ingress contracts' schema ids on `topic`, registered as an operator's serializer would.
async fn ids(topic: &str) -> HashMap<&'static str, u32> {
    let registry = socle_ingest::registry::Registry::new(&registry_url()).expect("registry");
    let mut ids = HashMap::new();
    for c in socle_ingest::contracts::ingress() {
        ids.insert(c.name, registry.register(topic, c).await.expect("register"));
    }
    ids
}

fn framed(ids: &HashMap<&'static str, u32>, m: &Ingress) -> Vec<u8> {
    let c = socle_ingest::decode::contract_of(m);
    socle_kafka::framing::Frame::encode(
        ids[c.name],
        &socle_ingest::decode::encode_body(m).expect("encodes"),
    )
}

fn producer() -> FutureProducer {
    socle_kafka::client_config(&brokers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

async fn send(
    p: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    value: &[u8],
    headers: Option<OwnedHeaders>,
) -> (i32, i64) {
    let mut record = FutureRecord::to(topic).payload(value);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    let d = p
        .send(record, Timeout::After(Duration::from_secs(10)))
        .await
        .expect("sent");
    (d.partition, d.offset)
}

/// A message read back from an output topic (committed transactions only).
#[derive(Debug, Clone)]
struct Read {
    key: Option<String>,
    value: Vec<u8>,
}

/// Reads `topic` from the start with `isolation.level=read_committed` until `want` messages
/// arrived and then `settle` passed with nothing new (to catch duplicates), or `timeout`.
async fn read_all(topic: &str, want: usize, timeout: Duration, settle: Duration) -> Vec<Read> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = committed_reader("it-reader", &topic);
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut quiet_since = None;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    quiet_since = None;
                    out.push(Read {
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value: m.payload().unwrap_or_default().to_vec(),
                    });
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {
                    if out.len() >= want {
                        let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() >= settle {
                            break;
                        }
                    }
                }
            }
        }
        out
    })
    .await
    .expect("reader")
}

/// The record name and event id of a canonical event.
async fn describe(codec: &socle_kafka::Codec, r: &Read) -> (String, String) {
    let decoded = codec
        .decode(&r.value)
        .await
        .expect("canonical event decodes");
    let apache_avro::types::Value::Record(fields) = &decoded.value else {
        panic!("not a record");
    };
    let envelope = &fields[0].1;
    let apache_avro::types::Value::Record(env) = envelope else {
        panic!("no envelope");
    };
    let id = match &env[0].1 {
        apache_avro::types::Value::Uuid(u) => u.to_string(),
        apache_avro::types::Value::String(s) => s.clone(),
        other => panic!("event id {other:?}"),
    };
    (decoded.name, id)
}

const LIFE: [&str; 5] = [
    "socle.person.PersonRegistered",
    "socle.person.PersonContactUpdated",
    "socle.person.PersonSituationUpdated",
    "socle.person.FollowStarted",
    "socle.person.FollowEnded",
];

/// Checks that `events` hold each of `people` lives exactly once, in order per person.
async fn assert_lives_once_in_order(events: &[Read], people: usize) {
    let codec = common::codec();
    assert_eq!(
        events.len(),
        people * 5,
        "one canonical event per ingress message"
    );
    let mut per_person: HashMap<String, Vec<String>> = HashMap::new();
    let mut event_ids = HashSet::new();
    for r in events {
        let (name, id) = describe(&codec, r).await;
        assert!(event_ids.insert(id.clone()), "event {id} published twice");
        per_person
            .entry(r.key.clone().expect("keyed by person_id"))
            .or_default()
            .push(name);
    }
    assert_eq!(per_person.len(), people);
    for (person, names) in per_person {
        assert_eq!(names, LIFE, "order of person {person}'s events");
    }
}

#[tokio::test]
async fn good_events_reach_the_canonical_topic_once_in_order_and_sealed() {
    let db = TestDb::new().await;
    let t = ingest_topics(3, "it-persons").await;
    let ft = &t.ingress["france-travail"];
    let ids = ids(ft).await;
    let p = producer();
    let now = Utc::now();
    for n in 0..20 {
        for m in synthetic::life("france-travail", n, now) {
            send(
                &p,
                ft,
                Some(&synthetic::operator_ref(n)),
                &framed(&ids, &m),
                None,
            )
            .await;
        }
    }
    let running = start(&db, config(&t, &unique("it-ingest"), &unique("it-tx")));
    let events = read_all(
        &t.persons,
        100,
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await;
    let totals = running.stop().await;
    assert_eq!(totals.published, 100);
    assert_eq!(totals.dead_lettered, 0);
    assert_lives_once_in_order(&events, 20).await;

    // The registration is sealed with the person's key, and opens to what the operator sent.
    let codec = common::codec();
    let first = events
        .iter()
        .find(|r| {
            r.key.as_deref()
                == Some(
                    socle_ingest::rules::person_id(
                        "france-travail",
                        &synthetic::submission("france-travail", 0, 0, now),
                    )
                    .to_string()
                    .as_str(),
                )
        })
        .expect("person 0's events");
    let registered: socle_domain::PersonRegistered = codec
        .decode_as(&first.value, &socle_kafka::schemas::PERSON_REGISTERED)
        .await
        .expect("PersonRegistered");
    assert!(
        !String::from_utf8_lossy(&first.value).contains("Lefort"),
        "names are sealed"
    );
    let key = socle_store::keys::find(&db.pool, registered.person_id)
        .await
        .expect("key store")
        .expect("key created by ingest");
    let identity =
        socle_kafka::pii::open_identity(&key, registered.person_id, &registered.personal)
            .expect("opens");
    let sent = synthetic::registered("france-travail", 0, now);
    assert_eq!(identity.family_name, sent.identity.family_name);
    assert_eq!(identity.nir, sent.identity.nir);
    assert_eq!(registered.operator, "france-travail");
    assert_eq!(
        registered.envelope.producer_organisation,
        synthetic::organisation("france-travail")
    );

    let dead = read_all(
        &t.deadletter,
        0,
        Duration::from_secs(2),
        Duration::from_secs(1),
    )
    .await;
    assert!(dead.is_empty(), "{} dead letters", dead.len());
    db.drop_db().await;
}

#[tokio::test]
async fn a_crash_and_a_restart_mid_stream_neither_lose_nor_duplicate() {
    let db = TestDb::new().await;
    let t = ingest_topics(3, "it-persons").await;
    let ft = &t.ingress["france-travail"];
    let ids = ids(ft).await;
    let p = producer();
    let now = Utc::now();
    let people = 400u64;
    for n in 0..people {
        for m in synthetic::life("france-travail", n, now) {
            send(
                &p,
                ft,
                Some(&synthetic::operator_ref(n)),
                &framed(&ids, &m),
                None,
            )
            .await;
        }
    }
    let group = unique("it-ingest");
    let tx = unique("it-tx");
    let mut cfg = config(&t, &group, &tx);
    cfg.batch_size = 50;

    // First instance: killed (task aborted, producer dropped mid-transaction) once some batches
    // are out.
    let first = start(&db, cfg.clone());
    common::eventually(
        Duration::from_secs(60),
        "first batches committed",
        || async {
            read_all(&t.persons, 1, Duration::from_secs(1), Duration::ZERO)
                .await
                .len()
                >= 100
        },
    )
    .await;
    first.handle.abort();
    let _ = first.handle.await;

    // Second instance, same transactional id: fences the dead one's open transaction; stopped
    // gracefully part-way.
    let second = start(&db, cfg.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;
    second.stop().await;

    // Third instance finishes the backlog.
    let third = start(&db, cfg);
    let events = read_all(
        &t.persons,
        people as usize * 5,
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await;
    third.stop().await;
    assert_lives_once_in_order(&events, people as usize).await;
    db.drop_db().await;
}

async fn dead_letters(topic: &str, want: usize) -> Vec<DeadLetter> {
    let codec = common::codec();
    let mut out = Vec::new();
    for r in read_all(topic, want, Duration::from_secs(60), Duration::from_secs(2)).await {
        let decoded = codec.decode(&r.value).await.expect("dead letter decodes");
        assert_eq!(decoded.name, "socle.ingest.DeadLetter");
        out.push(
            socle_kafka::codec::from_value(decoded.value, &socle_ingest::contracts::DEAD_LETTER)
                .expect("DeadLetter"),
        );
    }
    out
}

#[tokio::test]
async fn each_kind_of_bad_input_is_dead_lettered_with_its_reason_and_original_bytes() {
    let db = TestDb::new().await;
    let t = ingest_topics(3, "it-persons").await;
    let ft = &t.ingress["france-travail"];
    let ids = ids(ft).await;
    let id_of = |m: &Ingress| ids[socle_ingest::decode::contract_of(m).name];
    let p = producer();
    let now = Utc::now();
    // (expected code, key, value, provenance)
    let mut sent = Vec::new();
    for (i, bad) in Bad::ALL.into_iter().enumerate() {
        let (key, value) = bad.message("france-travail", 1000 + i as u64, now, &id_of);
        let at = send(&p, ft, Some(&key), &value, None).await;
        sent.push((bad.code(), key, value, at));
    }
    // A schema id carried in a header (Confluent's newer framing).
    let good = framed(&ids, &synthetic::life("france-travail", 7, now)[0]);
    let headers = OwnedHeaders::new().insert(Header {
        key: "__value_schema_id",
        value: Some(&[1u8; 17][..]),
    });
    let key = synthetic::operator_ref(7);
    let at = send(&p, ft, Some(&key), &good[5..], Some(headers)).await;
    sent.push((
        "frame.header_schema_id_unsupported",
        key,
        good[5..].to_vec(),
        at,
    ));
    // A message without a key cannot be ordered per person.
    let at = send(&p, ft, None, &good, None).await;
    sent.push(("ingress.key_mismatch", String::new(), good.clone(), at));
    // And one good message, which must get through between the bad ones.
    let at = send(&p, ft, Some(&synthetic::operator_ref(7)), &good, None).await;

    let running = start(&db, config(&t, &unique("it-ingest"), &unique("it-tx")));
    let letters = dead_letters(&t.deadletter, sent.len()).await;
    let events = read_all(
        &t.persons,
        1,
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let totals = running.stop().await;
    assert_eq!(events.len(), 1, "the good message got through");
    assert_eq!(totals.dead_lettered, sent.len() as u64);
    assert_eq!(letters.len(), sent.len(), "one dead letter per bad message");
    let by_offset: HashMap<(i32, i64), &DeadLetter> = letters
        .iter()
        .map(|l| ((l.source_partition, l.source_offset), l))
        .collect();
    for (code, key, value, at) in &sent {
        let l = by_offset
            .get(at)
            .unwrap_or_else(|| panic!("no dead letter for {code} at {at:?}"));
        assert_eq!(l.reason_code, *code);
        assert_eq!(&l.source_topic, ft);
        assert_eq!(
            l.value.as_deref().unwrap_or_default(),
            value.as_slice(),
            "{code}: original bytes"
        );
        if !key.is_empty() {
            assert_eq!(
                l.key.as_deref(),
                Some(key.as_bytes()),
                "{code}: original key"
            );
        }
        assert!(
            l.reason_detail.as_deref().is_some_and(|d| !d.is_empty()),
            "{code}"
        );
    }
    let header_letter = by_offset[&sent[Bad::ALL.len()].3];
    assert_eq!(header_letter.headers[0].key, "__value_schema_id");
    // A field-level reason names the field.
    let nir = by_offset[&sent[0].3];
    assert_eq!(nir.field.as_deref(), Some("identity.nir"));
    let _ = at;
    db.drop_db().await;
}

#[tokio::test]
async fn an_operator_cannot_speak_for_another() {
    let db = TestDb::new().await;
    let t = ingest_topics(3, "it-persons").await;
    let ml = &t.ingress["mission-locale"];
    let ids = ids(ml).await;
    let p = producer();
    let now = Utc::now();
    // On the Missions Locales' topic: a registration claiming to be France Travail's...
    let mut forged = synthetic::registered("mission-locale", 1, now);
    forged.operator = "france-travail".into();
    let key = synthetic::operator_ref(1);
    send(
        &p,
        ml,
        Some(&key),
        &framed(&ids, &Ingress::Registered(forged)),
        None,
    )
    .await;
    // ...a follow in France Travail's ecosystem...
    let life = synthetic::life("mission-locale", 2, now);
    let Ingress::FollowStarted(mut follow) = life[3].clone() else {
        panic!("follow")
    };
    follow.ecosystem = "france-travail".into();
    let key2 = synthetic::operator_ref(2);
    send(
        &p,
        ml,
        Some(&key2),
        &framed(&ids, &Ingress::FollowStarted(follow)),
        None,
    )
    .await;
    // ...and health data, which only France Travail and Cap Emploi state.
    let Ingress::SituationUpdated(mut situation) = life[2].clone() else {
        panic!("situation")
    };
    situation.health.rqth = Some(true);
    send(
        &p,
        ml,
        Some(&key2),
        &framed(&ids, &Ingress::SituationUpdated(situation)),
        None,
    )
    .await;

    let running = start(&db, config(&t, &unique("it-ingest"), &unique("it-tx")));
    let letters = dead_letters(&t.deadletter, 3).await;
    running.stop().await;
    let mut codes: Vec<&str> = letters.iter().map(|l| l.reason_code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            "authz.ecosystem_mismatch",
            "authz.field_not_writable",
            "authz.operator_mismatch"
        ]
    );
    let events = read_all(
        &t.persons,
        0,
        Duration::from_secs(2),
        Duration::from_secs(1),
    )
    .await;
    assert!(
        events.is_empty(),
        "nothing forged reached the canonical topic"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn follows_belong_to_their_person_and_organisation() {
    let db = TestDb::new().await;
    let t = ingest_topics(3, "it-persons").await;
    let (ce, ft) = (&t.ingress["cap-emploi"], &t.ingress["france-travail"]);
    let (ce_ids, ft_ids) = (ids(ce).await, ids(ft).await);
    let p = producer();
    let now = Utc::now();
    let fresh = |mut m: Ingress| {
        let s = match &mut m {
            Ingress::FollowStarted(e) => &mut e.submission,
            Ingress::FollowEnded(e) => &mut e.submission,
            _ => panic!("a follow message"),
        };
        s.event_id = uuid::Uuid::new_v4();
        m
    };
    // Cap Emploi registers person 1 and starts following them (follow f1).
    let life1 = synthetic::life("cap-emploi", 1, now);
    let person1 = socle_ingest::rules::person_id("cap-emploi", life1[0].submission());
    let Ingress::FollowStarted(started1) = life1[3].clone() else {
        panic!("follow")
    };
    let f1 = started1.follow_id;
    let key1 = synthetic::operator_ref(1);
    for m in [&life1[0], &life1[3]] {
        send(&p, ce, Some(&key1), &framed(&ce_ids, m), None).await;
    }
    let running = start(&db, config(&t, &unique("it-ingest"), &unique("it-tx")));
    let first = read_all(&t.persons, 2, Duration::from_secs(60), Duration::ZERO).await;
    assert_eq!(first.len(), 2, "registration and follow published");

    // France Travail, naming person 1 by id: ends Cap Emploi's follow as itself...
    let ft_life = synthetic::life("france-travail", 2, now);
    let ft_key = synthetic::operator_ref(2);
    let Ingress::FollowEnded(mut ft_end) = fresh(ft_life[4].clone()) else {
        panic!("end")
    };
    ft_end.submission.person_id = Some(person1);
    ft_end.follow_id = f1;
    send(
        &p,
        ft,
        Some(&ft_key),
        &framed(&ft_ids, &Ingress::FollowEnded(ft_end.clone())),
        None,
    )
    .await;
    // ...and forging Cap Emploi's SIRET...
    let Ingress::FollowEnded(mut forged) = fresh(Ingress::FollowEnded(ft_end)) else {
        panic!("end")
    };
    forged.organisation = started1.organisation.clone();
    send(
        &p,
        ft,
        Some(&ft_key),
        &framed(&ft_ids, &Ingress::FollowEnded(forged)),
        None,
    )
    .await;
    // ...then starts a follow of its own that reuses f1.
    let Ingress::FollowStarted(mut hijack) = fresh(ft_life[3].clone()) else {
        panic!("start")
    };
    hijack.submission.person_id = Some(person1);
    hijack.follow_id = f1;
    send(
        &p,
        ft,
        Some(&ft_key),
        &framed(&ft_ids, &Ingress::FollowStarted(hijack)),
        None,
    )
    .await;
    // Cap Emploi ends f1 through another person's path.
    let life2 = synthetic::life("cap-emploi", 2, now);
    let Ingress::FollowEnded(mut other_path) = fresh(life2[4].clone()) else {
        panic!("end")
    };
    other_path.follow_id = f1;
    send(
        &p,
        ce,
        Some(&synthetic::operator_ref(2)),
        &framed(&ce_ids, &Ingress::FollowEnded(other_path)),
        None,
    )
    .await;
    // Legitimate: a follow started and ended back to back (person 3), and f1 ended by Cap
    // Emploi through person 1 (started in an earlier batch, not projected: no projector runs).
    let life3 = synthetic::life("cap-emploi", 3, now);
    let key3 = synthetic::operator_ref(3);
    for m in [&life3[3], &life3[4]] {
        send(&p, ce, Some(&key3), &framed(&ce_ids, m), None).await;
    }
    send(&p, ce, Some(&key1), &framed(&ce_ids, &life1[4]), None).await;

    let letters = dead_letters(&t.deadletter, 4).await;
    let events = read_all(
        &t.persons,
        5,
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await;
    running.stop().await;
    let mut codes: Vec<&str> = letters.iter().map(|l| l.reason_code.as_str()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            "follow.id_conflict",
            "follow.not_owned",
            "follow.not_owned",
            "follow.not_owned"
        ],
        "{letters:?}"
    );
    assert!(letters
        .iter()
        .all(|l| l.field.as_deref() == Some("follow_id") && l.value.is_some()));
    let codec = common::codec();
    let mut names = Vec::new();
    for r in &events {
        names.push(describe(&codec, r).await.0);
    }
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "socle.person.FollowEnded",
            "socle.person.FollowEnded",
            "socle.person.FollowStarted",
            "socle.person.FollowStarted",
            "socle.person.PersonRegistered"
        ],
        "only the legitimate follow events reached the canonical topic"
    );
    let owner: (uuid::Uuid, String, String) = sqlx::query_as(
        "SELECT person_id, organisation, ecosystem FROM ingest.follows WHERE follow_id = $1",
    )
    .bind(f1)
    .fetch_one(&db.pool)
    .await
    .expect("f1 claimed");
    assert_eq!(
        owner,
        (
            person1,
            started1.organisation.clone(),
            "cap-emploi".to_owned()
        )
    );
    db.drop_db().await;
}
