"""Interop with the Python client nobody here wrote: confluent-kafka's SchemaRegistryClient,
AvroSerializer and AvroDeserializer against socle's registry (SOCLE__REGISTRY__URL) and the
real Kafka, with the TopicRecordNameStrategy socle's subjects use. Both directions: Python
registers, produces and consumes; and Python reads an event that socle itself published
(`socle produce person-registered`)."""

import os
import pathlib
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import BROKERS

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOCLE = pathlib.Path(os.environ.get("SOCLE_BIN", ROOT / "target" / "debug" / "socle"))

ORDER_V1 = """{"type": "record", "name": "Order", "namespace": "interop.python", "fields": [
  {"name": "id", "type": "string"},
  {"name": "amount_cents", "type": "long"},
  {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "note", "type": ["null", "string"], "default": null}]}"""

STRATEGY = {"subject.name.strategy": topic_record_subject_name_strategy}


def consume_one(topic: str, timeout: float = 30.0):
    consumer = Consumer({
        "bootstrap.servers": BROKERS,
        "group.id": f"interop-python-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    try:
        consumer.subscribe([topic])
        waited = 0.0
        while waited < timeout:
            message = consumer.poll(1.0)
            waited += 1.0
            if message is None:
                continue
            assert message.error() is None, message.error()
            return message
        pytest.fail(f"no message on {topic} within {timeout} s")
    finally:
        consumer.close()


def produce(topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": BROKERS, "acks": "all", "enable.idempotence": True})
    errors = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(30) == 0, "not delivered within 30 s"
    assert errors == []


def test_python_registers_produces_and_consumes_through_socle(registry, topic):
    serializer = AvroSerializer(registry, ORDER_V1, conf=STRATEGY)
    order = {"id": "o-1", "amount_cents": 12345, "placed_at": 1_767_225_600_000_000,
             "tags": ["urgent", "première"], "note": None}
    value = serializer(order, SerializationContext(topic, MessageField.VALUE))
    assert value[0] == 0, "Confluent magic byte"
    schema_id = int.from_bytes(value[1:5], "big")

    subject = f"{topic}-interop.python.Order"
    assert subject in registry.get_subjects()
    latest = registry.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (schema_id, 1)
    assert registry.get_schema(schema_id).schema_type == "AVRO"

    produce(topic, b"o-1", value)
    message = consume_one(topic)
    assert message.key() == b"o-1"
    deserializer = AvroDeserializer(registry)
    back = deserializer(message.value(), SerializationContext(topic, MessageField.VALUE))
    # fastavro turns timestamp-micros into an aware datetime.
    assert back["placed_at"].isoformat() == "2026-01-01T00:00:00+00:00"
    back["placed_at"] = order["placed_at"]
    assert back == order


def test_a_compatible_change_is_a_new_version_and_an_incompatible_one_a_409(registry, topic):
    subject = f"{topic}-interop.python.Order"
    registry.set_compatibility(subject_name=subject, level="BACKWARD_TRANSITIVE")
    first = registry.register_schema(subject, Schema(ORDER_V1, "AVRO"))
    v2 = ORDER_V1.replace('"default": null}]}', '"default": null},\n  {"name": "channel", "type": "string", "default": "web"}]}')
    second = registry.register_schema(subject, Schema(v2, "AVRO"))
    assert second != first
    assert registry.get_versions(subject) == [1, 2]
    assert registry.get_compatibility(subject) == "BACKWARD_TRANSITIVE"
    # An old reader's data must stay readable: dropping the default breaks version 1.
    v3 = v2.replace(', "default": "web"', "")
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register_schema(subject, Schema(v3, "AVRO"))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "channel" in refused.value.error_message
    assert registry.get_versions(subject) == [1, 2]
    # The serializer's own registration path refuses it too, before anything is produced.
    serializer = AvroSerializer(registry, v3, conf=STRATEGY)
    with pytest.raises(SchemaRegistryError) as also_refused:
        serializer({"id": "x", "amount_cents": 1, "placed_at": 0, "tags": [], "note": None, "channel": "sms"},
                   SerializationContext(topic, MessageField.VALUE))
    assert also_refused.value.http_status_code == 409


def test_python_reads_an_event_socle_published(registry, topic):
    assert SOCLE.exists(), f"{SOCLE} not built (make build)"
    person_id = str(uuid.uuid4())
    env = dict(os.environ, SOCLE__TOPICS__PERSONS=topic)
    run = subprocess.run(
        [str(SOCLE), "produce", "person-registered", "--person-id", person_id,
         "--operator", "france-travail", "--organisation", "90000100900019",
         "--family-name", "Interop", "--given-name", "Camille", "--birth-date", "1990-05-17",
         "--nir", "190057505600162", "--commune", "75056", "--departement", "75"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"person {person_id} registered" in run.stdout

    message = consume_one(topic)
    assert message.key() == person_id.encode()
    schema_id = int.from_bytes(message.value()[1:5], "big")
    assert registry.get_schema(schema_id).schema_str  # the writer schema, from socle's registry
    assert f"{topic}-socle.person.PersonRegistered" in registry.get_subjects()

    event = AvroDeserializer(registry)(message.value(), SerializationContext(topic, MessageField.VALUE))
    # fastavro reads the uuid logical type as uuid.UUID.
    assert event["person_id"] == uuid.UUID(person_id)
    assert event["operator"] == "france-travail"
    assert event["envelope"]["actor"] == "socle-cli"
    assert event["envelope"]["event_id"].version == 7
    assert event["envelope"]["producer_organisation"] == "90000100900019"
    sealed = event["personal"]
    assert sealed["content"] == "socle.pii.PersonIdentity"
    assert sealed["algorithm"] == "AES-256-GCM"
    assert len(sealed["nonce"]) == 12
    # Sealed: the names and the NIR are nowhere in clear.
    for clear in (b"Interop", b"Camille", b"190057505600162"):
        assert clear not in message.value()
