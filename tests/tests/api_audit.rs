//! The auditors' endpoints through the API: only a multi-factor session holding an
//! `audit.query` grant gets answers; others are refused; every query is itself in the trail.

mod api_support;

use std::time::Duration;

use api_support::*;
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use socle_domain::Decision;

const ORG: &str = "90000100900019";

/// What the audit projector does, once: every committed entry of `topic` read from the start
/// (`read_committed`, to the end of each partition) and applied to the store in one batch.
async fn project_trail(pool: &sqlx::PgPool, topic: &str) -> usize {
    let (brokers, name) = (brokers(), topic.to_owned());
    let batch = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = socle_kafka::client_config(&brokers)
            .set(
                "group.id",
                format!("it-audit-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        let mut open = std::collections::HashSet::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(&name, p.id(), Offset::Beginning)
                .expect("partition");
            open.insert(p.id());
        }
        consumer.assign(&tpl).expect("assign");
        let mut batch = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !open.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "read {name} to its end"
            );
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => batch.push(m.detach()),
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => panic!("reading {name}: {e}"),
                None => {}
            }
        }
        batch
    })
    .await
    .expect("reader");
    socle_audit::project::apply(pool, &codec(), topic, &batch)
        .await
        .expect("projected");
    batch.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auditors_query_the_audit_store_and_are_traced_others_are_refused() {
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let person = uuid::Uuid::now_v7();
    let auditor = "auditrice.dpo";
    grant_until(
        &pool,
        auditor,
        ORG,
        "france-travail",
        &["audit.query"],
        "audit",
        Utc::now() + chrono::Duration::days(1),
    )
    .await;
    let http = http();
    let url = format!("{}/audit/persons/{person}/accesses", api.base);

    // Nothing projects the trail into the audit store yet: no empty success, a refusal.
    let r = http
        .get(&url)
        .bearer_auth(api.token(auditor, ORG, "france-travail", true))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        503,
        "a store that was never projected does not answer"
    );
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "audit.store_behind", "{body}");

    project_trail(&pool, &access).await;
    let r = http
        .get(&url)
        .bearer_auth(api.token(auditor, ORG, "france-travail", true))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        200,
        "an auditor with MFA is answered once the store is projected"
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["freshness"]["topic"], access.as_str(), "{body}");
    assert!(body["freshness"]["as_of"].is_string(), "{body}");

    // The same auditor without a second factor, an advisor without the grant, nobody at all.
    let r = http
        .get(&url)
        .bearer_auth(api.token(auditor, ORG, "france-travail", false))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 403, "no MFA, no audit");
    grant(&pool, "conseiller.curieux", ORG, "france-travail").await;
    let r = http
        .get(&url)
        .bearer_auth(api.token("conseiller.curieux", ORG, "france-travail", true))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 403, "an advisor is not an auditor");
    let r = http.get(&url).send().await.expect("answers");
    assert_eq!(r.status(), 401);

    let events = trail(&access).await;
    let answered = events
        .iter()
        .filter(|e| e.user == auditor && e.decision == Decision::Allow)
        .count();
    assert!(answered >= 2, "the auditor's queries are in the trail");
    assert!(
        events
            .iter()
            .any(|e| e.user == "conseiller.curieux" && e.decision == Decision::Deny),
        "the refusal is in the trail"
    );
    drop_db(pool, &db).await;
}
