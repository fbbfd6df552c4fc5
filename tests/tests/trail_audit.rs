//! The audit store on the real services: access events and person events projected into
//! PostgreSQL, the auditors' questions answered from it, restrictions hiding entries from the
//! person's own journal only, and the HTTP routes refusing non-auditors while recording every
//! query (refusals included) on the access trail.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use common::*;
use serde::Serialize;
use socle_audit::http::{AuditState, Auditor};
use socle_audit::queries::{self, Actor, Period, Restricted};
use socle_domain::{AccessEvent, Decision, Envelope};
use socle_kafka::schemas::Contract;
use socle_kafka::AccessTrail;
use tokio_util::sync::CancellationToken;

/// A canonical person event of a type the audit projector has never heard of: it reads any
/// event's envelope and `person_id`.
static FOLLOWED: LazyLock<Contract> = LazyLock::new(|| {
    let envelope = serde_json::from_str::<serde_json::Value>(include_str!(
        "../../schemas/access/AccessEvent.avsc"
    ))
    .expect("json")["fields"][0]
        .clone();
    let raw = serde_json::json!({
        "type": "record", "name": "TrailTestFollowed", "namespace": "socle.person",
        "fields": [envelope, {"name": "person_id", "type": "string"}, {"name": "organisation", "type": "string"}]
    })
    .to_string();
    let raw: &'static str = Box::leak(raw.into_boxed_str());
    Contract {
        name: "socle.person.TrailTestFollowed",
        raw,
        schema: apache_avro::Schema::parse_str(raw).expect("schema"),
    }
});

#[derive(Serialize)]
struct Followed {
    envelope: Envelope,
    person_id: String,
    organisation: String,
}

