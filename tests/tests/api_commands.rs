//! Write commands on the real services: a command is published on the operator's ingress
//! topic in its ingress contract (decoded back here), with the event id the API answered; bad
//! bodies are refused with a problem and publish nothing; outside the caseload is refused and
//! traced; without a multi-factor session, a step-up. And `socle ingest` takes the commands
//! from there exactly as an operator's: each becomes a canonical event on the persons topic.

mod api_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use socle_ingest::ingress::Ingress;
use tokio::sync::OnceCell;
use uuid::Uuid;

const CE: &str = "cap-emploi";
const CE_ORG: &str = "90000100900019";
const ACTIONS: [&str; 2] = ["person.read", "person.write"];

/// One random ingress topic for every operator, for the whole test binary (the API's ingress
/// topics are process-wide); each test finds its own messages by event id.
static INGRESS: OnceCell<String> = OnceCell::const_new();

async fn ingress_topic() -> String {
    INGRESS
        .get_or_init(|| async {
            let t = random_topic("it-ingress").await;
            socle_api::commands::configure(socle_api::commands::IngressTopics {
                france_travail: t.clone(),
                cap_emploi: t.clone(),
                missions_locales: t.clone(),
            });
            t
        })
        .await
        .clone()
}

/// Every message on the ingress topic, decoded to its ingress contract.
async fn ingress_messages(topic: &str) -> Vec<(String, Ingress)> {
    let consumer: StreamConsumer = socle_kafka::client_config(&brokers())
        .set("group.id", format!("it-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
    consumer.assign(&tpl).expect("assign");
    let codec = codec();
    let mut out = Vec::new();
    while i64::try_from(out.len()).unwrap_or(0) < high {
        let m = tokio::time::timeout(Duration::from_secs(15), consumer.recv())
            .await
            .expect("message within 15 s")
            .expect("message");
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let decoded = codec
            .decode(m.payload().unwrap_or_default())
            .await
            .expect("decodes");
        let reader = socle_ingest::decode::reader_for(&decoded.name).expect("an ingress contract");
        let msg = socle_ingest::decode::typed(reader, decoded.value).expect("typed");
        out.push((key, msg));
    }
    out
}

async fn setup(series: u32) -> (sqlx::PgPool, String, String, RunningApi, Vec<PersonRow>) {
    let topic = ingress_topic().await;
    let (pool, db) = fresh_db().await;
    let access = random_topic("it-access").await;
    let api = start_api(&pool, &access, &brokers(), Duration::from_secs(10)).await;
    let people = seed(&pool, CE, CE_ORG, "Lambert", series, 2).await;
    grant_until(
        &pool,
        USER,
        CE_ORG,
        CE,
        &ACTIONS,
        "accompagnement",
        chrono::Utc::now() + chrono::Duration::days(1),
    )
    .await;
    let _ = topic;
    (pool, db, access, api, people)
}

/// A follow of `person` by `organisation` in `ecosystem`, in the core state as the projector
/// writes it (with the store's own code).
async fn core_follow(
    pool: &sqlx::PgPool,
    person: Uuid,
    organisation: &str,
    ecosystem: &str,
) -> Uuid {
    use socle_store::core::{Fact, PersonFact};
    let follow_id = Uuid::now_v7();
    let mut tx = pool.begin().await.expect("tx");
    socle_store::core::ensure(&mut tx, "core")
        .await
        .expect("core state");
    let applied = socle_store::core::apply(
        &mut tx,
        "core",
        &[PersonFact {
            person_id: person,
            event_id: Uuid::now_v7(),
            occurred_at: chrono::Utc::now(),
            fact: Fact::FollowStarted {
                follow_id,
                organisation: organisation.to_owned(),
                ecosystem: ecosystem.to_owned(),
                activity: "accompagnement-global".into(),
                territory: "75".into(),
                purpose: "accompagnement".into(),
                started_on: chrono::Utc::now().date_naive(),
                until: None,
            },
        }],
    )
    .await
    .expect("follow applied");
    assert!(applied.refused.is_empty());
    tx.commit().await.expect("commit");
    follow_id
}

async fn post(api: &RunningApi, path: &str, token: &str, body: &str) -> reqwest::Response {
    http()
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_are_published_in_the_ingress_contract() {
    let (pool, db, access, api, people) = setup(7).await;
    let topic = ingress_topic().await;
    let token = api.token(USER, CE_ORG, CE, true);
    let p = people[0].person_id;
    let when = chrono::Utc::now() + chrono::Duration::days(7);
    let own = core_follow(&pool, p, CE_ORG, CE).await;
    let mut answered = Vec::new();
    for (path, body) in [
        (
            format!("/persons/{p}/contact"),
            r#"{"commune":"75056","departement":"75","email":"a@example.org","postal_code":"75011"}"#
                .to_owned(),
        ),
        (
            format!("/persons/{p}/prescriptions"),
            r#"{"service_id":"svc-1","structure_id":"str-1","thematiques":["famille--garde-denfants"]}"#.to_owned(),
        ),
        (
            format!("/persons/{p}/follows"),
            r#"{"activity":"accompagnement-global","territory":"75","purpose":"accompagnement"}"#
                .to_owned(),
        ),
        (
            format!("/persons/{p}/follows/{own}/end"),
            r#"{"reason_code":"parcours-termine"}"#.to_owned(),
        ),
        (
            format!("/persons/{p}/appointments"),
            format!(
                r#"{{"scheduled_for":"{}","duration_minutes":45,"mode":"IN_PERSON","kind":"diagnostic","commune":"75056"}}"#,
                when.to_rfc3339()
            ),
        ),
    ] {
        let r = post(&api, &path, &token, &body).await;
        assert_eq!(r.status(), 202, "{path}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["status"], "accepted");
        let id = Uuid::parse_str(v["event_id"].as_str().expect("event_id")).expect("uuid");
        assert_eq!(id.get_version_num(), 7);
        answered.push(id);
    }
    let messages = ingress_messages(&topic).await;
    let mine: Vec<&(String, Ingress)> = messages
        .iter()
        .filter(|(_, m)| answered.contains(&m.submission().event_id))
        .collect();
    assert_eq!(mine.len(), 5, "every command is on the ingress topic");
    for (key, m) in &mine {
        let s = m.submission();
        assert_eq!(key, &s.operator_person_ref, "the key is the person ref");
        assert_eq!(s.person_id, Some(p));
        assert_eq!(s.producer_organisation, CE_ORG);
        assert_eq!(s.actor.as_deref(), Some(USER));
    }
    assert!(
        matches!(&mine[0].1, Ingress::ContactUpdated(c) if c.commune == "75056" && c.contact.email.as_deref() == Some("a@example.org"))
    );
    assert!(
        matches!(&mine[1].1, Ingress::ServicePrescribed(c) if c.service_id == "svc-1" && c.prescriber_organisation == CE_ORG)
    );
    assert!(
        matches!(&mine[2].1, Ingress::FollowStarted(c) if c.ecosystem == "cap-emploi" && c.organisation == CE_ORG)
    );
    assert!(matches!(&mine[3].1, Ingress::FollowEnded(c) if c.organisation == CE_ORG));
    assert!(
        matches!(&mine[4].1, Ingress::AppointmentScheduled(c)
            if c.organisation == CE_ORG
                && c.scheduled_for == when.timestamp_micros()
                && c.duration_minutes == Some(45)
                && c.mode == "IN_PERSON"
                && c.kind == "diagnostic"
                && c.advisor.as_deref() == Some(USER)
                && c.commune.as_deref() == Some("75056")),
        "{:?}",
        mine[4].1
    );
    // Every command is in the trail, allowed, with the person.
    let events = trail(&access).await;
    for command in ["contact", "prescriptions", "follows", "end", "appointments"] {
        assert!(
            events.iter().any(|e| e.action == "person.write"
                && e.resource.ends_with(command)
                && e.decision == socle_domain::Decision::Allow
                && e.person_ids == vec![p.to_string()]),
            "{command} traced"
        );
    }

    // `socle ingest`, bound to this topic as Cap Emploi's, validates, seals and publishes them.
    let persons = random_topic("it-persons").await;
    let deadletter = random_topic("it-deadletter").await;
    let stop = tokio_util::sync::CancellationToken::new();
    let ingest = tokio::spawn(socle_ingest::run(
        socle_ingest::IngestConfig {
            brokers: brokers(),
            registry_url: env_or("SOCLE__REGISTRY__URL", "http://localhost:8081"),
            group: format!("it-ingest-{}", Uuid::new_v4()),
            transactional_id: format!("it-ingest-{}", Uuid::new_v4()),
            group_instance_id: None,
            sources: vec![socle_ingest::Source {
                topic: topic.clone(),
                operator: CE.to_owned(),
            }],
            persons_topic: persons.clone(),
            deadletter_topic: deadletter.clone(),
            batch_size: 100,
            batch_timeout: Duration::from_millis(50),
            transaction_timeout: Duration::from_secs(20),
        },
        pool.clone(),
        referential(),
        stop.clone(),
    ));
    let expected: Vec<Uuid> = mine
        .iter()
        .map(|(_, m)| socle_ingest::canonicalize::event_id(CE, m.submission()))
        .collect();
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen = canonical_ids(&persons).await;
        if expected.iter().all(|id| seen.contains(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    let totals = ingest.await.expect("ingest task").expect("ingest ran");
    assert!(
        expected.iter().all(|id| seen.contains(id)),
        "every command became a canonical event: {totals:?}, dead letters: {:?}",
        dead_reasons(&deadletter).await
    );
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

fn referential() -> Arc<socle_domain::reference::Referential> {
    let dir = std::env::var_os("SOCLE__REFERENCE__DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../reference")),
        PathBuf::from,
    );
    Arc::new(
        socle_domain::reference::Referential::load(
            &socle_domain::reference::ReferencePaths::under(&dir),
        )
        .expect("the referential (reference/) loads"),
    )
}

/// Every record on `topic` (one partition), decoded with the writer's schema.
async fn records(topic: &str) -> Vec<apache_avro::types::Value> {
    let consumer: StreamConsumer = socle_kafka::client_config(&brokers())
        .set("group.id", format!("it-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
    consumer.assign(&tpl).expect("assign");
    let codec = codec();
    let mut out = Vec::new();
    if high <= low {
        return out;
    }
    loop {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), consumer.recv()).await else {
            break;
        };
        if let Ok(d) = codec.decode(m.payload().unwrap_or_default()).await {
            out.push(d.value);
        }
        if m.offset() + 1 >= high {
            break;
        }
    }
    out
}

fn field<'a>(
    v: &'a apache_avro::types::Value,
    name: &str,
) -> Option<&'a apache_avro::types::Value> {
    match v {
        apache_avro::types::Value::Record(fields) => {
            fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
        }
        apache_avro::types::Value::Union(_, inner) => field(inner, name),
        _ => None,
    }
}

async fn canonical_ids(topic: &str) -> Vec<Uuid> {
    records(topic)
        .await
        .iter()
        .filter_map(|r| match field(field(r, "envelope")?, "event_id")? {
            apache_avro::types::Value::Uuid(u) => Some(*u),
            apache_avro::types::Value::String(s) => Uuid::parse_str(s).ok(),
            _ => None,
        })
        .collect()
}

async fn dead_reasons(topic: &str) -> Vec<String> {
    records(topic)
        .await
        .iter()
        .filter_map(|r| match field(r, "reason_code")? {
            apache_avro::types::Value::String(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bodies_refusals_and_step_up_publish_nothing() {
    let (pool, db, access, api, people) = setup(8).await;
    let topic = ingress_topic().await;
    let token = api.token(USER, CE_ORG, CE, true);
    let p = people[0].person_id;
    let contact = format!("/persons/{p}/contact");
    let big = format!(
        r#"{{"commune":"75056","departement":"75","address_line":"{}"}}"#,
        "x".repeat(10_000)
    );
    for (path, body, code) in [
        (
            contact.clone(),
            r#"{"commune":"75056","departement":"75","nir":"1"}"#.to_owned(),
            "request.unknown_field",
        ),
        (
            contact.clone(),
            r#"{"commune":"7505","departement":"75"}"#.to_owned(),
            "command.invalid_field",
        ),
        (
            format!("/persons/{p}/prescriptions"),
            r#"{"service_id":"s","structure_id":"t","structure_siret":"12345678901234"}"#
                .to_owned(),
            "command.invalid_field",
        ),
        (
            format!("/persons/{p}/appointments"),
            r#"{"scheduled_for":"2026-12-03T09:30:00Z","mode":"BY_PIGEON","kind":"suivi"}"#
                .to_owned(),
            "request.invalid_json",
        ),
        (
            format!("/persons/{p}/appointments"),
            r#"{"scheduled_for":"2026-12-03T09:30:00Z","mode":"PHONE","kind":"suivi","room":"B"}"#
                .to_owned(),
            "request.unknown_field",
        ),
        (
            format!("/persons/{p}/appointments"),
            r#"{"scheduled_for":"2026-12-03T09:30:00Z","mode":"PHONE","kind":"suivi","duration_minutes":0}"#
                .to_owned(),
            "command.invalid_field",
        ),
        (
            format!("/persons/{p}/appointments"),
            format!(
                r#"{{"scheduled_for":"{}","mode":"VIDEO","kind":"suivi"}}"#,
                (chrono::Utc::now() + chrono::Duration::days(800)).to_rfc3339()
            ),
            "command.invalid_field",
        ),
        (
            "/persons/not-a-uuid/contact".to_owned(),
            r#"{"commune":"75056","departement":"75"}"#.to_owned(),
            "person.invalid_id",
        ),
        (contact.clone(), big, "request.body_too_large"),
        (
            contact.clone(),
            "{not json".to_owned(),
            "request.invalid_json",
        ),
    ] {
        let r = post(&api, &path, &token, &body).await;
        assert_eq!(r.status(), 400, "{path} {code}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["code"], code);
    }
    // A person the organisation does not follow.
    let stranger = Uuid::now_v7();
    let r = post(
        &api,
        &format!("/persons/{stranger}/contact"),
        &token,
        r#"{"commune":"75056","departement":"75"}"#,
    )
    .await;
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "scope.outside_caseload");
    // Without a multi-factor session: step-up.
    let weak = api.token(USER, CE_ORG, CE, false);
    let r = post(
        &api,
        &contact,
        &weak,
        r#"{"commune":"75056","departement":"75"}"#,
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .contains("insufficient_user_authentication"));
    // A partner has no write path.
    let partner = api.token(USER, CE_ORG, "partenaires", true);
    let r = post(
        &api,
        &format!("/persons/{p}/follows"),
        &partner,
        r#"{"activity":"a","territory":"75","purpose":"accompagnement"}"#,
    )
    .await;
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "command.no_operator");
    let ours = [Some(p), Some(stranger)];
    assert!(
        !ingress_messages(&topic)
            .await
            .iter()
            .any(|(_, m)| ours.contains(&m.submission().person_id)),
        "nothing published"
    );
    let events = trail(&access).await;
    assert!(
        events.iter().any(|e| e.action == "person.write"
            && e.decision == socle_domain::Decision::Deny
            && e.reason.as_deref() == Some("scope.outside_caseload")
            && e.resource == format!("/persons/{stranger}/contact")),
        "the refusal is traced"
    );
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref() == Some("auth.mfa_required")));
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ending_a_follow_that_is_not_yours_is_refused() {
    let (pool, db, access, api, people) = setup(9).await;
    let topic = ingress_topic().await;
    let token = api.token(USER, CE_ORG, CE, true);
    let (p, q) = (people[0].person_id, people[1].person_id);
    // France Travail's follow of p, Cap Emploi's follow of q, a Cap Emploi follow of another
    // Cap Emploi organisation, and a follow id nobody has.
    let theirs = core_follow(&pool, p, "90000100500012", "france-travail").await;
    let of_q = core_follow(&pool, q, CE_ORG, CE).await;
    let colleague = core_follow(&pool, p, "77700001000012", CE).await;
    let unknown = Uuid::now_v7();
    let mut refused = Vec::new();
    for (person, follow) in [(p, theirs), (p, of_q), (p, colleague), (p, unknown)] {
        let path = format!("/persons/{person}/follows/{follow}/end");
        let r = post(&api, &path, &token, "{}").await;
        assert_eq!(r.status(), 403, "{path}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["code"], "follow.not_owned", "{path}");
        refused.push(follow);
    }
    // Its own follow, through its own person: accepted.
    let r = post(
        &api,
        &format!("/persons/{q}/follows/{of_q}/end"),
        &token,
        "{}",
    )
    .await;
    assert_eq!(r.status(), 202);
    // Also one that `socle ingest` accepted and the projector has not applied yet.
    let just_started = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO ingest.follows (follow_id, person_id, organisation, ecosystem) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(just_started)
    .bind(q)
    .bind(CE_ORG)
    .bind(CE)
    .execute(&pool)
    .await
    .expect("claimed");
    let r = post(
        &api,
        &format!("/persons/{q}/follows/{just_started}/end"),
        &token,
        "{}",
    )
    .await;
    assert_eq!(r.status(), 202);
    let messages = ingress_messages(&topic).await;
    let ends: Vec<Uuid> = messages
        .iter()
        .filter_map(|(_, m)| match m {
            Ingress::FollowEnded(e) if [Some(p), Some(q)].contains(&e.submission.person_id) => {
                Some(e.follow_id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec![of_q, just_started],
        "only the legitimate ends are published"
    );
    let events = trail(&access).await;
    for follow in refused {
        assert!(
            events
                .iter()
                .any(|e| e.decision == socle_domain::Decision::Deny
                    && e.reason.as_deref() == Some("follow.not_owned")
                    && e.resource == format!("/persons/{p}/follows/{follow}/end")),
            "the refusal is traced"
        );
    }
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_trail_no_command() {
    let topic = ingress_topic().await;
    let (pool, db) = fresh_db().await;
    // The trail's producer (and the API's brokers) point at a port where no broker listens.
    let api = start_api(
        &pool,
        "it-access-unreachable",
        "127.0.0.1:9",
        Duration::from_secs(2),
    )
    .await;
    let people = seed(&pool, CE, CE_ORG, "Garnier", 9, 1).await;
    grant_until(
        &pool,
        USER,
        CE_ORG,
        CE,
        &ACTIONS,
        "accompagnement",
        chrono::Utc::now() + chrono::Duration::days(1),
    )
    .await;
    let p = people[0].person_id;
    let r = post(
        &api,
        &format!("/persons/{p}/contact"),
        &api.token(USER, CE_ORG, CE, true),
        r#"{"commune":"75056","departement":"75"}"#,
    )
    .await;
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.expect("json");
    // The trail is written first: its failure, not the publication's, is what stops the command.
    assert_eq!(v["code"], "trail.unavailable");
    assert!(!ingress_messages(&topic)
        .await
        .iter()
        .any(|(_, m)| m.submission().person_id == Some(p)));
    api.shutdown.cancel();
    drop_db(pool, &db).await;
}
