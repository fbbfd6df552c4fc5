//! Territories only narrow (issue: caseloads that no one can widen). A grant's territories
//! restrict which of the caller's caseload it reaches; they never add people to it. Tried as an
//! advisor would: a grant for the territory where people live, from an organisation that follows
//! nobody there, reads nothing; a grant for another territory reads nothing of the caseload;
//! the caseload's own territory reads it.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;
use uuid::Uuid;

/// A grant in force for `user` of `org` restricted to `territories`.
async fn grant_in(pool: &sqlx::PgPool, user: &str, org: &str, territories: &[&str]) {
    let now = Utc::now();
    let mut g = socle_policy::grants::new_grant(
        user,
        org,
        ECOSYSTEM,
        &["person.read", "person.search", "caseload.list"],
        "accompagnement",
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(1),
        "test-admin",
    );
    g.territories = territories.iter().map(|t| (*t).to_owned()).collect();
    let mut tx = pool.begin().await.expect("tx");
    socle_policy::grants::apply_granted(&mut tx, &g)
        .await
        .expect("grant applied");
    tx.commit().await.expect("commit");
}

async fn get(api: &RunningApi, token: &str, path: &str) -> (u16, serde_json::Value) {
    let r = http()
        .get(format!("{}{path}", api.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

fn ids(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["person_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn territories_narrow_the_caseload_and_never_widen_it() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    // Three people living in Paris (75), followed by ORG (follow territory 75).
    let people = seed(&pool, ECOSYSTEM, ORG, "Terr", 11, 3).await;
    // Another agency of the ecosystem, which follows nobody, with a grant for the 75.
    let stranger_org = "90000170200019";
    grant_in(&pool, "outsider", stranger_org, &["75"]).await;
    // ORG's own advisors: one granted the 59 only, one the 75.
    grant_in(&pool, "north", ORG, &["59"]).await;
    grant_in(&pool, "paris", ORG, &["75"]).await;

    let outsider = api.token("outsider", stranger_org, ECOSYSTEM, true);
    let north = api.token("north", ORG, ECOSYSTEM, true);
    let paris = api.token("paris", ORG, ECOSYSTEM, true);
    for p in &people {
        let path = format!("/persons/{}", p.person_id);
        let (status, body) = get(&api, &outsider, &path).await;
        assert_eq!(
            status, 403,
            "a territory grant must not widen the caseload: {body}"
        );
        let (status, body) = get(&api, &north, &path).await;
        assert_eq!(
            status, 403,
            "the 59 grant reaches no one living in the 75: {body}"
        );
        let (status, body) = get(&api, &paris, &path).await;
        assert_eq!(status, 200, "the caseload's own territory: {body}");
    }
    let expected: Vec<String> = {
        let mut v: Vec<String> = people.iter().map(|p| p.person_id.to_string()).collect();
        v.sort();
        v
    };
    for (token, want) in [
        (&outsider, vec![]),
        (&north, vec![]),
        (&paris, expected.clone()),
    ] {
        let (status, page) = get(&api, token, "/persons?given_name=Alix&limit=50").await;
        assert_eq!(status, 200, "{page}");
        let mut got = ids(&page);
        got.sort();
        assert_eq!(got, want, "search: {page}");
        let (status, page) = get(&api, token, "/caseload?limit=50").await;
        assert_eq!(status, 200, "{page}");
        let mut got = ids(&page);
        got.sort();
        assert_eq!(got, want, "caseload: {page}");
    }
    // And nobody reaches a person who does not exist (the same answer as outside the caseload).
    let (status, _) = get(&api, &paris, &format!("/persons/{}", Uuid::now_v7())).await;
    assert_eq!(status, 403);
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
