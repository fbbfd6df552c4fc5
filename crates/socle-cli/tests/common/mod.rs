//! Set-up shared by the tests that run the real `socle` binary: the environment, the command,
//! a fresh database and topics.

#![allow(dead_code)]

use std::process::Command;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sqlx::Connection;
use uuid::Uuid;

pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The `socle` binary with `args`, on the database at `db_url` and the repository's agreements.
pub fn socle_command(db_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socle"));
    command.args(args).env("SOCLE__DATABASE__URL", db_url).env(
        "SOCLE__AGREEMENTS__DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/agreements"),
    );
    command
}

/// A new, empty database beside the one at `SOCLE__DATABASE__URL`: the connection that created
/// it (to drop it at the end), its name and its URL.
pub async fn create_database() -> (sqlx::PgConnection, String, String) {
    let admin_url = env(
        "SOCLE__DATABASE__URL",
        "postgres://socle:socle@localhost:5432/socle",
    );
    let db_name = format!("socle_test_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await
        .expect("db");
    let db_url = format!(
        "{}/{db_name}",
        admin_url.rsplit_once('/').expect("db url").0
    );
    (admin, db_name, db_url)
}

/// Creates `topics` (name, partitions) on the Kafka at `brokers`.
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let kafka: AdminClient<DefaultClientContext> =
        socle_kafka::client_config(brokers).create().expect("admin");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in kafka
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("Kafka answers")
    {
        r.expect("topic");
    }
}

/// Runs `socle migrate` (`command`) and asserts it succeeded.
pub fn migrate(mut command: Command) {
    let migrated = command.output().expect("socle migrate runs");
    assert!(
        migrated.status.success(),
        "socle migrate: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
}
