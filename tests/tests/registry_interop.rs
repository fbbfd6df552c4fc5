//! Interop with a Rust client nobody here wrote: `schema_registry_converter` registers a schema
//! through socle's registry (the one `make registry` runs, at SOCLE__REGISTRY__URL) under a
//! `TopicRecordNameStrategy` subject, encodes with it, the message goes through the real Kafka,
//! and the converter's decoder reads it back by the id in the frame. It also decodes an event
//! socle's own `Publisher` produced, and sees a 409 for an incompatible registration.
//! Random topic names, so the subjects are new on every run.

mod common;

use std::time::Duration;

use apache_avro::types::Value;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"interop.rust","fields":[
  {"name":"id","type":"string"},
  {"name":"amount_cents","type":"long"},
  {"name":"note","type":["null","string"],"default":null}]}"#;

#[derive(Debug, Serialize)]
struct Order {
    id: String,
    amount_cents: i64,
    note: Option<String>,
}

fn settings() -> SrSettings {
    SrSettings::new(common::registry_url())
}

fn supplied(schema: &str) -> SuppliedSchema {
    SuppliedSchema {
        name: Some("interop.rust.Order".to_owned()),
        schema_type: SchemaType::Avro,
        schema: schema.to_owned(),
        references: vec![],
        properties: None,
        tags: None,
    }
}

fn consumer(topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = socle_kafka::client_config(&common::brokers())
        .set("group.id", common::unique("registry-interop"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

async fn first_message(consumer: &StreamConsumer) -> (Vec<u8>, Vec<u8>) {
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30 s")
        .expect("kafka message");
    (
        message.key().unwrap_or_default().to_vec(),
        message.payload().unwrap_or_default().to_vec(),
    )
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> &'a Value {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

#[tokio::test]
async fn schema_registry_converter_registers_produces_and_consumes_through_socle() {
    let topic = common::topic("interop-rust", 1).await;
    let encoder = AvroEncoder::new(settings());
    let strategy =
        SubjectNameStrategy::TopicRecordNameStrategyWithSchema(topic.clone(), supplied(ORDER));
    let order = Order {
        id: "o-1".into(),
        amount_cents: 12_345,
        note: Some("première".into()),
    };
    let payload = encoder
        .encode_struct(&order, &strategy)
        .await
        .expect("registered and encoded through socle's registry");
    assert_eq!(payload[0], 0, "Confluent magic byte");
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);

    // The subject is <topic>-<record full name>, its latest version carries that id.
    let subject = format!("{topic}-interop.rust.Order");
    let latest: serde_json::Value = common::client()
        .get(format!(
            "{}/subjects/{subject}/versions/latest",
            common::registry_url()
        ))
        .send()
        .await
        .expect("registry answers")
        .json()
        .await
        .expect("json");
    assert_eq!(latest["id"], serde_json::json!(id));
    assert_eq!(latest["version"], serde_json::json!(1));

    let delivered = common::producer()
        .send(&topic, "o-1", &payload)
        .await
        .expect("delivered");
    assert_eq!(delivered.offset, 0);

    let (key, bytes) = first_message(&consumer(&topic)).await;
    assert_eq!(key, b"o-1");
    let decoded = AvroDecoder::new(settings())
        .decode(Some(&bytes))
        .await
        .expect("decoded by id");
    assert_eq!(
        decoded.name.map(|n| n.fullname(None)),
        Some("interop.rust.Order".to_owned())
    );
    let Value::Record(fields) = decoded.value else {
        panic!("not a record");
    };
    assert_eq!(field(&fields, "id"), &Value::String("o-1".into()));
    assert_eq!(field(&fields, "amount_cents"), &Value::Long(12_345));
    assert_eq!(
        field(&fields, "note"),
        &Value::Union(1, Box::new(Value::String("première".into())))
    );

    // An incompatible change under the same subject (BACKWARD: amount_cents becomes a string).
    let incompatible = ORDER.replace(
        r#"{"name":"amount_cents","type":"long"}"#,
        r#"{"name":"amount_cents","type":"string"}"#,
    );
    let err = post_schema(&settings(), subject, supplied(&incompatible))
        .await
        .expect_err("incompatible change refused");
    assert!(err.error.contains("409"), "{err:?}");
}

#[tokio::test]
async fn schema_registry_converter_reads_an_event_socle_published() {
    let db = common::TestDb::new().await;
    let topic = common::topic("interop-rust-persons", 1).await;
    let registration = common::registration(7);
    let person_id = registration.person_id;
    common::publisher(&db, &topic)
        .register(registration)
        .await
        .expect("published by socle");

    let (key, bytes) = first_message(&consumer(&topic)).await;
    assert_eq!(key, person_id.to_string().as_bytes());
    let decoded = AvroDecoder::new(settings())
        .decode(Some(&bytes))
        .await
        .expect("decoded with the writer schema from socle's registry");
    assert_eq!(
        decoded.name.map(|n| n.fullname(None)),
        Some("socle.person.PersonRegistered".to_owned())
    );
    let Value::Record(fields) = decoded.value else {
        panic!("not a record");
    };
    assert_eq!(field(&fields, "person_id"), &Value::Uuid(person_id));
    let Value::Record(personal) = field(&fields, "personal") else {
        panic!("personal is not a record");
    };
    assert_eq!(
        field(personal, "content"),
        &Value::String("socle.pii.PersonIdentity".into())
    );
    // Sealed: the name is nowhere in clear in the message.
    assert!(!String::from_utf8_lossy(&bytes).contains("Testeur7"));
    db.drop_db().await;
}
