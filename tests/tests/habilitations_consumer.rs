//! The habilitations replay fails closed and rides out outages: an event it cannot decode stops
//! it (never skipped: the revocation after it is not applied either), and the API then refuses
//! every decision that needs a grant and names the cause in `/health`; Kafka unreachable, or the
//! topic missing, is waited out and the replay resumes by itself.
//!
//! Its own test binary: the first test uses the process-wide status (`consumer::run`, as
//! `socle serve` does), which every API of this process consults.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;
use socle_kafka::EventProducer;
use socle_policy::consumer::{self, Status};
use socle_policy::grants::{GrantPublisher, HabilitationRevoked};
use tokio_util::sync::CancellationToken;

async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_that_cannot_be_decoded_stops_the_replay_and_the_api_refuses() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let habilitations = random_topic("it-habilitations").await;
    let producer = EventProducer::new(&brokers(), Duration::from_secs(10)).expect("producer");
    let publisher = GrantPublisher {
        producer: producer.clone(),
        codec: codec(),
        topic: habilitations.clone(),
    };
    // Published before the API starts: replayed from the topic, not inserted in the table.
    let g = socle_policy::grants::new_grant(
        USER,
        ORG,
        ECOSYSTEM,
        &["person.read"],
        "accompagnement",
        Utc::now() - chrono::Duration::minutes(1),
        Utc::now() + chrono::Duration::days(1),
        "test-admin",
    );
    publisher.grant(&g).await.expect("grant published");

    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, ECOSYSTEM, ORG, "Hugo", 6, 1).await;
    let stop = CancellationToken::new();
    let replay = tokio::spawn({
        let (topic, pool, stop) = (habilitations.clone(), pool.clone(), stop.clone());
        async move { consumer::run(&brokers(), &topic, pool, codec(), stop).await }
    });
    eventually("the replay is caught up", || {
        consumer::process_status().is_some_and(|s| s.state().caught_up)
    })
    .await;
    let http = http();
    let read = || {
        http.get(format!("{}/persons/{}", api.base, people[0].person_id))
            .bearer_auth(api.default_token())
            .send()
    };
    assert_eq!(read().await.expect("answers").status(), 200, "granted");
    let health: serde_json::Value = http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["checks"]["habilitations"]["ok"], true, "{health}");

    // A message whose schema id the registry does not know (e.g. its schema was deleted), then
    // a valid revocation of the grant: neither may be skipped.
    let mut poison = vec![0u8, 0x7f, 0xff, 0xff, 0x01];
    poison.extend_from_slice(b"not avro");
    producer
        .send(&habilitations, USER, &poison)
        .await
        .expect("poison published");
    publisher
        .revoke(&HabilitationRevoked {
            envelope: socle_domain::Envelope::new(ORG, Utc::now()).with_actor("test-admin"),
            grant_id: g.grant_id,
            user: USER.into(),
            organisation: ORG.into(),
            effective_at: socle_domain::time::to_micros(Utc::now()),
            revoked_by: "test-admin".into(),
            reason_code: None,
        })
        .await
        .expect("revocation published");
    eventually("the replay stops at the poison", || {
        consumer::process_status().is_some_and(|s| s.state().failed.is_some())
    })
    .await;
    let state = consumer::process_status().expect("status").state();
    let failed = state.failed.clone().expect("failed");
    assert!(
        failed.contains(&format!("{habilitations}/0@1")),
        "names the event: {failed}"
    );

    // The API refuses what needs a grant, and says why in /health.
    let r = read().await.expect("answers");
    assert_eq!(r.status(), 503);
    let problem: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(problem["code"], "habilitations.unavailable", "{problem}");
    let health = http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 503);
    let health: serde_json::Value = health.json().await.expect("json");
    assert!(
        health["failing"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "habilitations")),
        "{health}"
    );
    assert!(
        health["checks"]["habilitations"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("@1")),
        "{health}"
    );

    // Nothing was skipped: the poison's offset is not stored, the revocation behind it is not
    // applied (it will be once the poison is resolved), and the replay stays stopped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT next_offset FROM habilitations.offsets WHERE topic = $1 AND partition = 0",
    )
    .bind(&habilitations)
    .fetch_one(&pool)
    .await
    .expect("offset");
    assert_eq!(stored, 1, "the poison (offset 1) is not stored as applied");
    let revocations: i64 = sqlx::query_scalar("SELECT count(*) FROM habilitations.revocations")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(revocations, 0);
    assert!(!replay.is_finished(), "stopped, but still reporting");
    stop.cancel();
    replay.await.expect("joined").expect("ends on shutdown");
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_unreachable_and_a_missing_topic_are_waited_out() {
    let (pool, db) = fresh_db().await;
    socle_policy::migrate(&pool)
        .await
        .expect("habilitations migrated");
    // No broker listens there: the replay waits, reports it, and stops only on shutdown.
    let status = Status::new();
    let stop = CancellationToken::new();
    let replay = tokio::spawn({
        let (pool, status, stop) = (pool.clone(), status.clone(), stop.clone());
        async move {
            consumer::run_with_status("127.0.0.1:9", "it-nowhere", pool, codec(), status, stop)
                .await
        }
    });
    eventually("waiting for Kafka", || status.state().waiting.is_some()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !replay.is_finished(),
        "an unreachable broker never stops it"
    );
    let state = status.state();
    assert!(!state.caught_up && state.failed.is_none(), "{state:?}");
    assert!(state.trusted().is_err(), "the API refuses meanwhile");
    stop.cancel();
    replay.await.expect("joined").expect("ends on shutdown");

    // The real broker, but the topic does not exist yet: waited out until it is created, then
    // a grant published on it is applied.
    let topic = format!("it-habilitations-late-{}", uuid::Uuid::new_v4().simple());
    let status = Status::new();
    let stop = CancellationToken::new();
    let replay = tokio::spawn({
        let (topic, pool, status, stop) =
            (topic.clone(), pool.clone(), status.clone(), stop.clone());
        async move { consumer::run_with_status(&brokers(), &topic, pool, codec(), status, stop).await }
    });
    eventually("waiting for the topic", || {
        status
            .state()
            .waiting
            .is_some_and(|w| w.contains(topic.as_str()))
    })
    .await;
    create_topic(&topic, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let s = status.state();
        if s.caught_up && s.waiting.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not caught up once the topic exists: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let publisher = GrantPublisher {
        producer: EventProducer::new(&brokers(), Duration::from_secs(10)).expect("producer"),
        codec: codec(),
        topic: topic.clone(),
    };
    let g = socle_policy::grants::new_grant(
        USER,
        ORG,
        ECOSYSTEM,
        &["person.read"],
        "accompagnement",
        Utc::now() - chrono::Duration::minutes(1),
        Utc::now() + chrono::Duration::days(1),
        "test-admin",
    );
    publisher.grant(&g).await.expect("grant published");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM habilitations.grants")
            .fetch_one(&pool)
            .await
            .expect("count");
        if n == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "grant not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(status.state().healthy().is_ok(), "{:?}", status.state());
    stop.cancel();
    replay.await.expect("joined").expect("ends on shutdown");
    drop_db(pool, &db).await;
}
