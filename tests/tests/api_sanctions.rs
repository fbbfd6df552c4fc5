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

/// Issue 11, item 5: a step-up is a new multi-factor authentication. A token refreshed after the
/// sanction (a later `iat`) with no `auth_time`, or the `auth_time` of the old session, does
/// not lift it; neither does a new authentication without a second factor. A new one with an
/// MFA `amr` (RFC 8176) or a configured MFA `acr` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refreshed_token_does_not_lift_a_step_up_a_new_mfa_authentication_does() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, "france-travail", ORG, "Rafraichi", 8, 2).await;
    let target = people[0].person_id;
    let http = http();
    let user = "conseiller.rafraichi";
    grant(&pool, user, ORG, "france-travail").await;
    // The session before the sanction: multi-factor, authenticated a while ago.
    let session_start = socle_auth::dev::now() - 120;
    let before = api.token(user, ORG, "france-travail", true);
    let get = |token: String, rid: &'static str| {
        let (http, base) = (http.clone(), api.base.clone());
        async move {
            http.get(format!("{base}/persons/{target}"))
                .bearer_auth(token)
                .header("x-request-id", rid)
                .send()
                .await
                .expect("answers")
        }
    };
    assert_eq!(get(before, "refresh-0").await.status(), 200);
    impose(&pool, user, SanctionKind::RequireMfa).await;
    // auth_time has whole seconds: let the clock pass the sanction's second.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mfa = api.request(user, ORG, "france-travail", true);
    let pwd = api.request(user, ORG, "france-travail", false);
    let refused = [
        // Refreshed: a new iat, no auth_time.
        (
            "refresh-no-auth-time",
            api.token_with(&mfa, serde_json::json!({"auth_time": null})),
        ),
        // Refreshed: a new iat, the old session's auth_time.
        (
            "refresh-old-auth-time",
            api.token_with(&mfa, serde_json::json!({"auth_time": session_start})),
        ),
        // A new authentication, but with a password alone.
        (
            "refresh-password",
            api.token_with(&pwd, serde_json::json!({})),
        ),
        // A new authentication claiming a factor that is not a second one (knowledge).
        (
            "refresh-kba",
            api.token_with(
                &pwd,
                serde_json::json!({"amr": ["pwd", "kba"], "acr": "urn:socle:acr:pwd"}),
            ),
        ),
    ];
    for (rid, token) in refused {
        let r = get(token, rid).await;
        assert_eq!(r.status(), 401, "{rid}");
        assert!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("insufficient_user_authentication")),
            "{rid}: step-up challenge"
        );
        let body = r.text().await.expect("body");
        assert!(body.contains("auth.mfa_step_up"), "{rid}: {body}");
        assert!(!body.contains(&people[0].family_name), "{rid}: {body}");
    }
    // A new multi-factor authentication after the sanction, said by amr (hardware key, or
    // one-time password) or by a configured acr, lifts it; so does `socle dev token --mfa`.
    let allowed = [
        (
            "stepped-hwk",
            api.token_with(
                &pwd,
                serde_json::json!({"amr": ["pwd", "hwk"], "acr": "urn:socle:acr:pwd"}),
            ),
        ),
        (
            "stepped-otp",
            api.token_with(&pwd, serde_json::json!({"amr": ["otp"], "acr": null})),
        ),
        (
            "stepped-acr",
            api.token_with(
                &pwd,
                serde_json::json!({"amr": null, "acr": socle_auth::dev::MFA_ACR}),
            ),
        ),
        ("stepped-dev", api.token(user, ORG, "france-travail", true)),
    ];
    for (rid, token) in allowed {
        let r = get(token, rid).await;
        assert_eq!(
            r.status(),
            200,
            "{rid}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    let events = trail(&access).await;
    for rid in [
        "refresh-no-auth-time",
        "refresh-old-auth-time",
        "refresh-password",
        "refresh-kba",
    ] {
        let e = events
            .iter()
            .find(|e| e.request_id == rid)
            .unwrap_or_else(|| panic!("{rid} in the trail"));
        assert_eq!(e.decision, Decision::Deny, "{rid}");
        assert_eq!(e.reason.as_deref(), Some("auth.mfa_step_up"), "{rid}");
        assert!(e.person_ids.is_empty(), "{rid}");
    }
    for rid in ["stepped-hwk", "stepped-otp", "stepped-acr", "stepped-dev"] {
        let e = events
            .iter()
            .find(|e| e.request_id == rid)
            .unwrap_or_else(|| panic!("{rid} in the trail"));
        assert_eq!(e.decision, Decision::Allow, "{rid}");
        assert_eq!(e.auth_strength, "mfa", "{rid}");
    }
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

/// Issue 11, item 6: machine clients are known by configuration (`auth.machine_clients`), never
/// guessed from the claims, and a grant that requires MFA is never met by a machine token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn machine_clients_are_registered_and_never_meet_a_grant_requiring_mfa() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, "france-travail", ORG, "Machine", 9, 2).await;
    let http = http();
    let caseload = |token: String, rid: &'static str| {
        let (http, base) = (http.clone(), api.base.clone());
        async move {
            http.get(format!("{base}/caseload"))
                .bearer_auth(token)
                .header("x-request-id", rid)
                .send()
                .await
                .expect("answers")
        }
    };
    let actions = ["person.read", "person.search", "caseload.list"];

    // A machine-looking user token (client_id == sub) that is not registered: a person's
    // token, which needs a second factor like any other, even on a grant that does not
    // demand one itself (`caseload.list` is in `mfa_actions`).
    let lookalike = "si-agence-lyon";
    grant_mfa(&pool, lookalike, ORG, "france-travail", &actions, false).await;
    let mut req = api.request(lookalike, ORG, "france-travail", false);
    req.client = true;
    let r = caseload(api.token_with(&req, serde_json::json!({})), "lookalike-pwd").await;
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("insufficient_user_authentication")));
    let body = r.text().await.expect("body");
    assert!(body.contains("auth.mfa_required"), "{body}");
    assert!(!body.contains(&people[0].person_id.to_string()), "{body}");
    // ...and passes with one, as the person it is.
    req.mfa = true;
    let r = caseload(api.token_with(&req, serde_json::json!({})), "lookalike-mfa").await;
    assert_eq!(r.status(), 200);

    // A user's token issued through the registered client (sub = the user, client_id = the
    // client) is not a machine token either.
    let advisor = "conseiller.via.si";
    grant_mfa(&pool, advisor, ORG, "france-travail", &actions, false).await;
    let r = caseload(
        api.token_with(
            &api.request(advisor, ORG, "france-travail", false),
            serde_json::json!({"client_id": MACHINE_CLIENT}),
        ),
        "via-client-pwd",
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.expect("body").contains("auth.mfa_required"));

    // The registered machine client, on a grant that requires MFA: refused, whatever its
    // token claims about factors (no step-up to offer: 403, not a 401 challenge).
    grant_mfa(&pool, MACHINE_CLIENT, ORG, "france-travail", &actions, true).await;
    let mut machine = api.request(MACHINE_CLIENT, ORG, "france-travail", false);
    machine.client = true;
    let plain = api.token_with(&machine, serde_json::json!({}));
    let claiming = api.token_with(
        &machine,
        serde_json::json!({"amr": ["mfa"], "acr": socle_auth::dev::MFA_ACR}),
    );
    for (rid, token) in [("machine-plain", plain), ("machine-claims-mfa", claiming)] {
        let r = caseload(token, rid).await;
        assert_eq!(r.status(), 403, "{rid}");
        assert!(r.headers().get("www-authenticate").is_none(), "{rid}");
        let body = r.text().await.expect("body");
        assert!(
            body.contains("auth.machine_client_mfa_grant"),
            "{rid}: {body}"
        );
        assert!(
            !body.contains(&people[0].person_id.to_string()),
            "{rid}: {body}"
        );
    }
    let r = http
        .get(format!("{}/persons/{}", api.base, people[0].person_id))
        .bearer_auth(api.token_with(&machine, serde_json::json!({})))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 403);
    let body = r.text().await.expect("body");
    assert!(body.contains("auth.machine_client_mfa_grant"), "{body}");
    assert!(!body.contains(&people[0].family_name), "{body}");

    let events = trail(&access).await;
    let by_rid = |rid: &str| {
        events
            .iter()
            .find(|e| e.request_id == rid)
            .unwrap_or_else(|| panic!("{rid} in the trail"))
    };
    let e = by_rid("lookalike-pwd");
    assert_eq!(
        (&e.decision, e.reason.as_deref(), e.auth_strength.as_str()),
        (&Decision::Deny, Some("auth.mfa_required"), "password")
    );
    assert_eq!(by_rid("lookalike-mfa").auth_strength, "mfa");
    assert_eq!(by_rid("via-client-pwd").auth_strength, "password");
    for rid in ["machine-plain", "machine-claims-mfa"] {
        let e = by_rid(rid);
        assert_eq!(e.decision, Decision::Deny, "{rid}");
        assert_eq!(
            e.reason.as_deref(),
            Some("auth.machine_client_mfa_grant"),
            "{rid}"
        );
        assert_eq!(e.auth_strength, "client", "{rid}");
        assert!(e.person_ids.is_empty(), "{rid}");
    }
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
