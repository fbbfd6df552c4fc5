//! The auditors' endpoints through the API: only a multi-factor session holding an
//! `audit.query` grant gets answers; others are refused; every query is itself in the trail.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;
use socle_domain::Decision;

const ORG: &str = "90000100900019";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auditors_query_the_audit_store_and_are_traced_others_are_refused() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let person = uuid::Uuid::now_v7();
    let auditor = "auditrice.dpo";
    grant_until(
        &pool,
        auditor,
        ORG,
        "france-travail",
        &["audit.query"],
        "audit",
        Utc::now() + chrono::Duration::days(1),
    )
    .await;
    let http = http();
    let url = format!("{}/audit/persons/{person}/accesses", api.base);

    // Nothing projects the trail into the audit store yet: no empty success, a refusal.
    let r = http
        .get(&url)
        .bearer_auth(api.token(auditor, ORG, "france-travail", true))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        503,
        "a store that was never projected does not answer"
    );
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "audit.store_behind", "{body}");

    project_trail(&pool, &access).await;
    let r = http
        .get(&url)
        .bearer_auth(api.token(auditor, ORG, "france-travail", true))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        200,
        "an auditor with MFA is answered once the store is projected"
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["freshness"]["topic"], access.as_str(), "{body}");
    assert!(body["freshness"]["as_of"].is_string(), "{body}");

    // The same auditor without a second factor, an advisor without the grant, nobody at all.
    let r = http
        .get(&url)
        .bearer_auth(api.token(auditor, ORG, "france-travail", false))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 403, "no MFA, no audit");
    grant(&pool, "conseiller.curieux", ORG, "france-travail").await;
    let r = http
        .get(&url)
        .bearer_auth(api.token("conseiller.curieux", ORG, "france-travail", true))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 403, "an advisor is not an auditor");
    let r = http.get(&url).send().await.expect("answers");
    assert_eq!(r.status(), 401);

    let events = trail(&access).await;
    let answered = events
        .iter()
        .filter(|e| e.user == auditor && e.decision == Decision::Allow)
        .count();
    assert!(answered >= 2, "the auditor's queries are in the trail");
    assert!(
        events
            .iter()
            .any(|e| e.user == "conseiller.curieux" && e.decision == Decision::Deny),
        "the refusal is in the trail"
    );
    drop_db(pool, &db).await;
}
