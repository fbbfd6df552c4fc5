//! Per-ecosystem read models on the real Kafka and PostgreSQL: scope by agreement, granted
//! fields only, row-level security, leaving scope, replay equal to live, and as-of state.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use apache_avro::types::Value;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::*;
use socle_domain::time::{to_days, to_micros};
use socle_kafka::schemas::person_event;
use socle_store::ecosystem::{Model, Viewer};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ML_ORG: &str = "90000200100015";
const CE_ORG: &str = "90000400100010";

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, day, 10, 0, 0)
        .single()
        .expect("valid instant")
}

fn envelope(occurred_at: DateTime<Utc>, org: &str) -> Value {
    Value::Record(vec![
        ("event_id".into(), Value::String(Uuid::now_v7().to_string())),
        (
            "occurred_at".into(),
            Value::TimestampMicros(to_micros(occurred_at)),
        ),
        (
            "recorded_at".into(),
            Value::TimestampMicros(to_micros(Utc::now())),
        ),
        ("producer_organisation".into(), Value::String(org.into())),
        ("actor".into(), Value::Null),
        ("correlation_id".into(), Value::Null),
        ("causation_id".into(), Value::Null),
        ("schema_version".into(), Value::Int(1)),
    ])
}

async fn publish(
    topic: &str,
    name: &str,
    person: Uuid,
    when: DateTime<Utc>,
    org: &str,
    fields: Vec<(&str, Value)>,
) {
    let contract = person_event(name).expect("known person event");
    let mut record = vec![
        ("envelope".to_owned(), envelope(when, org)),
        ("person_id".to_owned(), Value::String(person.to_string())),
    ];
    record.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let payload = codec()
        .encode_value(topic, contract, Value::Record(record))
        .await
        .unwrap_or_else(|e| panic!("{name} encodes: {e}"));
    producer()
        .send(topic, &person.to_string(), &payload)
        .await
        .expect("sent");
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn date(y: i32, m: u32, d: u32) -> Value {
    Value::Date(to_days(
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date"),
    ))
}

async fn follow(
    topic: &str,
    person: Uuid,
    follow_id: Uuid,
    org: &str,
    ecosystem: &str,
    when: DateTime<Utc>,
) {
    publish(
        topic,
        "socle.person.FollowStarted",
        person,
        when,
        org,
        vec![
            ("follow_id", s(&follow_id.to_string())),
            ("organisation", s(org)),
            ("ecosystem", s(ecosystem)),
            ("activity", s("accompagnement")),
            ("territory", s("75")),
            ("purpose", s("accompagnement")),
            (
                "started_on",
                date(2026, 6, when.format("%d").to_string().parse().unwrap_or(1)),
            ),
            ("until", Value::Null),
        ],
    )
    .await;
}

async fn situation(
    db: &TestDb,
    topic: &str,
    person: Uuid,
    rsa: bool,
    rqth: bool,
    when: DateTime<Utc>,
) {
    let key = socle_store::keys::get_or_create(&db.pool, person)
        .await
        .expect("key");
    let health = Value::Record(vec![
        ("rqth".into(), Value::Boolean(rqth)),
        ("rqth_until".into(), Value::Null),
        ("boeth".into(), Value::Null),
    ])
    .resolve(&socle_kafka::schemas::PERSON_HEALTH.schema)
    .expect("health value");
    let plain = apache_avro::to_avro_datum(&socle_kafka::schemas::PERSON_HEALTH.schema, health)
        .expect("datum");
    let sealed = key
        .seal(person, "socle.pii.PersonHealthSituation", &plain)
        .expect("sealed");
    publish(
        topic,
        "socle.person.PersonSituationUpdated",
        person,
        when,
        ORG,
        vec![
            ("effective_on", date(2026, 6, 2)),
            ("registration_category", s("A")),
            ("rsa_beneficiary", Value::Boolean(rsa)),
            (
                "personal",
                Value::Record(vec![
                    ("key_id".into(), s(&sealed.key_id)),
                    ("algorithm".into(), s(&sealed.algorithm)),
                    ("content".into(), s(&sealed.content)),
                    ("nonce".into(), Value::Bytes(sealed.nonce.clone())),
                    ("ciphertext".into(), Value::Bytes(sealed.ciphertext.clone())),
                ]),
            ),
        ],
    )
    .await;
}

async fn create_topic(name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        socle_kafka::client_config(&brokers())
            .create()
            .expect("admin");
    for r in admin
        .create_topics(
            [&NewTopic::new(name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("kafka answers")
    {
        r.expect("created");
    }
}

/// Every view on a feed topic: person id and the names of the fields it carries.
async fn read_feed(topic: &str) -> Vec<(Uuid, BTreeSet<String>)> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::Message;
    let consumer: StreamConsumer = socle_kafka::client_config(&brokers())
        .set("group.id", unique("it-feed-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while (out.len() as i64) < high {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("feed message in time")
            .expect("feed message");
        let decoded = codec()
            .decode(m.payload().expect("payload"))
            .await
            .expect("decodes");
        assert_eq!(decoded.name, "socle.feed.PersonView");
        let Value::Record(fields) = decoded.value else {
            panic!("a record")
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let person = match get("person_id") {
            Some(Value::Uuid(u)) => u,
            Some(Value::String(s)) => Uuid::parse_str(&s).expect("uuid"),
            other => panic!("person_id: {other:?}"),
        };
        let names = match get("fields") {
            Some(Value::Map(m)) => m.keys().cloned().collect(),
            other => panic!("fields: {other:?}"),
        };
        out.push((person, names));
    }
    out
}

fn model(name: &str) -> Model {
    let models = live_models();
    models
        .entries
        .iter()
        .find(|(a, _)| a.ecosystem == name)
        .map(|(_, m)| m.clone())
        .expect("model exists")
}

async fn ids(db: &TestDb, ecosystem: &str) -> BTreeSet<Uuid> {
    socle_store::ecosystem::person_ids(&db.pool, &model(ecosystem).schema)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

async fn columns(db: &TestDb, schema: &str) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'persons'",
    )
    .bind(schema)
    .fetch_all(&db.pool)
    .await
    .expect("columns")
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_ecosystem_sees_exactly_its_people_and_fields() {
    let db = TestDb::new().await;
    let persons = topic("it-persons", 3).await;
    let group = unique("it-group");
    let publisher = publisher(&db, &persons);

    // P1: registered by France Travail in Paris, 19, then followed by a Mission Locale.
    let mut r1 = registration(1);
    r1.identity
        .set_birth_date(NaiveDate::from_ymd_opt(2007, 3, 1).expect("date"));
    r1.occurred_at = at(1);
    let p1 = r1.person_id;
    publisher.register(r1).await.expect("p1");
    let ml_follow = Uuid::now_v7();
    follow(&persons, p1, ml_follow, ML_ORG, "missions-locales", at(3)).await;
    // P2: registered by France Travail in Saint-Denis (93), RSA beneficiary.
    let mut r2 = registration(2);
    r2.commune = "93066".into();
    r2.departement = "93".into();
    r2.occurred_at = at(1);
    let p2 = r2.person_id;
    publisher.register(r2).await.expect("p2");
    situation(&db, &persons, p2, true, false, at(2)).await;
    // P3: registered by France Travail, followed by Cap Emploi, RQTH.
    let mut r3 = registration(3);
    r3.occurred_at = at(1);
    let p3 = r3.person_id;
    publisher.register(r3).await.expect("p3");
    follow(&persons, p3, Uuid::now_v7(), CE_ORG, "cap-emploi", at(2)).await;
    situation(&db, &persons, p3, false, true, at(4)).await;

    let projector = start_projector(&db, &persons, &group);
    eventually(Duration::from_secs(30), "all projected", || async {
        ids(&db, "missions-locales").await.contains(&p1)
            && ids(&db, "cap-emploi").await.contains(&p3)
            && ids(&db, "departement-93").await.contains(&p2)
    })
    .await;

    assert_eq!(
        ids(&db, "france-travail").await,
        BTreeSet::from([p1, p2, p3])
    );
    assert_eq!(ids(&db, "missions-locales").await, BTreeSet::from([p1]));
    assert_eq!(ids(&db, "cap-emploi").await, BTreeSet::from([p3]));
    assert_eq!(ids(&db, "departement-93").await, BTreeSet::from([p2]));
    assert!(ids(&db, "partenaires").await.is_empty());

    // Granted fields only: the other columns do not exist.
    let ml_cols = columns(&db, "eco_missions_locales").await;
    assert!(ml_cols.contains("identity_family_name"));
    assert!(
        !ml_cols.contains("identity_nir"),
        "Missions Locales are not granted the NIR"
    );
    assert!(!ml_cols.iter().any(|c| c.starts_with("health_")));
    assert!(!columns(&db, "eco_france_travail")
        .await
        .iter()
        .any(|c| c.starts_with("health_")));
    assert!(columns(&db, "eco_cap_emploi").await.contains("health_rqth"));
    let part_cols = columns(&db, "eco_partenaires").await;
    assert!(!part_cols.contains("identity_birth_date") && !part_cols.contains("identity_nir"));

    // Row-level security: the Mission Locale that follows P1 sees them, another does not,
    // and the Cap Emploi role sees P3 with their RQTH but never P1.
    let ml = model("missions-locales");
    let viewer = |org: &str| Viewer {
        organisation: org.into(),
        territories: vec![],
    };
    let seen = socle_store::ecosystem::read_person(&db.pool, &ml, &viewer(ML_ORG), p1)
        .await
        .expect("read")
        .expect("the following Mission Locale sees P1");
    assert_eq!(seen["identity_family_name"], "Testeur1");
    assert!(!seen.contains_key("identity_nir"));
    assert!(
        socle_store::ecosystem::read_person(&db.pool, &ml, &viewer("90000299900018"), p1)
            .await
            .expect("read")
            .is_none()
    );
    let ce = model("cap-emploi");
    let p3_ce = socle_store::ecosystem::read_person(&db.pool, &ce, &viewer(CE_ORG), p3)
        .await
        .expect("read")
        .expect("Cap Emploi sees the person it follows");
    assert_eq!(p3_ce["health_rqth"], true);
    assert!(
        socle_store::ecosystem::read_person(&db.pool, &ce, &viewer(CE_ORG), p1)
            .await
            .expect("read")
            .is_none()
    );
    let caseload = socle_store::ecosystem::caseload(&db.pool, &ml, &viewer(ML_ORG), None, 10)
        .await
        .expect("caseload");
    assert_eq!(caseload.len(), 1);
    // Search stays within the caseload, and a criterion on a non-granted field is refused.
    let by_name = socle_store::ecosystem::Search {
        family_name: Some("testeur1".into()),
        ..Default::default()
    };
    let found = socle_store::ecosystem::search(&db.pool, &ml, &viewer(ML_ORG), &by_name, None, 10)
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    let elsewhere = socle_store::ecosystem::search(
        &db.pool,
        &ml,
        &viewer("90000299900018"),
        &by_name,
        None,
        10,
    )
    .await
    .expect("search");
    assert!(elsewhere.is_empty(), "another Mission Locale finds nobody");
    let by_nir = socle_store::ecosystem::Search {
        nir: Some("190017505600142".into()),
        ..Default::default()
    };
    assert!(matches!(
        socle_store::ecosystem::search(&db.pool, &ml, &viewer(ML_ORG), &by_nir, None, 10).await,
        Err(socle_store::Error::NotGranted(_))
    ));

    // The ecosystem role cannot read another ecosystem's schema nor the core state at all.
    let mut tx = db.pool.begin().await.expect("tx");
    sqlx::query("SET LOCAL ROLE socle_eco_missions_locales")
        .execute(&mut *tx)
        .await
        .expect("role");
    let denied = sqlx::query("SELECT count(*) FROM eco_cap_emploi.persons")
        .execute(&mut *tx)
        .await;
    assert!(denied.is_err(), "no access to another ecosystem's schema");
    drop(tx);

    // Feeds: each ecosystem's feed carries its people with exactly the granted fields, and
    // every relay is disclosed in the access trail first.
    let prefix = format!("{}.", unique("it-feed"));
    let access = topic("it-access", 1).await;
    let models = live_models();
    let feed_config = socle_projector::feed::FeedConfig {
        topic_prefix: prefix.clone(),
        batch_size: 100,
        idle: Duration::from_millis(100),
        organisation: "90000000100017".into(),
    };
    let trail = socle_kafka::AccessTrail::new(producer(), codec(), access.clone());
    for (agreement, model) in &models.entries {
        create_topic(&format!("{prefix}{}", agreement.ecosystem)).await;
        socle_projector::feed::relay_once(
            &db.pool,
            &codec(),
            &producer(),
            &trail,
            model,
            &agreement.ecosystem,
            &feed_config,
        )
        .await
        .expect("relayed");
    }
    for (agreement, _) in &models.entries {
        let views = read_feed(&format!("{prefix}{}", agreement.ecosystem)).await;
        let people: BTreeSet<Uuid> = views.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            people,
            ids(&db, &agreement.ecosystem).await,
            "{} feed",
            agreement.ecosystem
        );
        let granted: BTreeSet<String> = agreement
            .granted_fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for (_, fields) in &views {
            assert_eq!(
                fields, &granted,
                "{} feed carries exactly the granted fields",
                agreement.ecosystem
            );
        }
    }
    let disclosures =
        socle_kafka::tail::TrailReader::open(&brokers(), &access, 100, Duration::from_secs(10))
            .await
            .expect("trail")
            .read_to_end(&codec(), Duration::from_secs(10))
            .await
            .expect("trail read");
    let ml_disclosure = disclosures
        .iter()
        .find(|t| t.event.ecosystem.as_deref() == Some("missions-locales"))
        .expect("the Missions Locales feed was disclosed");
    assert_eq!(ml_disclosure.event.action, "feed.disclose");
    assert_eq!(ml_disclosure.event.person_ids, vec![p1.to_string()]);
    assert!(ml_disclosure
        .event
        .agreement_version
        .as_deref()
        .is_some_and(|v| v.starts_with("2026.1+")));

    // The follow ends: P1 leaves the Missions Locales' model, with a notice for the feed.
    publish(
        &persons,
        "socle.person.FollowEnded",
        p1,
        at(10),
        ML_ORG,
        vec![
            ("follow_id", s(&ml_follow.to_string())),
            ("organisation", s(ML_ORG)),
            ("ended_on", date(2026, 6, 10)),
            ("reason_code", Value::Null),
        ],
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "P1 leaves the Missions Locales",
        || async { !ids(&db, "missions-locales").await.contains(&p1) },
    )
    .await;
    let notices: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM eco_missions_locales.notices WHERE person_id = $1 ORDER BY seq",
    )
    .bind(p1)
    .fetch_all(&db.pool)
    .await
    .expect("notices");
    assert_eq!(notices.first().map(String::as_str), Some("entered"));
    assert_eq!(notices.last().map(String::as_str), Some("left"));

    // Replay equals live: rebuild France Travail's model from the first offset.
    let before = socle_store::ecosystem::checksum(&db.pool, "eco_france_travail")
        .await
        .expect("checksum");
    let source = socle_projector::replay::Source {
        brokers: brokers(),
        topic: persons.clone(),
        batch_size: 50,
    };
    let rebuilt = socle_projector::replay::rebuild(
        &db.pool,
        codec(),
        &agreements(),
        &BTreeSet::from(["france-travail".to_owned()]),
        &source,
        &group,
        &|_, _| {},
        &CancellationToken::new(),
    )
    .await
    .expect("rebuild");
    assert!(rebuilt.events >= 8);
    let after = socle_store::ecosystem::checksum(&db.pool, "eco_france_travail")
        .await
        .expect("checksum");
    assert_eq!(before, after, "the rebuilt model equals the live one");

    // As-of: on day 5 P1 was in the Missions Locales' model; on day 2 nobody was yet.
    let day5 = socle_projector::replay::as_of(
        &db.pool,
        codec(),
        &agreements(),
        at(5),
        &source,
        &|_, _| {},
        &CancellationToken::new(),
    )
    .await
    .expect("as of day 5");
    let ml5 = &day5
        .schemas
        .iter()
        .find(|(e, _)| e == "missions-locales")
        .expect("ml")
        .1;
    assert_eq!(
        socle_store::ecosystem::person_ids(&db.pool, ml5)
            .await
            .expect("ids"),
        [p1].into()
    );
    let ce5 = &day5
        .schemas
        .iter()
        .find(|(e, _)| e == "cap-emploi")
        .expect("ce")
        .1;
    assert_eq!(
        socle_store::ecosystem::person_ids(&db.pool, ce5)
            .await
            .expect("ids"),
        [p3].into()
    );
    let write = sqlx::query(&format!("DELETE FROM {ml5}.persons"))
        .execute(&db.pool)
        .await;
    assert!(write.is_err(), "as-of snapshots are read-only");
    let day1 = socle_projector::replay::as_of(
        &db.pool,
        codec(),
        &agreements(),
        at(1) - chrono::TimeDelta::hours(1),
        &source,
        &|_, _| {},
        &CancellationToken::new(),
    )
    .await
    .expect("as of before day 1");
    for (_, schema) in &day1.schemas {
        assert!(socle_store::ecosystem::person_ids(&db.pool, schema)
            .await
            .expect("ids")
            .is_empty());
    }

    // One person's history between two dates.
    let diff = socle_projector::replay::person_diff(
        &db.pool,
        codec(),
        &agreements(),
        p1,
        at(5),
        at(11),
        &source,
        &CancellationToken::new(),
    )
    .await
    .expect("diff");
    let ml_diff = diff
        .iter()
        .find(|d| d.ecosystem == "missions-locales")
        .expect("ml");
    assert!(
        ml_diff.before.is_some() && ml_diff.after.is_none(),
        "left the Missions Locales"
    );
    let ft_diff = diff
        .iter()
        .find(|d| d.ecosystem == "france-travail")
        .expect("ft");
    assert!(ft_diff.before.is_some() && ft_diff.after.is_some() && ft_diff.changed.is_empty());

    projector.shutdown.cancel();
    projector.handle.await.expect("joined").expect("clean stop");
    db.drop_db().await;
}

async fn identity_update(
    db: &TestDb,
    topic: &str,
    person: Uuid,
    family_name: &str,
    when: DateTime<Utc>,
    org: &str,
) {
    let key = socle_store::keys::get_or_create(&db.pool, person)
        .await
        .expect("key");
    let mut identity = socle_domain::PersonIdentity {
        nir: None,
        family_name: family_name.into(),
        given_name: "Alix".into(),
        birth_date: 0,
        email: Some(format!("{}@example.invalid", family_name.to_lowercase())),
        phone: None,
    };
    identity.set_birth_date(NaiveDate::from_ymd_opt(1990, 2, 2).expect("date"));
    let sealed = socle_kafka::pii::seal_identity(&key, person, &identity).expect("sealed");
    publish(
        topic,
        "socle.person.PersonIdentityUpdated",
        person,
        when,
        org,
        vec![(
            "personal",
            Value::Record(vec![
                ("key_id".into(), s(&sealed.key_id)),
                ("algorithm".into(), s(&sealed.algorithm)),
                ("content".into(), s(&sealed.content)),
                ("nonce".into(), Value::Bytes(sealed.nonce.clone())),
                ("ciphertext".into(), Value::Bytes(sealed.ciphertext.clone())),
            ]),
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tell_us_once_the_latest_fact_wins_whoever_tells_it() {
    let db = TestDb::new().await;
    let persons = topic("it-persons", 1).await;
    let group = unique("it-group");
    let mut r = registration(9);
    r.occurred_at = at(5);
    let person = r.person_id;
    publisher(&db, &persons)
        .register(r)
        .await
        .expect("registered");
    // An older identity statement arriving late never overwrites the newer registration...
    identity_update(&db, &persons, person, "Ancien", at(3), ORG).await;
    let projector = start_projector(&db, &persons, &group);
    let ft = model("france-travail");
    let name = || async {
        sqlx::query_scalar::<_, String>(&format!(
            "SELECT identity_family_name FROM {}.persons WHERE person_id = $1",
            ft.schema
        ))
        .bind(person)
        .fetch_optional(&db.pool)
        .await
        // The model's schema appears when the projector starts.
        .unwrap_or_default()
    };
    eventually(Duration::from_secs(30), "projected", || async {
        name().await.is_some()
    })
    .await;
    assert_eq!(
        name().await.as_deref(),
        Some("Testeur9"),
        "an older fact does not overwrite"
    );
    // ...while a newer one told by another operator (Cap Emploi) reaches France Travail's model.
    identity_update(&db, &persons, person, "Nouveau", at(7), CE_ORG).await;
    eventually(
        Duration::from_secs(30),
        "the newer fact is seen by all",
        || async { name().await.as_deref() == Some("Nouveau") },
    )
    .await;
    projector.shutdown.cancel();
    projector.handle.await.expect("joined").expect("clean stop");
    db.drop_db().await;
}
