//! Helpers shared by the `trail_*` tests (seal, detection, audit store), kept apart from
//! `common/` so that they depend on nothing but the Kafka, PostgreSQL and registry adapters.
//! Compiled into each `trail_*` test with `#[path]`; as a test target of its own it has no test.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use socle_kafka::{Codec, EventProducer};
use sqlx::{Connection, PgPool};
use uuid::Uuid;

pub const ORG: &str = "90000100900019";

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

/// A database of its own for one test (no migrations: each test applies the ones it needs).
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
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
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(&url)
            .await
            .expect("connect test db");
        TestDb { pool, name }
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
    let name = format!("{prefix}-{}", Uuid::new_v4().simple());
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
