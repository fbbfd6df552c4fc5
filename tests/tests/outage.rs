//! Kafka stopped: the read answers 503 and discloses nothing (fail closed), health names Kafka,
//! and service resumes when Kafka is back.
//!
//! This test stops the shared Kafka broker, so it is built only with `--features outage` and
//! run alone after the rest of the suite (`make test` does).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn kafka(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/kafka.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .status()
        .expect("kafka.sh runs");
    assert!(status.success(), "kafka.sh {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_kafka_stopped_the_read_answers_503_and_discloses_nothing() {
    let db = TestDb::new().await;
    let persons = topic("it-persons", 1).await;
    let access = topic("it-access", 1).await;
    let registration = registration(42);
    let person_id = registration.person_id;
    let family_name = registration.identity.family_name.clone();
    publisher(&db, &persons)
        .register(registration)
        .await
        .expect("published");
    let projector = start_projector(&db, &persons, &unique("it-group"));
    eventually(Duration::from_secs(30), "projected", || async {
        in_model(&db, "france-travail", person_id).await
    })
    .await;
    projector.shutdown.cancel();
    let _ = projector.handle.await;

    let api = start_api(&db, &access, &brokers(), Duration::from_secs(3)).await;
    grant(&db.pool, USER, ORG, ECOSYSTEM).await;
    let token = api.default_token();
    let http = client();
    let read = || {
        http.get(format!("{}/persons/{person_id}", api.base))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(
        read().await.expect("answers").status(),
        200,
        "readable with Kafka up"
    );

    kafka("stop");
    let response = read().await.expect("answers");
    let status = response.status();
    let body = response.text().await.expect("body");
    let health = http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health answers");
    let health_status = health.status();
    let health_body: serde_json::Value = health.json().await.expect("health json");
    kafka("start");
    kafka("wait");

    assert_eq!(status, 503);
    assert!(body.contains("trail.unavailable"), "{body}");
    assert!(
        !body.contains(&family_name),
        "no personal data leaks: {body}"
    );
    assert!(
        !body.contains(&person_id.to_string()),
        "not even the id: {body}"
    );
    assert_eq!(health_status, 503);
    let failing = health_body["failing"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        failing.contains(&serde_json::json!("kafka")),
        "health names Kafka: {health_body}"
    );

    eventually(
        Duration::from_secs(60),
        "readable again once Kafka is back",
        || async { read().await.map(|r| r.status() == 200).unwrap_or(false) },
    )
    .await;
    api.shutdown.cancel();
    db.drop_db().await;
}