fn access(user: &str, person: &str, decision: Decision) -> AccessEvent {
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
        decision,
        reason: (decision == Decision::Deny).then(|| "scope.outside_caseload".to_owned()),
        policy_version: Some("policy-1".into()),
        agreement_version: Some("france-travail@1".into()),
    }
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM audit.{table}"))
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn auditors_get_complete_answers_and_every_query_is_on_the_trail() {
    let db = TestDb::new().await;
    socle_audit::migrate(&db.pool)
        .await
        .expect("audit migrations");
    let access_topic = topic("audit-access", 3).await;
    let persons_topic = topic("audit-persons", 1).await;
    let person = uuid::Uuid::now_v7().to_string();
    let other = uuid::Uuid::now_v7().to_string();

    let trail = AccessTrail::new(producer(), codec(), &access_topic);
    let followed = Followed {
        envelope: Envelope::new(ORG, Utc::now()).with_actor("is.france-travail"),
        person_id: person.clone(),
        organisation: ORG.into(),
    };
    let payload = codec()
        .encode(&persons_topic, &FOLLOWED, &followed)
        .await
        .expect("encode");
    producer()
        .send(&persons_topic, &person, &payload)
        .await
        .expect("person event");
    let mut suspicious = None;
    for (user, who, decision) in [
        ("advisor.a", &person, Decision::Allow),
        ("advisor.b", &person, Decision::Allow),
        ("advisor.b", &other, Decision::Allow),
        ("advisor.c", &person, Decision::Deny),
    ] {
        let e = access(user, who, decision);
        if user == "advisor.b" && who == &person {
            suspicious = Some(e.envelope.event_id);
        }
        trail.record(&e).await.expect("appended");
    }

    let shutdown = CancellationToken::new();
    let projector = tokio::spawn(socle_audit::project::run(
        socle_audit::project::AuditProjectorConfig {
            brokers: brokers(),
            access_topic: access_topic.clone(),
            person_topics: vec![persons_topic.clone()],
            group: format!("audit-{}", uuid::Uuid::new_v4().simple()),
            group_instance_id: None,
            batch_size: 100,
            batch_timeout: Duration::from_millis(20),
        },
        db.pool.clone(),
        codec(),
        shutdown.clone(),
    ));
    eventually(Duration::from_secs(30), "projected", || async {
        count(&db, "access").await == 4 && count(&db, "person_events").await == 1
    })
    .await;

    let all = Period::new(None, None).expect("period");
    let who = queries::who_accessed(&db.pool, &person, all, 100)
        .await
        .expect("who");
    let users: Vec<&str> = who.rows.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, vec!["advisor.a", "advisor.b", "advisor.c"]);
    assert!(!who.truncated);
    assert_eq!(who.rows[2].decision, "DENY");
    assert_eq!(
        who.rows[0].agreement_version.as_deref(),
        Some("france-travail@1")
    );
    let page = queries::who_accessed(&db.pool, &person, all, 2)
        .await
        .expect("who");
    assert!(page.truncated, "a short page says so");

    let b = queries::actor(&db.pool, &Actor::User("advisor.b".into()), all, 100)
        .await
        .expect("actor");
    assert_eq!(b.rows.len(), 2);
    let org = queries::actor(&db.pool, &Actor::Organisation(ORG.into()), all, 100)
        .await
        .expect("org");
    assert_eq!(org.rows.len(), 4);
    let empty = Period::new(Some(Utc::now() + chrono::Duration::hours(1)), None).expect("period");
    assert!(
        queries::actor(&db.pool, &Actor::User("advisor.b".into()), empty, 100)
            .await
            .expect("actor")
            .rows
            .is_empty()
    );
    assert!(matches!(
        Period::new(
            Some(Utc::now()),
            Some(Utc::now() - chrono::Duration::hours(1))
        ),
        Err(socle_audit::Error::BadRequest(_))
    ));

    let timeline = queries::timeline(&db.pool, &person, all, 100)
        .await
        .expect("timeline");
    let kinds: Vec<&str> = timeline.rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, vec!["event", "access", "access", "access"]);
    assert_eq!(timeline.rows[0].what, "socle.person.TrailTestFollowed");
    let csv = queries::timeline_csv(&timeline.rows).expect("csv");
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("occurred_at,kind,event_id,what,who,organisation,decision,reason"));

    // An investigation on advisor.b's read: withheld from the person's journal, not from auditors.
    let suspicious = suspicious.expect("event id");
    queries::restrict(
        &db.pool,
        &Restricted::Event(suspicious),
        "enquête 2026-17",
        "dpo.alice",
    )
    .await
    .expect("restricted");
    let journal = queries::journal(&db.pool, &person, all, 100)
        .await
        .expect("journal");
    let users: Vec<&str> = journal.rows.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, vec!["advisor.a", "advisor.c"]);
    assert_eq!(
        queries::who_accessed(&db.pool, &person, all, 100)
            .await
            .expect("who")
            .rows
            .len(),
        3
    );
    assert!(matches!(
        queries::restrict(&db.pool, &Restricted::Event(suspicious), " ", "dpo.alice").await,
        Err(socle_audit::Error::BadRequest(_))
    ));

    // The HTTP routes, behind a stand-in for the API's authentication layer.
    let state = AuditState::new(
        db.pool.clone(),
        AccessTrail::new(producer(), codec(), &access_topic),
        &brokers(),
    );
    let app = socle_audit::http::router(state).layer(axum::middleware::from_fn(
        |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            let who = req
                .headers()
                .get("x-test-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(user) = who {
                req.extensions_mut().insert(Auditor {
                    is_auditor: user.starts_with("auditor."),
                    user,
                    organisation: ORG.into(),
                    auth_strength: "mfa".into(),
                });
            }
            next.run(req).await
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let url = format!("{base}/audit/persons/{person}/accesses");
    let r = http.get(&url).send().await.expect("answer");
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .header("x-test-user", "advisor.a")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "role.not_auditor");
    let r = http
        .get(format!("{url}?from=yesterday"))
        .header("x-test-user", "auditor.cnil")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = http
        .get(&url)
        .header("x-test-user", "auditor.cnil")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    // The reads of the person; the auditors' own queries of them are rows too once projected.
    let reads = body["rows"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| r["action"] == "person.read").count());
    assert_eq!(reads, Some(3), "{body}");
    assert_eq!(body["freshness"]["topic"], access_topic.as_str(), "{body}");
    let r = http
        .get(format!("{base}/audit/persons/{person}/timeline?format=csv"))
        .header("x-test-user", "auditor.cnil")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("csv").starts_with("occurred_at,kind"));

    // Every query (the refusal too) is itself an access event on the trail, and so in the store.
    eventually(
        Duration::from_secs(30),
        "audit queries projected",
        || async {
            let rows = queries::actor(&db.pool, &Actor::Organisation(ORG.into()), all, 100)
                .await
                .expect("org")
                .rows;
            let audit: Vec<(String, String)> = rows
                .iter()
                .filter(|r| r.action.starts_with("audit."))
                .map(|r| (r.user.clone(), r.decision.clone()))
                .collect();
            audit.contains(&("advisor.a".into(), "DENY".into()))
                && audit
                    .iter()
                    .filter(|(u, d)| u == "auditor.cnil" && d == "ALLOW")
                    .count()
                    == 3
        },
    )
    .await;
    shutdown.cancel();
    projector.await.expect("joined").expect("projector ran");
    db.drop_db().await;
}
