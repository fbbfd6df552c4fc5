//! Search paging: `/persons` accepts the cursor it returns, so a search that matches more people
//! than `limit` is read page by page, each person once, and a cursor that is not a person id is
//! refused before anything is read.

mod api_support;

use std::collections::BTreeSet;
use std::time::Duration;

use api_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_longer_than_its_limit_is_paged_with_the_cursor_it_returns() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    // Seven people of the caller's caseload share the given name the search asks for.
    let people = seed(&pool, ECOSYSTEM, ORG, "Paging", 7, 7).await;
    grant(&pool, USER, ORG, ECOSYSTEM).await;
    let http = http();
    let mut seen = BTreeSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{}/persons?given_name=Alix&limit=3", api.base);
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let r = http
            .get(&url)
            .bearer_auth(api.default_token())
            .send()
            .await
            .expect("answers");
        assert_eq!(
            r.status(),
            200,
            "{url}: {}",
            r.text().await.unwrap_or_default()
        );
        let page: serde_json::Value = r.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(
            items.len() <= 3,
            "a page holds at most limit people: {page}"
        );
        for item in items {
            let id = item["person_id"].as_str().expect("person_id").to_owned();
            assert!(seen.insert(id.clone()), "{id} came twice");
        }
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    let expected: BTreeSet<String> = people.iter().map(|p| p.person_id.to_string()).collect();
    assert_eq!(
        seen, expected,
        "every matching person, once, over the pages"
    );
    assert_eq!(pages, 3, "7 people at 3 a page");

    let bad = http
        .get(format!("{}/persons?given_name=Alix&after=Robert", api.base))
        .bearer_auth(api.default_token())
        .send()
        .await
        .expect("answers");
    assert_eq!(bad.status(), 400);
    let body = bad.text().await.expect("body");
    assert!(body.contains("request.invalid_cursor"), "{body}");
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
