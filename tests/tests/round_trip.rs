//! The first round trip on the real services: an operator's registration, projected, read
//! through the API, and that read found in the access trail.

mod common;

use std::time::Duration;

use common::*;
use socle_kafka::tail::TrailReader;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registered_person_is_readable_and_the_read_is_in_the_trail() {
    let db = TestDb::new().await;
    let persons = topic("it-persons", 3).await;
    let access = topic("it-access", 1).await;
    let registration = registration(1);
    let person_id = registration.person_id;
    let published = publisher(&db, &persons)
        .register(registration)
        .await
        .expect("published");
    assert_eq!(published.person_id, person_id);
    let projector = start_projector(&db, &persons, &unique("it-group"));
    eventually(
        Duration::from_secs(30),
        "the person is projected",
        || async { in_model(&db, "france-travail", person_id).await },
    )
    .await;

    let api = start_api(&db, &access, &brokers(), Duration::from_secs(10)).await;
    grant(&db.pool, USER, ORG, ECOSYSTEM).await;
    let response = client()
        .get(format!("{}/persons/{person_id}", api.base))
        .bearer_auth(api.default_token())
        .header("x-request-id", "round-trip-1")
        .send()
        .await
        .expect("API answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "round-trip-1");
    let body: serde_json::Value = response.json().await.expect("json body");
    assert_eq!(body["person_id"], person_id.to_string());
    // The france-travail model, with the fields its agreement grants for the purpose.
    assert_eq!(body["identity_family_name"], "Testeur1");
    assert_eq!(body["identity_nir"].as_str().map(str::len), Some(15));
    assert!(body["agreement_version"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));

    let trail = TrailReader::open(&brokers(), &access, 100, Duration::from_secs(10))
        .await
        .expect("trail opens");
    let events = trail
        .read_to_end(&codec(), Duration::from_secs(10))
        .await
        .expect("trail reads");
    let read = events
        .iter()
        .find(|t| t.event.request_id == "round-trip-1")
        .expect("the read is in the trail");
    assert_eq!(read.event.user, USER);
    assert_eq!(read.event.organisation, ORG);
    assert_eq!(read.event.action, "person.read");
    assert_eq!(read.event.auth_strength, "mfa");
    assert_eq!(read.event.ecosystem.as_deref(), Some(ECOSYSTEM));
    assert_eq!(
        read.event.agreement_version,
        body["agreement_version"].as_str().map(str::to_owned)
    );
    assert_eq!(read.event.decision, socle_domain::Decision::Allow);
    assert_eq!(read.event.person_ids, vec![person_id.to_string()]);

    api.shutdown.cancel();
    projector.shutdown.cancel();
    projector
        .handle
        .await
        .expect("joined")
        .expect("projector stops cleanly");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_and_misses_are_in_the_trail_and_disclose_nothing() {
    let db = TestDb::new().await;
    let access = topic("it-access", 1).await;
    let api = start_api(&db, &access, &brokers(), Duration::from_secs(10)).await;
    grant(&db.pool, USER, ORG, ECOSYSTEM).await;
    let http = client();

    // A person who does not exist gets the same answer as one outside the caseload (no
    // existence oracle).
    let missing = uuid::Uuid::now_v7();
    let response = http
        .get(format!("{}/persons/{missing}", api.base))
        .bearer_auth(api.default_token())
        .header("x-request-id", "miss-1")
        .send()
        .await
        .expect("API answers");
    assert_eq!(response.status(), 403);
    let problem: serde_json::Value = response.json().await.expect("problem body");
    assert_eq!(problem["code"], "scope.outside_caseload");
    assert_eq!(problem["request_id"], "miss-1");

    let response = http
        .get(format!("{}/persons/{missing}", api.base))
        .header("x-request-id", "anon-1")
        .send()
        .await
        .expect("API answers");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let trail = TrailReader::open(&brokers(), &access, 100, Duration::from_secs(10))
        .await
        .expect("trail opens");
    let events = trail
        .read_to_end(&codec(), Duration::from_secs(10))
        .await
        .expect("trail reads");
    let miss = events
        .iter()
        .find(|t| t.event.request_id == "miss-1")
        .expect("the miss is in the trail");
    assert_eq!(miss.event.reason.as_deref(), Some("scope.outside_caseload"));
    assert!(miss.event.person_ids.is_empty());
    let anon = events
        .iter()
        .find(|t| t.event.request_id == "anon-1")
        .expect("the refusal is in the trail");
    assert_eq!(anon.event.decision, socle_domain::Decision::Deny);
    // No user at all (never a sanctionable account named "anonymous"), no actor.
    assert_eq!(anon.event.user, "");
    assert_eq!(anon.event.envelope.actor, None);
    assert_eq!(anon.event.organisation, "unknown");
    assert_eq!(anon.event.reason.as_deref(), Some("auth.missing_token"));

    api.shutdown.cancel();
    db.drop_db().await;
}
