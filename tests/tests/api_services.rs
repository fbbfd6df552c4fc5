//! The services catalogue on the real services: loaded from the data·inclusion sample (plus
//! services derived from it), filtered by thématique and commune, refused with a problem on a
//! bad filter, and every read in the trail with no person id.

mod api_support;

use std::time::Duration;

use api_support::*;
use serde_json::Value;

fn sample_services() -> Vec<Value> {
    // What `socle reference load` publishes by default: the sample in the runtime referential
    // (`reference.dir`, reference/README.md).
    let dir = std::env::var_os("SOCLE__REFERENCE__DIR").map_or_else(
        || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../reference")),
        std::path::PathBuf::from,
    );
    let path = dir.join("data-inclusion-api/sample_responses_from_snapshot.json");
    let text = std::fs::read_to_string(&path).expect("the data·inclusion sample is readable");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let sample = doc["test_list_services_all"]["items"][0].clone();
    assert_eq!(sample["id"], "dora--be-water-scene-wind");
    // Two more, derived from the sample: another thématique, another commune.
    let mut other = sample.clone();
    other["id"] = "dora--derived-mobilite".into();
    other["thematiques"] = serde_json::json!(["mobilite--louer-un-vehicule"]);
    other["code_insee"] = "75056".into();
    let mut third = sample.clone();
    third["id"] = "dora--derived-famille-paris".into();
    third["code_insee"] = "75056".into();
    vec![sample, other, third]
}

async fn list(api: &RunningApi, query: &str) -> reqwest::Response {
    http()
        .get(format!("{}/services{query}", api.base))
        .bearer_auth(api.token(USER, ORG, "partenaires", false))
        .send()
        .await
        .expect("answers")
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalogue_filters_and_is_traced() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let n = socle_api::services::upsert(&pool, &sample_services())
        .await
        .expect("loaded");
    assert_eq!(n, 3);
    // Loading again replaces, never duplicates.
    socle_api::services::upsert(&pool, &sample_services())
        .await
        .expect("reloaded");

    // Any authenticated caller, without grant nor MFA (reference data, no personal data).
    let all = list(&api, "").await;
    assert_eq!(all.status(), 200);
    assert_eq!(ids(&all.json().await.expect("json")).len(), 3);
    let famille = list(&api, "?thematique=famille--garde-denfants").await;
    assert_eq!(
        ids(&famille.json().await.expect("json")),
        ["dora--be-water-scene-wind", "dora--derived-famille-paris"]
    );
    let paris = list(&api, "?thematique=famille--garde-denfants&commune=75056").await;
    assert_eq!(
        ids(&paris.json().await.expect("json")),
        ["dora--derived-famille-paris"]
    );
    let one = list(&api, "?limit=1").await;
    assert_eq!(ids(&one.json().await.expect("json")).len(), 1);

    for (query, code) in [
        ("?thematique=Famille%27%3B", "services.invalid_thematique"),
        ("?commune=7505", "services.invalid_commune"),
        ("?limit=0", "request.invalid_limit"),
        ("?limit=abc", "request.invalid_query"),
        ("?person=1", "request.invalid_query"),
    ] {
        let r = list(&api, query).await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], code, "{query}");
    }
    let anonymous = http()
        .get(format!("{}/services", api.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401);

    let events = trail(&access).await;
    let reads: Vec<_> = events
        .iter()
        .filter(|e| e.action == "services.list")
        .collect();
    assert_eq!(reads.len(), 10, "every read and refusal is traced");
    assert!(reads.iter().all(|e| e.person_ids.is_empty()));
    assert_eq!(
        reads
            .iter()
            .filter(|e| e.decision == socle_domain::Decision::Allow)
            .count(),
        4
    );
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
