//! Purpose limitation beyond the columns: a grant for the non-identifying purpose `pilotage`
//! (france-travail's agreement grants it no identity field) can neither search people by NIR,
//! name or birth date, nor list the caseload's person ids, nor read a person: it reads
//! aggregates only. The same caller under `accompagnement` can.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_identifying_purpose_reads_no_person_ids() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, ECOSYSTEM, ORG, "Purpose", 12, 3).await;
    let until = Utc::now() + chrono::Duration::days(1);
    let actions = ["person.read", "person.search", "caseload.list"];
    grant_until(
        &pool, "analyste", ORG, ECOSYSTEM, &actions, "pilotage", until,
    )
    .await;
    grant_until(
        &pool,
        "conseil",
        ORG,
        ECOSYSTEM,
        &actions,
        "accompagnement",
        until,
    )
    .await;
    let analyst = api.token("analyste", ORG, ECOSYSTEM, true);
    let advisor = api.token("conseil", ORG, ECOSYSTEM, true);
    let http = http();
    let nir = people[0].nir.clone().expect("nir");
    let paths = [
        format!("/persons?nir={nir}&purpose=pilotage"),
        format!(
            "/persons?family_name={}&purpose=pilotage",
            people[0].family_name
        ),
        "/persons?birth_date=1990-01-01&purpose=pilotage".to_owned(),
        "/caseload?purpose=pilotage".to_owned(),
        format!("/persons/{}?purpose=pilotage", people[0].person_id),
    ];
    for path in &paths {
        let r = http
            .get(format!("{}{path}", api.base))
            .bearer_auth(&analyst)
            .send()
            .await
            .expect("answers");
        let status = r.status().as_u16();
        let body = r.text().await.expect("body");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("purpose.not_identifying"), "{path}: {body}");
        for p in &people {
            assert!(
                !body.contains(&p.person_id.to_string()),
                "{path} disclosed an id: {body}"
            );
        }
    }
    // The advisor's identifying purpose reaches the same people.
    for path in [
        format!("/persons?nir={nir}&purpose=accompagnement"),
        "/caseload?purpose=accompagnement".to_owned(),
        format!("/persons/{}?purpose=accompagnement", people[0].person_id),
    ] {
        let r = http
            .get(format!("{}{path}", api.base))
            .bearer_auth(&advisor)
            .send()
            .await
            .expect("answers");
        let status = r.status().as_u16();
        let body = r.text().await.expect("body");
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            body.contains(&people[0].person_id.to_string()),
            "{path}: {body}"
        );
    }
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
