//! The sealed format end to end with the real schemas: a health situation is Avro-encoded
//! with `PersonHealthSituation.avsc`, sealed for its person, carried in a
//! `PersonSituationUpdated` encoded and decoded with apache-avro, and opened again; the
//! same block does not open for another person.

use std::path::PathBuf;

use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum, Schema};
use socle_domain::pii::DataKey;
use uuid::Uuid;

fn schema(relative: &str) -> Schema {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn envelope() -> Value {
    record(vec![
        ("event_id", Value::Uuid(Uuid::now_v7())),
        ("occurred_at", Value::TimestampMicros(1_774_000_000_000_000)),
        ("recorded_at", Value::TimestampMicros(1_774_000_000_100_000)),
        (
            "producer_organisation",
            Value::String("13000548121305".into()),
        ),
        (
            "actor",
            Value::Union(1, Box::new(Value::String("advisor-42".into()))),
        ),
        ("correlation_id", Value::Union(0, Box::new(Value::Null))),
        ("causation_id", Value::Union(0, Box::new(Value::Null))),
        ("schema_version", Value::Int(1)),
    ])
}

#[test]
fn health_situation_sealed_in_a_situation_update() {
    let person = Uuid::now_v7();
    let key = DataKey::generate();

    let health_schema = schema("person/PersonHealthSituation.avsc");
    let health = record(vec![
        ("rqth", Value::Union(1, Box::new(Value::Boolean(true)))),
        ("rqth_until", Value::Union(1, Box::new(Value::Date(21_000)))),
        ("boeth", Value::Union(0, Box::new(Value::Null))),
    ]);
    let plaintext = to_avro_datum(&health_schema, health.clone()).expect("encode plaintext");
    let sealed = key
        .seal(person, "socle.pii.PersonHealthSituation", &plaintext)
        .expect("seal");

    let event_schema = schema("person/PersonSituationUpdated.avsc");
    let event = record(vec![
        ("envelope", envelope()),
        ("person_id", Value::Uuid(person)),
        ("effective_on", Value::Date(20_500)),
        (
            "registration_category",
            Value::Union(1, Box::new(Value::Enum(0, "A".into()))),
        ),
        (
            "rsa_beneficiary",
            Value::Union(1, Box::new(Value::Boolean(false))),
        ),
        (
            "personal",
            record(vec![
                ("key_id", Value::String(sealed.key_id.clone())),
                ("algorithm", Value::String(sealed.algorithm.clone())),
                ("content", Value::String(sealed.content.clone())),
                ("nonce", Value::Bytes(sealed.nonce.clone())),
                ("ciphertext", Value::Bytes(sealed.ciphertext.clone())),
            ]),
        ),
    ]);
    let bytes = to_avro_datum(&event_schema, event).expect("encode event");
    assert!(
        !bytes
            .windows(plaintext.len())
            .any(|w| w == plaintext.as_slice()),
        "plaintext must not appear in the event"
    );

    let decoded =
        from_avro_datum(&event_schema, &mut bytes.as_slice(), None).expect("decode event");
    let Value::Record(fields) = decoded else {
        panic!("a record")
    };
    let personal = &fields
        .iter()
        .find(|(k, _)| k == "personal")
        .expect("personal")
        .1;
    let Value::Record(p) = personal else {
        panic!("sealed record")
    };
    let get_bytes = |name: &str| match &p.iter().find(|(k, _)| k == name).expect(name).1 {
        Value::Bytes(b) => b.clone(),
        other => panic!("{name}: {other:?}"),
    };
    let mut reopened = sealed.clone();
    reopened.nonce = get_bytes("nonce");
    reopened.ciphertext = get_bytes("ciphertext");
    let opened = key.open(person, &reopened).expect("opens for its person");
    let back =
        from_avro_datum(&health_schema, &mut opened.as_slice(), None).expect("decode plaintext");
    assert_eq!(back, health);

    assert!(
        key.open(Uuid::now_v7(), &reopened).is_err(),
        "must not open for another person"
    );
}
