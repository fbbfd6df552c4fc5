//! Kafka stopped: the read answers 503 and discloses nothing (fail closed), health names Kafka,
//! and service resumes when Kafka is back; the API's habilitations replay rides the restart out.
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

/// Kafka stopped under the API's habilitations replay: it does not stop (it used to return on
/// the first consumer error, which took `socle serve` down for good), it says what it waits
/// for, and once Kafka is back it resumes by itself and applies a grant published then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_habilitations_replay_rides_out_a_kafka_restart() {
    use socle_policy::consumer::{run_with_status, Status};
    let db = TestDb::new().await;
    socle_policy::migrate(&db.pool)
        .await
        .expect("habilitations migrated");
    let habilitations = topic("it-habilitations", 1).await;
    let status = Status::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let replay = tokio::spawn({
        let (topic, pool, status, stop) = (
            habilitations.clone(),
            db.pool.clone(),
            status.clone(),
            stop.clone(),
        );
        async move { run_with_status(&brokers(), &topic, pool, codec(), status, stop).await }
    });
    eventually(Duration::from_secs(30), "caught up", || async {
        status.state().caught_up
    })
    .await;

    kafka("stop");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut waited = None;
    while tokio::time::Instant::now() < deadline && waited.is_none() {
        waited = status.state().waiting;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let survived = !replay.is_finished();
    kafka("start");
    kafka("wait");

    assert!(
        survived,
        "the replay stopped with Kafka: {:?}",
        status.state()
    );
    assert!(waited.is_some(), "it says what it waits for");
    eventually(Duration::from_secs(60), "waiting cleared", || async {
        status.state().healthy().is_ok()
    })
    .await;
    let publisher = socle_policy::grants::GrantPublisher {
        producer: producer(),
        codec: codec(),
        topic: habilitations.clone(),
    };
    let g = socle_policy::grants::new_grant(
        USER,
        ORG,
        ECOSYSTEM,
        &["person.read"],
        "accompagnement",
        chrono::Utc::now() - chrono::Duration::minutes(1),
        chrono::Utc::now() + chrono::Duration::days(1),
        "test-admin",
    );
    publisher.grant(&g).await.expect("grant published");
    eventually(
        Duration::from_secs(30),
        "grant applied after the restart",
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM habilitations.grants")
                .fetch_one(&db.pool)
                .await
                .is_ok_and(|n| n == 1)
        },
    )
    .await;
    stop.cancel();
    replay.await.expect("joined").expect("ends on shutdown");
    db.drop_db().await;
}
