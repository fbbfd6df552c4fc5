//! Registrations are events: a registry with its relay (as `socle registry` runs it) on a
//! fresh database publishes every registration, deletion and compatibility change to a
//! random topic on the real Kafka, encoded with the ids it gave its own contracts, readable
//! by a client nobody here wrote (`schema_registry_converter`'s decoder, fetching the writer
//! schemas from the registry by id). With Kafka unreachable, events wait in the outbox, the
//! registry pushes back once the bound is reached, and nothing is lost: a relay that can
//! reach Kafka later publishes them all, in order.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use apache_avro::types::Value;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde_json::json;
use socle_contracts::events::{self, EventsConfig};
use socle_registry::Registry;
use tokio_util::sync::CancellationToken;

const V1: &str = r#"{"type":"record","name":"Order","namespace":"socle.test","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","namespace":"socle.test","fields":[{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}]}"#;

struct Running {
    base: String,
    shutdown: CancellationToken,
    relay: tokio::task::JoinHandle<()>,
}

async fn start(pool: sqlx::PgPool, brokers: &str, topic: &str, max_backlog: i64) -> Running {
    let shutdown = CancellationToken::new();
    let registry = Registry::new(pool).await.expect("registry");
    let (registry, relay) = events::start(
        registry,
        EventsConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            organisation: "90000100500012".to_owned(),
            delivery_timeout: Duration::from_secs(2),
            max_backlog,
        },
        shutdown.clone(),
    )
    .await
    .expect("events start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = shutdown.clone();
    tokio::spawn(registry.serve(listener, async move { stop.cancelled().await }));
    Running {
        base,
        shutdown,
        relay,
    }
}

