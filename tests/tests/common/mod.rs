//! Shared set-up for the integration tests: the real Kafka, PostgreSQL and schema registry,
//! found through the `SOCLE__...` variables that `make test` exports (defaults: the local stack).
//! Each test gets its own database and its own randomly named topics and consumer groups, so
//! tests run in parallel without seeing each other.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use socle_domain::PersonIdentity;
use socle_ingest::{Publisher, Registration};
use socle_kafka::{Codec, EventProducer};
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub fn brokers() -> String {
    std::env::var("SOCLE__KAFKA__BROKERS").unwrap_or_else(|_| "localhost:9092".into())
}

pub fn database_url() -> String {
    std::env::var("SOCLE__DATABASE__URL")
        .unwrap_or_else(|_| "postgres://socle:socle@localhost:5432/socle".into())
}

pub fn registry_url() -> String {
    std::env::var("SOCLE__REGISTRY__URL").unwrap_or_else(|_| "http://localhost:8081".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// A database of its own for one test, migrated; dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin_url = database_url();
        let name = format!("socle_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL answers at SOCLE__DATABASE__URL (run `make test`)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("database url without a database name: {admin_url}"),
        };
        let pool = socle_store::connect(&url, 8)
            .await
            .expect("connect test db");
        socle_store::migrate(&pool).await.expect("migrate test db");
        TestDb { pool, name, url }
    }

    pub async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&database_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// Creates a topic with a random name.
pub async fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    let admin: AdminClient<DefaultClientContext> = socle_kafka::client_config(&brokers())
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            [&NewTopic::new(
                &name,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .expect("Kafka answers at SOCLE__KAFKA__BROKERS (run `make test`)");
    for r in results {
        r.expect("topic created");
    }
    name
}

pub fn codec() -> Arc<Codec> {
    Arc::new(Codec::new(&registry_url()).expect("codec"))
}

pub fn producer() -> EventProducer {
    EventProducer::new(&brokers(), Duration::from_secs(10)).expect("producer")
}

pub fn publisher(db: &TestDb, persons_topic: &str) -> Publisher {
    Publisher::new(db.pool.clone(), codec(), producer(), persons_topic)
}

/// A synthetic registration (valid NIR key) for a fresh person.
pub fn registration(n: u32) -> Registration {
    let birth = NaiveDate::from_ymd_opt(1990, 1 + n % 12, 1 + n % 28).expect("valid date");
    let first13 = format!("1{:02}{:02}75056{:03}", 90, 1 + n % 12, 1 + n % 999);
    let key = 97 - first13.parse::<u64>().expect("digits") % 97;
    let mut identity = PersonIdentity {
        nir: Some(format!("{first13}{key:02}")),
        family_name: format!("Testeur{n}"),
        given_name: "Alix".into(),
        birth_date: 0,
        email: None,
        phone: None,
    };
    identity.set_birth_date(birth);
    Registration {
        person_id: Uuid::now_v7(),
        operator: "france-travail".into(),
        registering_organisation: "90000100900019".into(),
        registered_on: NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date"),
        commune: "75056".into(),
        departement: "75".into(),
        identity,
        actor: Some("test".into()),
        occurred_at: Utc::now(),
    }
}

/// A projector running in the background on `topic` into `db`.
pub struct RunningProjector {
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<socle_projector::Result<()>>,
}

pub fn projector_config(topic: &str, group: &str) -> socle_projector::ProjectorConfig {
    socle_projector::ProjectorConfig {
        brokers: brokers(),
        topic: topic.to_owned(),
        group: group.to_owned(),
        batch_size: 50,
        batch_timeout: Duration::from_millis(20),
    }
}

/// Whether `person` is in the `eco_<ecosystem>` model of the test database (false while the
/// projector has not created it yet).
pub async fn in_model(db: &TestDb, ecosystem: &str, person: Uuid) -> bool {
    let schema = format!("eco_{}", ecosystem.replace('-', "_"));
    socle_store::ecosystem::person_ids(&db.pool, &schema)
        .await
        .map(|ids| ids.contains(&person))
        .unwrap_or(false)
}

/// The agreements shipped in `deploy/agreements/`.
pub fn agreements() -> socle_agreements::Agreements {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agreements");
    socle_agreements::Agreements::load_dir(&dir).expect("the shipped agreements load")
}

/// The live models of the shipped agreements.
pub fn live_models() -> socle_projector::Models {
    socle_projector::Models::new(&agreements(), socle_projector::Layout::live())
}

pub fn start_projector(db: &TestDb, topic: &str, group: &str) -> RunningProjector {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(socle_projector::run(
        projector_config(topic, group),
        db.pool.clone(),
        codec(),
        live_models(),
        shutdown.clone(),
    ));
    RunningProjector { shutdown, handle }
}

/// Waits until `check` holds, polling, or panics after `timeout` with `what`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// The authenticated API's set-up lives in api_support (shared with the api_* tests, which must
// not depend on the projector).
#[path = "../api_support/mod.rs"]
pub mod api_support;
#[allow(unused_imports)]
pub use api_support::{grant, grant_until, project_trail, RunningApi, AUDIENCE, ECOSYSTEM};

/// The API on a random loopback port over `db`, trusting a development IdP of its own.
pub async fn start_api(
    db: &TestDb,
    access_topic: &str,
    brokers: &str,
    delivery: Duration,
) -> RunningApi {
    api_support::start_api(&db.pool, access_topic, brokers, delivery).await
}

pub const USER: &str = "conseiller.test";
pub const ORG: &str = "90000100900019";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The referential (`reference/`, or `SOCLE__REFERENCE__DIR`), loaded once.
pub static REFERENTIAL: std::sync::LazyLock<Arc<socle_domain::reference::Referential>> =
    std::sync::LazyLock::new(|| {
        let dir = std::env::var_os("SOCLE__REFERENCE__DIR").map_or_else(
            || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../reference")),
            std::path::PathBuf::from,
        );
        Arc::new(
            socle_domain::reference::Referential::load(
                &socle_domain::reference::ReferencePaths::under(&dir),
            )
            .expect("the referential (reference/) loads"),
        )
    });

/// Random topics for one test of `socle ingest`: one ingress topic per operator, persons, dead
/// letters.
pub struct IngestTopics {
    pub ingress: std::collections::HashMap<&'static str, String>,
    pub persons: String,
    pub deadletter: String,
}

/// Creates the ingest topics: each ingress topic with `ingress_partitions`, persons (named
/// after `persons_prefix`) with 3, dead letters with 1.
pub async fn ingest_topics(ingress_partitions: i32, persons_prefix: &str) -> IngestTopics {
    let mut ingress = std::collections::HashMap::new();
    for op in socle_domain::person::OPERATORS {
        ingress.insert(
            op,
            topic(&format!("it-ingress-{op}"), ingress_partitions).await,
        );
    }
    IngestTopics {
        ingress,
        persons: topic(persons_prefix, 3).await,
        deadletter: topic("it-deadletter", 1).await,
    }
}

/// `socle ingest`'s configuration over `t`: every operator's ingress topic, the test's registry.
pub fn ingest_config(
    t: &IngestTopics,
    group: &str,
    transactional_id: &str,
    batch_size: usize,
) -> socle_ingest::IngestConfig {
    socle_ingest::IngestConfig {
        brokers: brokers(),
        registry_url: registry_url(),
        group: group.to_owned(),
        transactional_id: transactional_id.to_owned(),
        group_instance_id: None,
        sources: t
            .ingress
            .iter()
            .map(|(op, topic)| socle_ingest::Source {
                topic: topic.clone(),
                operator: (*op).to_owned(),
            })
            .collect(),
        persons_topic: t.persons.clone(),
        deadletter_topic: t.deadletter.clone(),
        batch_size,
        batch_timeout: Duration::from_millis(50),
        transaction_timeout: Duration::from_secs(20),
    }
}

/// A consumer of `topic` from its start, in a new group named after `group_prefix`, that sees
/// committed records only (`isolation.level=read_committed`) and commits nothing.
pub fn committed_reader(group_prefix: &str, topic: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = socle_kafka::client_config(&brokers())
        .set("group.id", unique(group_prefix))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}
