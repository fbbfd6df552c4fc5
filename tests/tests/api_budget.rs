//! The hard read budget, replayed as the 2024 breach worked: a legitimate advisor account reads
//! everyone it can reach, as fast as it can, through every door (reads, searches, caseload
//! pages). With no detector running, the API alone must disclose at most the budget's number of
//! distinct people, refuse everything past it with `429 rate.read_budget` and `Retry-After`
//! (traced as refusals), and the budget must be shared by two API instances.

mod api_support;

use std::collections::BTreeSet;
use std::time::Duration;

use api_support::*;

const BUDGET: i64 = 25;

fn ids(body: &serde_json::Value) -> Vec<String> {
    if let Some(items) = body["items"].as_array() {
        return items
            .iter()
            .filter_map(|i| i["person_id"].as_str().map(str::to_owned))
            .collect();
    }
    body["person_id"]
        .as_str()
        .map(|s| vec![s.to_owned()])
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_2024_pattern_discloses_at_most_the_budget() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let budget = socle_api::ReadBudget {
        max_persons: BUDGET,
        window: Duration::from_secs(300),
    };
    // Two API instances sharing the database: the budget is the actor's, not an instance's.
    let a = start_api_with(
        &pool,
        &access,
        &brokers(),
        Duration::from_secs(10),
        Some(budget),
    )
    .await;
    let b = start_api_with(
        &pool,
        &access,
        &brokers(),
        Duration::from_secs(10),
        Some(budget),
    )
    .await;
    // A caseload of 80 people (the account's organisation follows them all).
    let people = seed(&pool, ECOSYSTEM, ORG, "Budget", 13, 80).await;
    grant(&pool, USER, ORG, ECOSYSTEM).await;
    // Each test instance has its own identity provider: a token from each, for the same user.
    let (token_a, token_b) = (a.default_token(), b.default_token());
    let http = http();
    let mut disclosed = BTreeSet::new();
    let (mut refused, mut retry_after_seen) = (0, false);
    // Caseload pages, searches and reads, alternating between the two instances.
    let mut paths = vec![
        "/caseload?limit=10".to_owned(),
        "/persons?given_name=Alix&limit=10".to_owned(),
    ];
    paths.extend(people.iter().map(|p| format!("/persons/{}", p.person_id)));
    for (n, path) in paths.iter().enumerate() {
        let (api, token) = if n % 2 == 0 {
            (&a, &token_a)
        } else {
            (&b, &token_b)
        };
        let r = http
            .get(format!("{}{path}", api.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("answers");
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").cloned();
        let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
        match status {
            200 => disclosed.extend(ids(&body)),
            429 => {
                assert_eq!(body["code"], "rate.read_budget", "{body}");
                assert!(ids(&body).is_empty(), "a refusal discloses nothing: {body}");
                retry_after_seen |= retry.is_some();
                refused += 1;
            }
            other => panic!("{path}: unexpected {other}: {body}"),
        }
    }
    eprintln!(
        "2024 pattern, {} requests over two instances: {} distinct people disclosed (budget {BUDGET}), {refused} refused",
        paths.len(),
        disclosed.len()
    );
    assert!(
        i64::try_from(disclosed.len()).unwrap_or(i64::MAX) <= BUDGET,
        "{} distinct people disclosed, budget {BUDGET}",
        disclosed.len()
    );
    assert!(
        disclosed.len() >= 20,
        "reads within the budget are served ({} disclosed)",
        disclosed.len()
    );
    assert!(
        refused > 40,
        "everything past the budget is refused ({refused})"
    );
    assert!(retry_after_seen, "429 carries Retry-After");
    // Re-reading a person already shown does not spend the budget again.
    let first = disclosed.iter().next().expect("one disclosed").clone();
    let again = http
        .get(format!("{}/persons/{first}", a.base))
        .bearer_auth(&token_a)
        .send()
        .await
        .expect("answers");
    assert_eq!(again.status(), 200, "a person already shown stays readable");
    // The refusals are in the trail, as refusals with their code.
    let trail = trail(&access).await;
    let denials = trail
        .iter()
        .filter(|e| e.reason.as_deref() == Some("rate.read_budget"))
        .count();
    assert_eq!(denials, refused, "every refusal is traced");
    assert!(
        trail
            .iter()
            .filter(|e| e.reason.as_deref() == Some("rate.read_budget"))
            .all(|e| e.person_ids.is_empty()),
        "a refused access names nobody"
    );
    a.shutdown.cancel();
    b.shutdown.cancel();
    drop_db(pool, &db).await;
}
