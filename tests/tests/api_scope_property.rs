//! Property: for random data and random callers, every person id the API returns (or writes in
//! the trail as disclosed) is in the caller's scope — whatever they ask.

mod api_support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use api_support::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

const ORGS: [&str; 3] = ["90000100900019", "13000548100010", "19750001200013"];
const ECOSYSTEMS: [&str; 3] = ["france-travail", "cap-emploi", "missions-locales"];

#[test]
fn every_person_id_returned_is_in_the_callers_scope() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    // Random data: 45 people, each registered by one of the organisations.
    let owners = proptest::collection::vec(0..ORGS.len(), 45)
        .new_tree(&mut runner)
        .expect("data")
        .current();
    let (pool, db, api, people, access) = runtime.block_on(async {
        let (pool, db) = fresh_db().await;
        let access = random_topic("it-access").await;
        let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
        let mut people = Vec::new();
        for (i, owner) in owners.iter().enumerate() {
            let i = u32::try_from(i).expect("small");
            let row = api_support::people("Prop", 6 + i % 10, 1).remove(0);
            // In every ecosystem's model, followed by the owner there and by an organisation
            // of no caller elsewhere: only the links separate the caseloads.
            for (e, eco) in ECOSYSTEMS.iter().enumerate() {
                let org = if e == *owner {
                    ORGS[*owner]
                } else {
                    "11111111111111"
                };
                place(&pool, eco, org, std::slice::from_ref(&row)).await;
            }
            people.push((*owner, row));
        }
        for (o, org) in ORGS.iter().enumerate() {
            for u in 0..2 {
                grant(&pool, &format!("user{u}"), org, ECOSYSTEMS[o]).await;
            }
        }
        (pool, db, api, people, access)
    });
    let scope: HashMap<usize, HashSet<String>> = (0..ORGS.len())
        .map(|o| {
            (
                o,
                people
                    .iter()
                    .filter(|(owner, _)| *owner == o)
                    .map(|(_, p)| p.person_id.to_string())
                    .collect(),
            )
        })
        .collect();
    let http = http();
    // The property must not hold vacuously: count the answers that did disclose someone.
    let disclosed = std::cell::Cell::new(0u32);

    let caller = (0..ORGS.len(), 0..3usize, any::<bool>());
    let ask = (0..5usize, 0..people.len(), 1..20i64);
    runner
        .run(&(caller, ask), |((o, u, mfa), (kind, target, limit))| {
            let user = format!("user{u}"); // user2 has no grant anywhere
            let token = api.token(&user, ORGS[o], ECOSYSTEMS[o], mfa);
            let p = &people[target].1;
            let path = match kind {
                0 => format!("/persons/{}", p.person_id),
                1 => format!("/persons?family_name={}&limit={limit}", p.family_name),
                2 => format!("/persons?birth_date={}&limit={limit}", p.birth_date),
                3 => format!("/persons?nir={}", p.nir.as_deref().unwrap_or("")),
                _ => format!("/caseload?limit={limit}"),
            };
            let (status, body) = runtime.block_on(async {
                let r = http
                    .get(format!("{}{path}", api.base))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("answers");
                let status = r.status().as_u16();
                (status, r.json::<serde_json::Value>().await.expect("json"))
            });
            prop_assert!(status < 500, "{path}: {status} {body}");
            let returned: Vec<String> = if body["items"].is_array() {
                body["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["person_id"].as_str().map(str::to_owned))
                    .collect()
            } else {
                body["person_id"]
                    .as_str()
                    .map(str::to_owned)
                    .into_iter()
                    .collect()
            };
            if !mfa || u == 2 {
                prop_assert!(returned.is_empty(), "{path} without MFA or grant: {body}");
            }
            for id in &returned {
                prop_assert!(
                    scope[&o].contains(id),
                    "{path}: {id} is outside org {o}'s scope"
                );
            }
            if !returned.is_empty() {
                disclosed.set(disclosed.get() + 1);
            }
            Ok(())
        })
        .expect("property holds");
    assert!(
        disclosed.get() > 0,
        "no case disclosed anything: the property was vacuous"
    );

    // The trail agrees: nothing disclosed outside the caller's scope.
    runtime.block_on(async {
        let by_org: HashMap<&str, usize> = ORGS.iter().enumerate().map(|(i, o)| (*o, i)).collect();
        let events = trail(&access).await;
        assert!(events.len() >= 48, "every request is in the trail");
        for e in &events {
            let Some(o) = by_org.get(e.organisation.as_str()) else {
                assert!(e.person_ids.is_empty());
                continue;
            };
            for id in &e.person_ids {
                assert!(
                    scope[o].contains(id),
                    "trail: {id} disclosed to {}",
                    e.organisation
                );
            }
        }
        api.shutdown.cancel();
        drop_db(pool, &db).await;
    });
}
