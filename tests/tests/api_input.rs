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
    ];
    for (request, status, code) in cases {
        let response = request
            .header("x-socle-user", USER)
            .header("x-socle-organisation", ORG)
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

    // Identity headers missing or malformed: 401 with the header named.
    for (user, org) in [
        (None, Some(ORG)),
        (Some("has space"), Some(ORG)),
        (Some(USER), Some("")),
    ] {
        let mut request = http.get(format!(
            "{base}/persons/0193aaaa-0000-7000-8000-000000000001"
        ));
        if let Some(u) = user {
            request = request.header("x-socle-user", u);
        }
        if let Some(o) = org {
            request = request.header("x-socle-organisation", o);
        }
        let response = request.send().await.expect("API answers");
        assert_eq!(response.status(), 401);
        let problem: serde_json::Value = response.json().await.expect("problem body");
        assert_eq!(problem["code"], "auth.missing_identity");
        assert!(problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("x-socle-")));
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

    api.shutdown.cancel();
    db.drop_db().await;
}
