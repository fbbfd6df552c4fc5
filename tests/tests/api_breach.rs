//! The 2024 breach, replayed against the API: a Cap Emploi advisor account reaching people Cap
//! Emploi does not follow. Each step the attackers took is stopped, and each attempt is in the
//! access trail.

mod api_support;

use std::collections::HashSet;
use std::time::Duration;

use api_support::*;
use chrono::Utc;
use socle_auth::dev::TokenRequest;
use socle_domain::Decision;

const FT_ORG: &str = "90000100900019";
const CE_ORG: &str = "13000548100010";
const CE_OTHER: &str = "13000548100028";
const CE_USER: &str = "conseiller.cap-emploi";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cap_emploi_advisor_reaches_only_cap_emploi_caseload_and_every_attempt_is_traced() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    // France Travail's people; ten of them are also followed by another Cap Emploi agency, so
    // they are in the Cap Emploi model — but not in this advisor's caseload.
    let france_travail = people("Durand", 1, 30);
    place(&pool, "france-travail", FT_ORG, &france_travail).await;
    place(&pool, "cap-emploi", CE_OTHER, &france_travail[..10]).await;
    let cap_emploi = seed(&pool, "cap-emploi", CE_ORG, "Martin", 2, 5).await;
    let ce_ids: HashSet<String> = cap_emploi.iter().map(|p| p.person_id.to_string()).collect();
    grant(&pool, CE_USER, CE_ORG, "cap-emploi").await;
    let token = api.token(CE_USER, CE_ORG, "cap-emploi", true);
    let http = http();
    let get = |path: String, rid: &str, token: &str| {
        http.get(format!("{}{path}", api.base))
            .bearer_auth(token)
            .header("x-request-id", rid)
            .send()
    };

    // Search for people Cap Emploi does not follow: nothing, whatever the criterion.
    let target = &france_travail[3];
    for (i, query) in [
        format!("family_name={}", target.family_name),
        format!("nir={}", target.nir.as_deref().expect("nir")),
        "birth_date=1990-04-04".to_owned(),
        "given_name=Alix&limit=200".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let r = get(format!("/persons?{query}"), &format!("search-{i}"), &token)
            .await
            .expect("answers");
        assert_eq!(r.status(), 200, "{query}");
        let page: serde_json::Value = r.json().await.expect("json");
        for item in page["items"].as_array().expect("items") {
            let id = item["person_id"].as_str().expect("id");
            assert!(
                ce_ids.contains(id),
                "{query} returned {id}, outside the caseload"
            );
        }
        if i < 2 {
            assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{query}");
        }
    }
    // ...but their own people they do find.
    let r = get(
        format!("/persons?family_name={}", cap_emploi[1].family_name),
        "search-own",
        &token,
    )
    .await
    .expect("answers");
    let page: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        page["items"][0]["person_id"],
        cap_emploi[1].person_id.to_string()
    );

    // Reading one of them by id: refused, and indistinguishable from a missing person.
    let r = get(
        format!("/persons/{}", target.person_id),
        "read-outside",
        &token,
    )
    .await
    .expect("answers");
    assert_eq!(r.status(), 403);
    let p: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(p["code"], "scope.outside_caseload");
    let r = get(
        format!("/persons/{}", uuid::Uuid::now_v7()),
        "read-missing",
        &token,
    )
    .await
    .expect("answers");
    assert_eq!(r.status(), 403);

    // The caseload, page by page: exactly Cap Emploi's people, none twice.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for page_no in 0..10 {
        let path = match &after {
            Some(a) => format!("/caseload?limit=2&after={a}"),
            None => "/caseload?limit=2".to_owned(),
        };
        let r = get(path, &format!("caseload-{page_no}"), &token)
            .await
            .expect("answers");
        assert_eq!(r.status(), 200);
        let page: serde_json::Value = r.json().await.expect("json");
        for item in page["items"].as_array().expect("items") {
            seen.push(item["person_id"].as_str().expect("id").to_owned());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ce_ids);
    assert_eq!(seen.len(), ce_ids.len());

    // The same advisor with a password only: a step-up challenge (RFC 9470), nothing disclosed.
    let weak = api.token(CE_USER, CE_ORG, "cap-emploi", false);
    let r = get(
        format!("/persons/{}", cap_emploi[0].person_id),
        "no-mfa",
        &weak,
    )
    .await
    .expect("answers");
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains("insufficient_user_authentication"),
        "{challenge}"
    );
    assert!(challenge.contains("acr_values="), "{challenge}");
    let p: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(p["code"], "auth.mfa_required");
    assert!(p.get("family_name").is_none());

    // Expired, forged and wrong-audience tokens: 401, each with its code.
    let req = |issued_at: i64, audience: &str| TokenRequest {
        user: CE_USER.into(),
        organisation: CE_ORG.into(),
        ecosystem: "cap-emploi".into(),
        audience: audience.into(),
        mfa: true,
        client: false,
        issued_at,
        ttl: 300,
    };
    let now = socle_auth::dev::now();
    let expired = api.idp.mint(&req(now - 3600, AUDIENCE)).expect("minted");
    let forged = api
        .idp
        .impostor()
        .expect("key")
        .mint(&req(now, AUDIENCE))
        .expect("minted");
    let elsewhere = api.idp.mint(&req(now, "another-api")).expect("minted");
    for (rid, tok, code) in [
        ("expired", expired.as_str(), "auth.token_expired"),
        ("forged", forged.as_str(), "auth.bad_signature"),
        ("audience", elsewhere.as_str(), "auth.wrong_audience"),
        ("garbage", "abc", "auth.malformed_token"),
    ] {
        let r = get(format!("/persons/{}", cap_emploi[0].person_id), rid, tok)
            .await
            .expect("answers");
        assert_eq!(r.status(), 401, "{rid}");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("invalid_token"));
        let p: serde_json::Value = r.json().await.expect("problem");
        assert_eq!(p["code"], code, "{rid}");
    }

    // A colleague whose grant expired yesterday: 403.
    grant_until(
        &pool,
        "ancien.conseiller",
        CE_ORG,
        "cap-emploi",
        &["person.read", "person.search"],
        "accompagnement",
        Utc::now() - chrono::Duration::days(1),
    )
    .await;
    let former = api.token("ancien.conseiller", CE_ORG, "cap-emploi", true);
    let r = get(
        format!("/persons/{}", cap_emploi[0].person_id),
        "expired-grant",
        &former,
    )
    .await
    .expect("answers");
    assert_eq!(r.status(), 403);
    let p: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(p["code"], "habilitation.none");

    // The trail has every attempt, with who, how strongly authenticated, the decision, the
    // policy version, and no person id outside the caseload.
    let events = trail(&access).await;
    let by_rid = |rid: &str| {
        events
            .iter()
            .find(|e| e.request_id == rid)
            .unwrap_or_else(|| panic!("{rid} is in the trail"))
    };
    for rid in [
        "search-0",
        "search-1",
        "search-2",
        "search-3",
        "search-own",
        "caseload-0",
    ] {
        let e = by_rid(rid);
        assert_eq!(e.decision, Decision::Allow, "{rid}");
        assert_eq!(e.user, CE_USER);
        assert_eq!(e.organisation, CE_ORG);
        assert_eq!(e.ecosystem.as_deref(), Some("cap-emploi"));
        assert_eq!(e.auth_strength, "mfa");
        assert_eq!(e.purpose.as_deref(), Some("accompagnement"));
        assert!(
            e.policy_version
                .as_deref()
                .is_some_and(|v| v.starts_with("2026-")),
            "{rid}"
        );
        assert!(e.person_ids.iter().all(|id| ce_ids.contains(id)), "{rid}");
        assert!(
            e.agreement_version
                .as_deref()
                .is_some_and(|v| v.starts_with("2026.1+")),
            "{rid}: {:?}",
            e.agreement_version
        );
    }
    assert_eq!(
        by_rid("search-own").person_ids,
        vec![cap_emploi[1].person_id.to_string()]
    );
    let e = by_rid("read-outside");
    assert_eq!(
        (e.decision, e.reason.as_deref()),
        (Decision::Deny, Some("scope.outside_caseload"))
    );
    assert!(e.person_ids.is_empty());
    let e = by_rid("no-mfa");
    assert_eq!(
        (e.decision, e.reason.as_deref()),
        (Decision::Deny, Some("auth.mfa_required"))
    );
    assert_eq!(e.auth_strength, "password");
    for (rid, code) in [
        ("expired", "auth.token_expired"),
        ("forged", "auth.bad_signature"),
        ("audience", "auth.wrong_audience"),
    ] {
        let e = by_rid(rid);
        assert_eq!(
            (e.decision, e.reason.as_deref()),
            (Decision::Deny, Some(code))
        );
        assert_eq!(e.user, "", "an unauthenticated access names no user");
        assert_eq!(e.auth_strength, "none");
    }
    assert_eq!(
        by_rid("expired-grant").reason.as_deref(),
        Some("habilitation.none")
    );
    let all_ids: HashSet<&String> = events.iter().flat_map(|e| &e.person_ids).collect();
    assert!(
        all_ids.iter().all(|id| ce_ids.contains(*id)),
        "an id outside the caseload leaked"
    );

    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nir_lookup_outside_the_caseload_needs_orientation_and_is_rate_limited() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let outside = seed(&pool, "cap-emploi", CE_OTHER, "Petit", 3, 2).await;
    grant_until(
        &pool,
        CE_USER,
        CE_ORG,
        "cap-emploi",
        &["person.lookup_nir"],
        "orientation",
        Utc::now() + chrono::Duration::days(1),
    )
    .await;
    let token = api.token(CE_USER, CE_ORG, "cap-emploi", true);
    let nir = outside[0].nir.clone().expect("nir");
    let lookup = |purpose: &str, rid: String| {
        http()
            .get(format!(
                "{}/persons/by-nir/{nir}?purpose={purpose}",
                api.base
            ))
            .bearer_auth(&token)
            .header("x-request-id", rid)
            .send()
    };
    let r = lookup("accompagnement", "nir-wrong-purpose".into())
        .await
        .expect("answers");
    assert_eq!(r.status(), 403);
    // The start_api limit is 3 per hour.
    for i in 0..3 {
        let r = lookup("orientation", format!("nir-{i}"))
            .await
            .expect("answers");
        assert_eq!(r.status(), 200, "lookup {i}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["person_id"], outside[0].person_id.to_string());
    }
    let r = lookup("orientation", "nir-too-many".into())
        .await
        .expect("answers");
    assert_eq!(r.status(), 429);
    let p: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(p["code"], "rate.nir_lookups");

    let events = trail(&access).await;
    let e = events
        .iter()
        .find(|e| e.request_id == "nir-0")
        .expect("traced");
    assert_eq!(e.action, "person.lookup_nir");
    assert_eq!(e.purpose.as_deref(), Some("orientation"));
    assert_eq!(e.person_ids, vec![outside[0].person_id.to_string()]);
    // The NIR itself is never written in the trail.
    assert!(events.iter().all(|e| !e.resource.contains(&nir)));
    let e = events
        .iter()
        .find(|e| e.request_id == "nir-wrong-purpose")
        .expect("traced");
    assert_eq!(e.reason.as_deref(), Some("purpose.not_allowed"));
    let e = events
        .iter()
        .find(|e| e.request_id == "nir-too-many")
        .expect("traced");
    assert_eq!(
        (e.decision, e.reason.as_deref()),
        (Decision::Deny, Some("rate.nir_lookups"))
    );

    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
