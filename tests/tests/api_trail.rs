//! Fail closed, and habilitations as events: the API discloses nothing when the access trail
//! cannot be written, and a grant published on the habilitations topic (then its revocation)
//! takes effect through the consumer the API runs.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;
use socle_kafka::EventProducer;
use socle_policy::grants::{GrantPublisher, HabilitationRevoked};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_trail_no_data() {
    let (pool, db) = fresh_db().await;
    // The trail's producer points at a port where no broker listens.
    let api = start_api(
        &pool,
        "it-access-unreachable",
        "127.0.0.1:9",
        Duration::from_secs(2),
    )
    .await;
    let people = seed(&pool, ECOSYSTEM, ORG, "Bernard", 4, 1).await;
    grant(&pool, USER, ORG, ECOSYSTEM).await;
    let http = http();
    for path in [
        format!("/persons/{}", people[0].person_id),
        "/persons?family_name=Bernarda".to_owned(),
        "/caseload".to_owned(),
    ] {
        let r = http
            .get(format!("{}{path}", api.base))
            .bearer_auth(api.default_token())
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body = r.text().await.expect("body");
        assert!(body.contains("trail.unavailable"), "{path}: {body}");
        assert!(!body.contains("Bernard"), "{path} disclosed: {body}");
        assert!(
            !body.contains(&people[0].person_id.to_string()),
            "{path} disclosed: {body}"
        );
    }
    let health = http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .expect("health answers");
    assert_eq!(health.status(), 503);
    let h: serde_json::Value = health.json().await.expect("json");
    assert!(
        h["failing"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "access_trail")),
        "{h}"
    );
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn published_grants_and_revocations_take_effect() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let habilitations = random_topic("it-habilitations").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, ECOSYSTEM, ORG, "Thomas", 5, 1).await;
    let stop = CancellationToken::new();
    let consumer = tokio::spawn({
        let (topic, pool, stop) = (habilitations.clone(), pool.clone(), stop.clone());
        // A status of its own: the process-wide one would make the other tests' APIs (in this
        // same test binary) wait for this replay (tests/tests/habilitations_consumer.rs).
        let status = socle_policy::consumer::Status::new();
        async move {
            socle_policy::consumer::run_with_status(&brokers(), &topic, pool, codec(), status, stop)
                .await
        }
    });
    let publisher = GrantPublisher {
        producer: EventProducer::new(&brokers(), Duration::from_secs(10)).expect("producer"),
        codec: codec(),
        topic: habilitations.clone(),
    };
    let read = || {
        http()
            .get(format!("{}/persons/{}", api.base, people[0].person_id))
            .bearer_auth(api.default_token())
            .send()
    };
    assert_eq!(read().await.expect("answers").status(), 403, "no grant yet");

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
    while read().await.expect("answers").status() != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grant never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let allowed_at = Utc::now();

    publisher
        .revoke(&HabilitationRevoked {
            envelope: socle_domain::Envelope::new(ORG, Utc::now()).with_actor("test-admin"),
            grant_id: g.grant_id,
            user: USER.into(),
            organisation: ORG.into(),
            effective_at: socle_domain::time::to_micros(Utc::now()),
            revoked_by: "test-admin".into(),
            reason_code: Some("left_the_organisation".into()),
        })
        .await
        .expect("revocation published");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = read().await.expect("answers");
        if r.status() == 403 {
            let p: serde_json::Value = r.json().await.expect("problem");
            assert_eq!(p["code"], "habilitation.none");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revocation never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Replayable: "was it allowed at time T" still answers yes for a time before the revocation.
    let at =
        |t| socle_policy::grants::in_force(&pool, USER, ORG, ECOSYSTEM, "person.read", None, t);
    assert_eq!(
        at(allowed_at).await.expect("query").len(),
        1,
        "in force then"
    );
    assert!(
        at(Utc::now()).await.expect("query").is_empty(),
        "revoked now"
    );

    stop.cancel();
    consumer
        .await
        .expect("joined")
        .expect("consumer stops cleanly");
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operators_system_authenticates_as_a_client_bound_to_its_organisation() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, ECOSYSTEM, ORG, "Garnier", 7, 2).await;
    // A registered machine client (`MACHINE_CLIENT`), on a grant that does not require MFA.
    grant_mfa(
        &pool,
        MACHINE_CLIENT,
        ORG,
        ECOSYSTEM,
        &["person.read", "person.search", "caseload.list"],
        false,
    )
    .await;
    // Client credentials: no second factor to ask of a system, still bound to its organisation.
    let token = api
        .idp
        .mint(&socle_auth::dev::TokenRequest {
            user: "si-agence-paris".into(),
            organisation: ORG.into(),
            ecosystem: ECOSYSTEM.into(),
            audience: AUDIENCE.into(),
            mfa: false,
            client: true,
            issued_at: socle_auth::dev::now(),
            ttl: 300,
        })
        .expect("minted");
    let r = http()
        .get(format!("{}/caseload", api.base))
        .bearer_auth(&token)
        .header("x-request-id", "client-1")
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let page: serde_json::Value = r.json().await.expect("json");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(people.len()));
    let events = trail(&access).await;
    let e = events
        .iter()
        .find(|e| e.request_id == "client-1")
        .expect("traced");
    assert_eq!(e.auth_strength, "client");
    assert_eq!(e.user, "si-agence-paris");
    assert_eq!(e.organisation, ORG);
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
