//! The API honours the detector's sanctions: a suspended account gets nothing (403
//! `actor.suspended`), one that must step up again gets 401 `auth.mfa_step_up` until it
//! authenticates anew, and each refusal is in the trail.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;
use socle_detect::store::Sanction;
use socle_detect::SanctionKind;
use socle_domain::Decision;
use uuid::Uuid;

const ORG: &str = "90000100900019";

async fn impose(pool: &sqlx::PgPool, user: &str, kind: SanctionKind) -> Uuid {
    let sanction = Sanction {
        sanction_id: Uuid::now_v7(),
        user: user.to_owned(),
        kind,
        reason: "test: bulk extraction pattern".into(),
        alert_id: None,
        imposed_at: Utc::now(),
        expires_at: None,
    };
    let mut tx = pool.begin().await.expect("tx");
    socle_detect::store::impose(&mut tx, &sanction)
        .await
        .expect("sanction imposed");
    tx.commit().await.expect("commit");
    sanction.sanction_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspended_and_step_up_sanctions_are_honoured_and_traced() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, "france-travail", ORG, "Sanction", 7, 3).await;
    let target = people[0].person_id;
    let http = http();

    // A suspended advisor: refused before anything is read, whatever their token.
    let suspended = "conseiller.suspendu";
    grant(&pool, suspended, ORG, "france-travail").await;
    let token = api.token(suspended, ORG, "france-travail", true);
    let ok = http
        .get(format!("{}/persons/{target}", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(ok.status(), 200, "readable before the sanction");
    impose(&pool, suspended, SanctionKind::Suspend).await;
    // The guard caches sanctions for a short while (200 ms in tests).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = http
        .get(format!("{}/persons/{target}", api.base))
        .bearer_auth(&token)
        .header("x-request-id", "suspended-1")
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 403);
    let body = r.text().await.expect("body");
    assert!(body.contains("actor.suspended"), "{body}");
    assert!(
        !body.contains(&people[0].family_name),
        "nothing disclosed: {body}"
    );

    // Step-up: a token from before the sanction is refused with the step-up challenge.
    let stepper = "conseiller.stepup";
    grant(&pool, stepper, ORG, "france-travail").await;
    let old_token = api.token(stepper, ORG, "france-travail", true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    impose(&pool, stepper, SanctionKind::RequireMfa).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = http
        .get(format!("{}/persons/{target}", api.base))
        .bearer_auth(&old_token)
        .header("x-request-id", "stepup-1")
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("insufficient_user_authentication")));
    // ...and a new multi-factor authentication after it passes.
    let new_token = api.token(stepper, ORG, "france-travail", true);
    let r = http
        .get(format!("{}/persons/{target}", api.base))
        .bearer_auth(&new_token)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        200,
        "a fresh MFA session satisfies the sanction"
    );

    let events = trail(&access).await;
    let refused = events
        .iter()
        .find(|e| e.request_id == "suspended-1")
        .expect("the suspended attempt is in the trail");
    assert_eq!(refused.decision, Decision::Deny);
    assert_eq!(refused.reason.as_deref(), Some("actor.suspended"));
    assert!(refused.person_ids.is_empty());
    let stepped = events
        .iter()
        .find(|e| e.request_id == "stepup-1")
        .expect("the step-up refusal is in the trail");
    assert_eq!(stepped.reason.as_deref(), Some("auth.mfa_step_up"));
    drop_db(pool, &db).await;
}
