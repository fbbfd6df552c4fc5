//! The auditors' answers say how fresh they are, and a store behind the trail does not answer:
//! on the real services, a store that has never projected the trail, one stopped behind it
//! (past the entries bound, past the time bound) and one whose lag cannot be measured are each
//! refused with their code; once projected, the answers carry their freshness. Transaction
//! markers on the trail are not counted as lag.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use socle_audit::freshness::{Bounds, FreshnessCheck, Stale};
use socle_audit::http::{AuditState, Auditor};
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_kafka::schemas::ACCESS_EVENT;
use socle_kafka::AccessTrail;

fn access(user: &str, person: &str) -> AccessEvent {
    AccessEvent {
        envelope: Envelope::new(ORG, Utc::now()).with_actor(user),
        request_id: uuid::Uuid::now_v7().to_string(),
        user: user.to_owned(),
        organisation: ORG.to_owned(),
        ecosystem: Some("france-travail".into()),
        purpose: Some("accompagnement".into()),
        auth_strength: "mfa".into(),
        action: "person.read".into(),
        resource: format!("/persons/{person}"),
        person_ids: vec![person.to_owned()],
        decision: Decision::Allow,
        reason: None,
        policy_version: Some("policy-1".into()),
        agreement_version: Some("france-travail@1".into()),
    }
}