async fn send(
    base: &str,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = common::client().request(method, format!("{base}{path}"));
    if let Some(user) = user {
        request = request.header("X-Socle-User", user);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("registry answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// One decoded event: its key, record name and fields.
#[derive(Debug)]
struct Event {
    key: String,
    name: String,
    fields: HashMap<String, Value>,
}

/// Reads `count` events from the start of `topic`, decoded by schema_registry_converter.
async fn read_events(topic: &str, registry: &str, count: usize) -> Vec<Event> {
    let consumer: StreamConsumer = socle_kafka::client_config(&common::brokers())
        .set("group.id", common::unique("registry-events-test"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let decoder = AvroDecoder::new(SrSettings::new(registry.to_owned()));
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events on {topic}: {out:#?}", out.len()))
            .expect("kafka message");
        let decoded = decoder
            .decode(message.payload())
            .await
            .expect("decodes with the registry's schema");
        let Value::Record(fields) = decoded.value else {
            panic!("not a record: {:?}", decoded.value);
        };
        out.push(Event {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            name: decoded.name.map(|n| n.fullname(None)).unwrap_or_default(),
            fields: fields.into_iter().collect(),
        });
    }
    out
}

fn text(e: &Event, field: &str) -> String {
    match e.fields.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Union(_, inner)) => match inner.as_ref() {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        },
        other => panic!("{field} of {} is {other:?}", e.name),
    }
}

fn int(e: &Event, field: &str) -> i32 {
    match e.fields.get(field) {
        Some(Value::Int(n)) => *n,
        other => panic!("{field} of {} is {other:?}", e.name),
    }
}

/// (record short name, key, actor field) of each event.
fn summary(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let short = e.name.rsplit('.').next().unwrap_or_default().to_owned();
            let actor = match short.as_str() {
                "SchemaRegistered" => text(e, "registered_by"),
                "SchemaDeleted" => text(e, "deleted_by"),
                _ => text(e, "changed_by"),
            };
            (short, e.key.clone(), actor)
        })
        .collect()
}

fn own(topic: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for name in ["SchemaRegistered", "SchemaDeleted", "CompatibilityChanged"] {
        let subject = format!("{topic}-socle.registry.{name}");
        out.push((
            "CompatibilityChanged".to_owned(),
            subject.clone(),
            "socle-registry".to_owned(),
        ));
        out.push((
            "SchemaRegistered".to_owned(),
            subject,
            "socle-registry".to_owned(),
        ));
    }
    out
}

#[tokio::test]
async fn registrations_deletions_and_compatibility_changes_are_events_on_kafka() {
    let db = common::TestDb::new().await;
    let topic = common::topic("socle-schemas-it", 1).await;
    let running = start(db.pool.clone(), &common::brokers(), &topic, 1000).await;
    let base = running.base.clone();
    let s = "orders-socle.test.Order";
    let put = |level: &str| json!({ "compatibility": level });
    assert_eq!(
        send(
            &base,
            "PUT",
            &format!("/config/{s}"),
            Some("alice"),
            Some(put("BACKWARD_TRANSITIVE"))
        )
        .await
        .0,
        200
    );
    let (status, v1) = send(
        &base,
        "POST",
        &format!("/subjects/{s}/versions"),
        Some("alice"),
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        send(
            &base,
            "POST",
            &format!("/subjects/{s}/versions"),
            None,
            Some(json!({"schema": V2}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/subjects/{s}/versions/1"),
            Some("carol"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(
            &base,
            "DELETE",
            &format!("/subjects/{s}/versions/1?permanent=true"),
            Some("carol"),
            None
        )
        .await
        .0,
        200
    );

    let events = read_events(&topic, &base, 11).await;
    let mut expected = own(&topic);
    for (kind, actor) in [
        ("CompatibilityChanged", "alice"),
        ("SchemaRegistered", "alice"),
        ("SchemaRegistered", "anonymous"),
        ("SchemaDeleted", "carol"),
        ("SchemaDeleted", "carol"),
    ] {
        expected.push((kind.to_owned(), s.to_owned(), actor.to_owned()));
    }
    assert_eq!(summary(&events), expected);

    let registered = &events[7];
    assert_eq!(registered.name, "socle.registry.SchemaRegistered");
    assert_eq!(int(registered, "version"), 1);
    assert_eq!(serde_json::json!(int(registered, "schema_id")), v1["id"]);
    assert_eq!(text(registered, "schema"), V1);
    assert_eq!(text(registered, "schema_type"), "AVRO");
    assert!(
        matches!(registered.fields.get("registered_at"), Some(Value::TimestampMicros(t)) if *t > 0)
    );
    let Some(Value::Record(envelope)) = registered.fields.get("envelope") else {
        panic!("no envelope: {registered:?}");
    };
    let envelope: HashMap<_, _> = envelope.iter().cloned().collect();
    assert!(matches!(envelope.get("event_id"), Some(Value::Uuid(u)) if u.get_version_num() == 7));
    assert_eq!(
        envelope.get("producer_organisation"),
        Some(&Value::String("90000100500012".into()))
    );
    let soft = &events[9];
    let hard = &events[10];
    assert_eq!(
        (soft.fields.get("permanent"), hard.fields.get("permanent")),
        (Some(&Value::Boolean(false)), Some(&Value::Boolean(true)))
    );
    assert_eq!(text(&events[6], "compatibility"), "BACKWARD_TRANSITIVE");
    // The relay's metrics are served beside the registry's (process-wide counters: at least ours).
    let metrics = common::client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let published: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("socle_registry_events_published_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no published counter in:\n{metrics}"));
    assert!(published >= 11, "{published}");
    for name in [
        "socle_registry_events_waiting",
        "socle_registry_events_failures_total",
    ] {
        assert!(metrics.contains(name), "no {name} in:\n{metrics}");
    }

    running.shutdown.cancel();
    running.relay.await.expect("relay stops");
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM registry.events WHERE published_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .expect("outbox");
    assert_eq!(waiting, 0);
    db.drop_db().await;
}

#[tokio::test]
async fn with_kafka_unreachable_events_wait_the_registry_pushes_back_and_nothing_is_lost() {
    let db = common::TestDb::new().await;
    // Nothing listens on port 1: every publication fails after the delivery timeout.
    let down = start(db.pool.clone(), "127.0.0.1:1", "socle-schemas-never", 8).await;
    let s = "orders-socle.test.Order";
    let path = format!("/subjects/{s}/versions");
    // 6 events of its own contracts + 2 registrations reach the bound of 8.
    assert_eq!(
        send(
            &down.base,
            "POST",
            &path,
            Some("alice"),
            Some(json!({"schema": V1}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(
            &down.base,
            "POST",
            &path,
            Some("bob"),
            Some(json!({"schema": V2}))
        )
        .await
        .0,
        200
    );
    let (status, body) = send(
        &down.base,
        "PUT",
        &format!("/config/{s}"),
        Some("alice"),
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(
        (status, &body["error_code"]),
        (503, &json!(50301)),
        "{body}"
    );
    let (status, health) = send(&down.base, "GET", "/health", None, None).await;
    assert_eq!((status, &health["events_backlog"]), (503, &json!(8)));
    down.shutdown.cancel();
    down.relay.await.expect("relay stops");

    // Kafka is reachable again (another instance, same database): all 8 leave, in order.
    let topic = common::topic("socle-schemas-it", 1).await;
    let up = start(db.pool.clone(), &common::brokers(), &topic, 100).await;
    let events = read_events(&topic, &up.base, 8).await;
    let got = summary(&events);
    // The contracts were registered under the first topic name; their subjects say so.
    let mut expected = own("socle-schemas-never");
    expected.push(("SchemaRegistered".into(), s.into(), "alice".into()));
    expected.push(("SchemaRegistered".into(), s.into(), "bob".into()));
    assert_eq!(&got[..8], &expected[..]);
    common::eventually(Duration::from_secs(30), "backlog drained", || {
        let base = up.base.clone();
        async move { send(&base, "GET", "/health", None, None).await.0 == 200 }
    })
    .await;
    assert_eq!(
        send(
            &up.base,
            "PUT",
            &format!("/config/{s}"),
            Some("alice"),
            Some(json!({"compatibility": "NONE"}))
        )
        .await
        .0,
        200
    );
    up.shutdown.cancel();
    up.relay.await.expect("relay stops");
    db.drop_db().await;
}

#[tokio::test]
async fn a_read_only_registry_restarts_once_its_contracts_are_registered() {
    let db = common::TestDb::new().await;
    let topic = common::topic("socle-schemas-it", 1).await;
    let first = start(db.pool.clone(), &common::brokers(), &topic, 100).await;
    let (status, _) = send(
        &first.base,
        "PUT",
        "/mode",
        Some("ops"),
        Some(json!({"mode": "READONLY"})),
    )
    .await;
    assert_eq!(status, 200);
    first.shutdown.cancel();
    first.relay.await.expect("relay stops");
    // Same topic, read-only: its own contracts are found, not registered again.
    let again = start(db.pool.clone(), &common::brokers(), &topic, 100).await;
    let (status, body) = send(
        &again.base,
        "POST",
        "/subjects/s/versions",
        None,
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!((status, &body["error_code"]), (422, &json!(42205)));
    // The six events of the first start were published; the restart added none.
    assert_eq!(read_events(&topic, &again.base, 6).await.len(), 6);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM registry.events")
        .fetch_one(&db.pool)
        .await
        .expect("outbox");
    assert_eq!(total, 6);
    again.shutdown.cancel();
    again.relay.await.expect("relay stops");
    db.drop_db().await;
}
