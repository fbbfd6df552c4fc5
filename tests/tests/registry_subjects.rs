//! `socle admin schemas apply` (crate socle-contracts, `subjects::apply`) against a registry
//! on a fresh database: every contract of `schemas/subjects.toml` lands under its
//! `TopicRecordNameStrategy` subject with BACKWARD_TRANSITIVE; applying again changes nothing
//! (no version, no event); a contract edit that breaks compatibility — including one that only
//! breaks it against an older version (transitivity) — is refused with the registry's 409.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use socle_contracts::subjects::{self, RegistryClient, SubjectsFile};
use socle_contracts::Error;
use socle_registry::Registry;
use tokio_util::sync::CancellationToken;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn serve(pool: sqlx::PgPool) -> (String, CancellationToken) {
    let registry = Registry::new(pool)
        .await
        .expect("registry")
        .with_events(100_000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(registry.serve(listener, async move { stop.cancelled().await }));
    (base, shutdown)
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let response = common::client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("registry answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn outbox_len(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM registry.events")
        .fetch_one(pool)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn applying_registers_every_contract_once_and_twice_is_a_no_op() {
    let db = common::TestDb::new().await;
    let (base, shutdown) = serve(db.pool.clone()).await;
    let client = RegistryClient::new(&base, "ci-test").expect("client");
    let file = SubjectsFile::load(&repo().join("schemas/subjects.toml")).expect("subjects file");
    let n = file.contracts.len();
    assert!(n >= 28, "{n} contracts");

    let first = subjects::apply(&client, &file).await.expect("first apply");
    assert_eq!(first.len(), n);
    assert!(
        first
            .iter()
            .all(|a| a.registered && a.compatibility_set && a.version == 1 && a.id > 0),
        "{first:#?}"
    );
    // Two events per subject: its level, its first version.
    assert_eq!(
        outbox_len(&db.pool).await,
        2 * i64::try_from(n).expect("small")
    );

    let second = subjects::apply(&client, &file).await.expect("second apply");
    assert!(
        second.iter().all(|a| !a.registered && !a.compatibility_set),
        "{second:#?}"
    );
    let ids = |v: &[subjects::Applied]| {
        v.iter()
            .map(|a| (a.subject.clone(), a.version, a.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(
        outbox_len(&db.pool).await,
        2 * i64::try_from(n).expect("small")
    );

    let (_, listed) = get(&base, "/subjects").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(n));
    for c in &file.contracts {
        let (status, config) = get(&base, &format!("/config/{}", c.subject)).await;
        assert_eq!(
            (status, &config["compatibilityLevel"]),
            (200, &json!("BACKWARD_TRANSITIVE")),
            "{}",
            c.subject
        );
        let (_, versions) = get(&base, &format!("/subjects/{}/versions", c.subject)).await;
        assert_eq!(versions, json!([1]), "{}", c.subject);
    }
    // The subject socle's own producers encode under: the Codec's TopicRecordNameStrategy.
    assert!(file
        .contracts
        .iter()
        .any(|c| c.subject == "socle.persons-socle.person.PersonRegistered"));
    shutdown.cancel();
    db.drop_db().await;
}

/// A copy of `schemas/` to edit.
fn copy_schemas() -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read schemas") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("socle-schemas-{}", uuid::Uuid::new_v4().simple()));
    copy(&repo().join("schemas"), &dir);
    dir
}

/// Appends `field` to the record in `path`.
fn add_field(path: &Path, field: Value) {
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    schema["fields"].as_array_mut().expect("fields").push(field);
    std::fs::write(path, schema.to_string()).expect("write");
}

/// Replaces the last field of the record in `path`.
fn replace_last_field(path: &Path, field: Value) {
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    let fields = schema["fields"].as_array_mut().expect("fields");
    fields.pop();
    fields.push(field);
    std::fs::write(path, schema.to_string()).expect("write");
}

#[tokio::test]
async fn an_incompatible_contract_change_is_refused_with_the_registrys_409() {
    let db = common::TestDb::new().await;
    let (base, shutdown) = serve(db.pool.clone()).await;
    let client = RegistryClient::new(&base, "ci-test").expect("client");
    let dir = copy_schemas();
    let load = || SubjectsFile::load(&dir.join("subjects.toml")).expect("subjects file");
    subjects::apply(&client, &load())
        .await
        .expect("first apply");
    let exited = dir.join("person/PersonExited.avsc");
    let subject = "socle.persons-socle.person.PersonExited";

    // A new field without a default: old events cannot be read.
    let original = std::fs::read_to_string(&exited).expect("read");
    add_field(
        &exited,
        json!({"name": "exit_reason_code", "type": "string"}),
    );
    let err = subjects::apply(&client, &load())
        .await
        .expect_err("refused");
    let Error::Incompatible {
        subject: s,
        path,
        message,
    } = &err
    else {
        panic!("not a 409: {err}");
    };
    assert_eq!(
        (s.as_str(), path.as_str()),
        (subject, "person/PersonExited.avsc")
    );
    assert!(
        message.contains("incompatible") && message.contains("exit_reason_code"),
        "{message}"
    );
    assert_eq!(
        get(&base, &format!("/subjects/{subject}/versions")).await.1,
        json!([1])
    );

    // With a default it is compatible: version 2.
    std::fs::write(&exited, &original).expect("restore");
    add_field(
        &exited,
        json!({"name": "exit_reason_code", "type": "string", "default": "UNKNOWN"}),
    );
    let applied = subjects::apply(&client, &load())
        .await
        .expect("compatible change");
    let a = applied
        .iter()
        .find(|a| a.subject == subject)
        .expect("applied");
    assert!(a.registered && a.version == 2, "{a:?}");

    // Dropping the default reads version 2's events but not version 1's: only the
    // transitive check refuses it.
    replace_last_field(
        &exited,
        json!({"name": "exit_reason_code", "type": "string"}),
    );
    let err = subjects::apply(&client, &load())
        .await
        .expect_err("refused transitively");
    assert!(matches!(err, Error::Incompatible { .. }), "{err}");
    assert!(
        err.to_string().contains("person/PersonExited.avsc"),
        "{err}"
    );
    assert_eq!(
        get(&base, &format!("/subjects/{subject}/versions")).await.1,
        json!([1, 2])
    );

    let _ = std::fs::remove_dir_all(&dir);
    shutdown.cancel();
    db.drop_db().await;
}