/// The audit routes on a random port, behind a stand-in for the API's authentication.
async fn serve(state: AuditState) -> String {
    let app = socle_audit::http::router(state).layer(axum::middleware::from_fn(
        |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            req.extensions_mut().insert(Auditor {
                user: "auditor.cnil".into(),
                organisation: ORG.into(),
                auth_strength: "mfa".into(),
                is_auditor: true,
            });
            next.run(req).await
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The reads among the rows (the auditors' own queries of the person are rows too, once projected).
fn reads(body: &serde_json::Value) -> usize {
    body["rows"].as_array().map_or(0, |rows| {
        rows.iter().filter(|r| r["action"] == "person.read").count()
    })
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_behind_the_trail_refuses_to_answer_and_answers_say_how_fresh_they_are() {
    let db = TestDb::new().await;
    socle_audit::migrate(&db.pool)
        .await
        .expect("audit migrations");
    let access_topic = topic("audit-fresh", 2).await;
    let person = uuid::Uuid::now_v7().to_string();
    let trail = AccessTrail::new(producer(), codec(), &access_topic);
    for user in ["advisor.a", "advisor.b", "advisor.c", "advisor.d"] {
        trail
            .record(&access(user, &person))
            .await
            .expect("appended");
    }
    let state = AuditState::new(db.pool.clone(), trail.clone(), &brokers());
    let base = serve(state.clone()).await;
    let url = format!("{base}/audit/persons/{person}/accesses");

    // The projector has never run: not an empty success, a refusal that says what must run.
    let r = reqwest::get(&url).await.expect("answer");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "audit.store_behind", "{body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("never projected"), "{detail}");
    assert!(detail.contains("socle audit project"), "{detail}");
    assert!(
        body["freshness"]["lag_entries"].as_i64() >= Some(4),
        "{body}"
    );
    assert!(body["freshness"]["as_of"].is_null(), "{body}");
    let check = FreshnessCheck::new(brokers(), &access_topic);
    assert!(matches!(
        check.check(&db.pool).await,
        Err(Stale::Behind { .. })
    ));

    // Projected: the answer, with its freshness.
    project_trail(&db.pool, &access_topic).await;
    let (status, body) = get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reads(&body), 4, "{body}");
    let f = &body["freshness"];
    assert_eq!(f["topic"], access_topic.as_str());
    assert!(f["as_of"].is_string(), "{body}");
    assert!(f["lag_ms"].is_i64(), "{body}");
    assert_eq!(f["positions"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(f["lag_entries"].as_i64() <= Some(1000), "{body}");
    project_trail(&db.pool, &access_topic).await;
    let caught_up = check.check(&db.pool).await.expect("fresh");
    assert_eq!(caught_up.lag_entries, 0, "{caught_up:?}");
    assert_eq!(caught_up.lag_ms, 0, "{caught_up:?}");
    assert!(caught_up.as_of.is_some());

    // Nothing projects any more; the trail goes on.
    for i in 0..10 {
        trail
            .record(&access(&format!("advisor.late.{i}"), &person))
            .await
            .expect("appended");
    }
    // Within the default bounds: answered, and the answer says what it lacks.
    let (status, body) = get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["freshness"]["lag_entries"].as_i64() >= Some(10),
        "{body}"
    );
    assert_eq!(reads(&body), 4, "the late reads are not in the store yet");
    let r = reqwest::get(format!("{base}/audit/persons/{person}/timeline?format=csv"))
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let lag: i64 = r
        .headers()
        .get("x-socle-lag-entries")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("x-socle-lag-entries");
    assert!(lag >= 10);
    assert!(r.headers().get("x-socle-as-of").is_some());

    // Past the entries bound.
    let mut strict = state.clone();
    strict.freshness = strict.freshness.with_bounds(Bounds {
        max_lag_entries: 5,
        max_lag: Duration::from_secs(3600),
    });
    let strict_base = serve(strict).await;
    let (status, body) = get(&format!("{strict_base}/audit/actors/advisor.a")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "audit.store_behind");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("entries and"), "{detail}");
    assert!(detail.contains("bounds: 5 entries"), "{detail}");
    assert!(
        body["freshness"]["lag_entries"].as_i64() >= Some(10),
        "{body}"
    );

    // Past the time bound.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut hurried = state.clone();
    hurried.freshness = hurried.freshness.with_bounds(Bounds {
        max_lag_entries: 1_000_000,
        max_lag: Duration::from_millis(10),
    });
    let hurried_base = serve(hurried).await;
    let (status, body) = get(&format!("{hurried_base}/audit/organisations/{ORG}")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "audit.store_behind");
    assert!(body["freshness"]["lag_ms"].as_i64() > Some(10), "{body}");

    // The lag cannot be measured: fail closed, with its own code.
    let mut blind = state.clone();
    blind.freshness =
        FreshnessCheck::new("127.0.0.1:1", &access_topic).with_timeout(Duration::from_millis(1500));
    let blind_base = serve(blind).await;
    let (status, body) = get(&format!("{blind_base}/audit/persons/{person}/journal")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "audit.freshness_unknown", "{body}");

    // The projector back: it catches up, and the answers are complete again.
    project_trail(&db.pool, &access_topic).await;
    let (status, body) = get(&format!("{strict_base}/audit/actors/advisor.a")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["freshness"]["lag_entries"].as_i64() <= Some(1),
        "{body}"
    );
    let (status, body) = get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reads(&body), 14, "{body}");
    db.drop_db().await;
}

/// Transaction markers (and aborted entries) sit between the store's position and the end of a
/// transactionally written topic; they are not entries the store lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_markers_on_the_trail_are_not_lag() {
    let db = TestDb::new().await;
    socle_audit::migrate(&db.pool)
        .await
        .expect("audit migrations");
    let access_topic = topic("audit-fresh-tx", 1).await;
    let producer: FutureProducer = socle_kafka::client_config(&brokers())
        .set("transactional.id", unique("audit-fresh-tx"))
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(20))
        .expect("init transactions");
    let codec = codec();
    let person = uuid::Uuid::now_v7().to_string();
    for commit in [true, false, true] {
        producer.begin_transaction().expect("begin");
        for _ in 0..2 {
            let e = access("advisor.tx", &person);
            let payload = codec
                .encode(&access_topic, &ACCESS_EVENT, &e)
                .await
                .expect("encode");
            producer
                .send(
                    FutureRecord::to(&access_topic)
                        .key(&e.user)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("sent");
        }
        if commit {
            producer
                .commit_transaction(Duration::from_secs(20))
                .expect("commit");
        } else {
            producer
                .abort_transaction(Duration::from_secs(20))
                .expect("abort");
        }
    }
    let check = FreshnessCheck::new(brokers(), &access_topic);
    let before = check.measure(&db.pool).await.expect("measured");
    assert!(before.never_projected());
    assert_eq!(before.positions[0].end, 9, "6 entries and 3 markers");

    assert_eq!(
        project_trail(&db.pool, &access_topic).await,
        4,
        "committed entries only"
    );
    let f = check.check(&db.pool).await.expect("fresh");
    assert_eq!(f.lag_entries, 0, "{f:?}");
    assert_eq!(f.positions[0].end, 9);
    assert_eq!(
        f.positions[0].projected,
        Some(8),
        "the commit marker at 8 is never read"
    );
    db.drop_db().await;
}
