//! Malformed, hostile and unauthenticated input to the API: a precise 4xx with a problem body,
//! never a 500, never data.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_problem_never_a_500() {
    let db = TestDb::new().await;
    let access = topic("it-access", 1).await;
    let api = start_api(&db, &access, &brokers(), Duration::from_secs(10)).await;
    grant(&db.pool, USER, ORG, ECOSYSTEM).await;
    let token = api.default_token();
    let http = client();
    let base = &api.base;

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.get(format!("{base}/persons/not-a-uuid")),
            400,
            "person.invalid_id",
        ),
        (
            http.get(format!("{base}/persons/'%20OR%201=1%20--")),
            400,
            "person.invalid_id",
        ),
        (
            http.get(format!("{base}/persons/%ZZ%00")),
            400,
            "person.invalid_id",
        ),
        (
            http.get(format!("{base}/persons/{}", "9".repeat(5000))),
            400,
            "person.invalid_id",
        ),
        (
            http.get(format!("{base}/nothing-here")),
            404,
            "route.not_found",
        ),
        (
            http.post(format!(
                "{base}/persons/0193aaaa-0000-7000-8000-000000000001"
            ))
            .body("{\"family_name\": "),
            405,
            "route.method_not_allowed",
        ),
        // Searches and lists: every malformed or hostile parameter is named, never run.
        (
            http.get(format!("{base}/persons?family_name=x%27%20OR%201%3D1%20--")),
            400,
            "request.invalid_name",
        ),
        (
            http.get(format!(
                "{base}/persons?family_name=Robert%27);DROP%20TABLE%20x;--"
            )),
            400,
            "request.invalid_name",
        ),
        (
            http.get(format!("{base}/persons?nir=1234567890123456")),
            400,
            "person.invalid_nir",
        ),
        (
            http.get(format!("{base}/persons?birth_date=1990-13-45")),
            400,
            "person.invalid_birth_date",
        ),
        (
            http.get(format!("{base}/persons?family_name=Durand&limit=0")),
            400,
            "request.invalid_limit",
        ),
        (
            http.get(format!("{base}/persons?family_name=Durand&limit=abc")),
            400,
            "request.invalid_query",
        ),
        (
            http.get(format!(
                "{base}/persons?family_name=Durand&organisation=13000548100010"
            )),
            400,
            "request.invalid_query",
        ),
        (
            http.get(format!("{base}/persons")),
            400,
            "search.no_criterion",
        ),
        (
            http.get(format!("{base}/caseload?after=%27;--")),
            400,
            "request.invalid_cursor",
        ),
        (
            http.get(format!("{base}/caseload?purpose=../../etc")),
            400,
            "request.invalid_purpose",
        ),
        (
            http.get(format!(
                "{base}/persons/by-nir/{}?purpose=orientation",
                "1".repeat(300)
            )),
            400,
            "person.invalid_nir",
        ),
    ];
    for (request, status, code) in cases {
        let response = request
            .bearer_auth(&token)
            .send()
            .await
            .expect("API answers");
        assert_eq!(response.status().as_u16(), status, "for {code}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: serde_json::Value = response.json().await.expect("problem body");
        assert_eq!(problem["code"], code);
        assert_eq!(problem["status"], status);
    }

    // No token, another scheme, or a malformed token: 401 with a challenge and a precise code.
    for (authorization, code) in [
        (None, "auth.missing_token"),
        (Some("Basic dXNlcjpwYXNz"), "auth.missing_token"),
        (Some("Bearer "), "auth.missing_token"),
        (Some("Bearer not-a-jwt"), "auth.malformed_token"),
        (Some("Bearer a.b.c"), "auth.malformed_token"),
    ] {
        let mut request = http.get(format!(
            "{base}/persons/0193aaaa-0000-7000-8000-000000000001"
        ));
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let response = request.send().await.expect("API answers");
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .is_ok_and(|c| c.starts_with("Bearer")));
        let problem: serde_json::Value = response.json().await.expect("problem body");
        assert_eq!(problem["code"], code, "{authorization:?}");
    }

    // An oversized body is refused before any handler sees it.
    let response = http
        .post(format!(
            "{base}/persons/0193aaaa-0000-7000-8000-000000000001"
        ))
        .body(vec![b'a'; socle_api::MAX_BODY_BYTES * 2])
        .send()
        .await
        .expect("API answers");
    assert!(
        response.status().is_client_error(),
        "got {}",
        response.status()
    );

    // Every refusal is in the trail, and what was typed in the path is not (it could be a name
    // or a NIR): the resource of a malformed id is a placeholder.
    let events =
        socle_kafka::tail::TrailReader::open(&brokers(), &access, 1000, Duration::from_secs(10))
            .await
            .expect("trail opens")
            .read_to_end(&codec(), Duration::from_secs(10))
            .await
            .expect("trail reads");
    let invalid: Vec<_> = events
        .iter()
        .filter(|t| t.event.reason.as_deref() == Some("person.invalid_id"))
        .collect();
    assert_eq!(invalid.len(), 4, "each malformed id is traced");
    assert!(invalid
        .iter()
        .all(|t| t.event.resource == "/persons/{invalid}"));
    assert!(events
        .iter()
        .all(|t| !t.event.resource.contains("OR") && !t.event.resource.contains("99999")));

    api.shutdown.cancel();
    db.drop_db().await;
}
