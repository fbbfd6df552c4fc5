//! No oracle, no free text in the trail, no "anonymous" account (issue 11, item 7), and the
//! IdP's keys read from the cache by `/health` (item 8), against the real Kafka, PostgreSQL and
//! registry:
//! - a caller with no grant gets the same status and code for a person who exists (even in its
//!   organisation's caseload) and for one who does not;
//! - a path id that is not one (a NIR and a name) is 400 before anything else, on the person
//!   and the audit routes alike, and the trail holds neither the NIR nor the name;
//! - an unauthenticated flood is recorded with no user and never makes a sanctionable account;
//! - `/health` does not fetch the key set on each call;
//! - a connection that sends its headers slowly is closed at the header-read timeout (item 9).

mod api_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use api_support::*;
use chrono::Utc;
use socle_domain::Decision;
use uuid::Uuid;

async fn status_and_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_grant_no_oracle_and_no_free_text_in_the_trail() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let http = http();
    let base = &api.base;
    // One person in the organisation's caseload.
    let rows = seed(&pool, ECOSYSTEM, ORG, "oracle", 7, 1).await;
    let existing = rows[0].person_id;
    let absent = Uuid::now_v7();

    // A user of that very organisation, with no grant at all: one answer for both.
    let nobody = api.token("sans.habilitation", ORG, ECOSYSTEM, true);
    let mut answers = Vec::new();
    for id in [existing, absent] {
        let r = http
            .get(format!("{base}/persons/{id}"))
            .bearer_auth(&nobody)
            .send()
            .await
            .expect("answers");
        answers.push(status_and_code(r).await);
    }
    assert_eq!(answers[0], answers[1], "existing and absent look alike");
    assert_eq!(answers[0], (403, "habilitation.none".to_owned()));
    // Another organisation's user without a grant: the same.
    let other = api.token("autre.sans.habilitation", "13000548100010", ECOSYSTEM, true);
    for id in [existing, absent] {
        let r = http
            .get(format!("{base}/persons/{id}"))
            .bearer_auth(&other)
            .send()
            .await
            .expect("answers");
        assert_eq!(
            status_and_code(r).await,
            (403, "habilitation.none".to_owned())
        );
    }
    // With a grant, the caseload decides as before: in it 200, absent as outside.
    grant(&pool, USER, ORG, ECOSYSTEM).await;
    let token = api.default_token();
    let r = http
        .get(format!("{base}/persons/{existing}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/persons/{absent}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        status_and_code(r).await,
        (403, "scope.outside_caseload".to_owned())
    );

    // Free text where an id goes: a NIR and a name.
    let the_nir = nir(7, 3);
    let name = "Dupont";
    let free = format!("{the_nir}%20Jean%20{name}");
    let auditor = "auditrice.oracle";
    grant_until(
        &pool,
        auditor,
        ORG,
        ECOSYSTEM,
        &["audit.query"],
        "audit",
        Utc::now() + chrono::Duration::days(1),
    )
    .await;
    let audit_token = api.token(auditor, ORG, ECOSYSTEM, true);
    let cases = [
        (format!("{base}/persons/{free}"), "person.invalid_id"),
        (
            format!("{base}/audit/persons/{free}/accesses"),
            "person.invalid_id",
        ),
        (
            format!("{base}/audit/persons/{free}/journal"),
            "person.invalid_id",
        ),
        (
            format!("{base}/audit/persons/{free}/timeline"),
            "person.invalid_id",
        ),
        (
            format!("{base}/audit/actors/{the_nir}"),
            "audit.invalid_actor",
        ),
        (
            format!("{base}/audit/organisations/{name}"),
            "audit.invalid_siret",
        ),
    ];
    for (url, code) in &cases {
        for bearer in [Some(&audit_token), Some(&token), None] {
            let mut rq = http.get(url);
            if let Some(t) = bearer {
                rq = rq.bearer_auth(t);
            }
            let r = rq.send().await.expect("answers");
            assert_eq!(
                status_and_code(r).await,
                (400, (*code).to_owned()),
                "{url} (token: {})",
                bearer.is_some()
            );
        }
    }
    let r = http
        .post(format!("{base}/persons/{free}/contact"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"commune": "75056", "departement": "75"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        status_and_code(r).await,
        (400, "person.invalid_id".to_owned())
    );
    let r = http
        .get(format!("{base}/persons/by-nir/{name}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        status_and_code(r).await,
        (400, "person.invalid_nir".to_owned()),
        "the NIR path is checked before the token"
    );

    let events = trail(&access).await;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.resource.contains("{invalid}"))
        .collect();
    assert!(
        refused.len() >= cases.len() * 3,
        "the refusals are traced ({} of them)",
        refused.len()
    );
    for e in &events {
        let text = format!("{e:?}");
        assert!(
            !text.contains(&the_nir) && !text.contains(name),
            "no NIR nor name in the trail: {text}"
        );
    }
    for e in &refused {
        assert_eq!(e.decision, Decision::Deny);
        assert!(e.person_ids.is_empty(), "{e:?}");
    }
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unauthenticated_flood_is_counted_not_sanctioned() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let http = http();
    let base = &api.base;
    let metric = |text: &str, reason: &str| -> u64 {
        let prefix = format!("socle_api_unauthenticated_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    let before = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // 300 reads of random person ids, each a distinct person: a bulk pattern, with no token or
    // a forged one.
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let mut rq = http.get(format!("{base}/persons/{}", Uuid::now_v7()));
                if i % 2 == 1 {
                    rq = rq.bearer_auth("eyJhbGciOiJFUzI1NiJ9.e30.c2ln");
                }
                rq.send().await.expect("answers").status().as_u16()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 401);
    }
    let after = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let counted: u64 = ["auth.missing_token", "auth.malformed_token"]
        .iter()
        .map(|r| metric(&after, r) - metric(&before, r))
        .sum();
    assert!(
        counted >= 300,
        "refusals counted by reason ({counted})\n{after}"
    );

    let events = trail(&access).await;
    let unauthenticated: Vec<_> = events
        .iter()
        .filter(|e| e.auth_strength == "none")
        .collect();
    assert_eq!(unauthenticated.len(), 300, "each refusal is traced");
    for e in &unauthenticated {
        assert_eq!(e.user, "", "no user named for an unauthenticated access");
        assert_eq!(e.envelope.actor, None);
        assert_eq!(e.decision, Decision::Deny);
    }
    // The detector, fed the whole trail, makes no account of it.
    let mut detector = socle_detect::Detector::new(socle_detect::Rules::default());
    let alerts: Vec<_> = events
        .iter()
        .flat_map(|e| detector.observe(&socle_detect::Observation::from(e)))
        .collect();
    assert!(alerts.is_empty(), "no alert, no sanction: {alerts:?}");
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_reads_the_cached_keys() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let http = http();
    for _ in 0..30 {
        let r = http
            .get(format!("{}/health", api.base))
            .send()
            .await
            .expect("answers");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["checks"]["identity_provider"]["ok"], true, "{body}");
    }
    assert_eq!(
        api.jwks_fetches.load(Ordering::SeqCst),
        1,
        "one fetch for an empty cache, none after"
    );
    // Tokens are verified with the same cached keys.
    grant(&pool, USER, ORG, ECOSYSTEM).await;
    let r = http
        .get(format!("{}/caseload", api.base))
        .bearer_auth(api.default_token())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    assert_eq!(api.jwks_fetches.load(Ordering::SeqCst), 1);
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_closes_a_connection_that_sends_its_headers_slowly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let limit = socle_api::ServeLimits::default().header_read_timeout;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    // 20 slowloris connections: one header byte every 500 ms each, never finishing.
    let mut readers = Vec::new();
    for _ in 0..20 {
        let (mut r, mut w) = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connects")
            .into_split();
        tokio::spawn(async move {
            let _ = w.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
            for _ in 0..200 {
                if w.write_all(b"X").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return std::time::Instant::now(),
                    Ok(_) => {}
                }
            }
        }));
    }
    for reader in readers {
        let closed = tokio::time::timeout(limit + Duration::from_secs(5), reader)
            .await
            .expect("closed by the server")
            .expect("task");
        let held = closed - started;
        assert!(
            held >= limit - Duration::from_secs(1) && held < limit + Duration::from_secs(3),
            "a slow-header connection is held {held:?}, the timeout is {limit:?}"
        );
    }
    // The API still answers.
    let r = http()
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
