"""Interop with the Python client nobody here wrote: confluent-kafka's SchemaRegistryClient,
AvroSerializer and AvroDeserializer against socle's registry (SOCLE__REGISTRY__URL) and the
real Kafka, with the TopicRecordNameStrategy socle's subjects use. Both directions: Python
registers, produces and consumes; and Python reads an event that socle itself published
(`socle produce person-registered` on an ingress topic, turned into the canonical event by a
real `socle ingest`)."""

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


def topics(n: int) -> list:
    """n new one-partition topics (left to the broker's retention: random names)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    names = [f"interop-python-{uuid.uuid4().hex}" for _ in range(n)]
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for future in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in names]).values():
        future.result(timeout=30)
    return names


def test_python_reads_an_event_socle_published(registry, topic):
    assert SOCLE.exists(), f"{SOCLE} not built (make build)"
    person_id = str(uuid.uuid4())
    france_travail, cap_emploi, missions_locales, deadletter = topics(4)
    run_id = uuid.uuid4().hex
    env = dict(os.environ, SOCLE__TOPICS__PERSONS=topic,
               SOCLE__INGEST__FRANCE_TRAVAIL_TOPIC=france_travail,
               SOCLE__INGEST__CAP_EMPLOI_TOPIC=cap_emploi,
               SOCLE__INGEST__MISSIONS_LOCALES_TOPIC=missions_locales,
               SOCLE__INGEST__DEADLETTER_TOPIC=deadletter,
               SOCLE__INGEST__GROUP=f"interop-{run_id}",
               SOCLE__INGEST__TRANSACTIONAL_ID=f"interop-{run_id}",
               SOCLE__INGEST__GROUP_INSTANCE_ID=f"interop-{run_id}",
               SOCLE__HEALTH__INGEST="127.0.0.1:0")
    # There is one way into socle.persons: the registration goes to France Travail's ingress
    # topic, and a real `socle ingest` checks, seals and publishes it.
    run = subprocess.run(
        [str(SOCLE), "produce", "person-registered", "--person-id", person_id,
         "--operator", "france-travail", "--organisation", "90000100900019",
         "--family-name", "Interop", "--given-name", "Camille", "--birth-date", "1990-05-17",
         "--nir", "190057505600162", "--commune", "75056", "--departement", "75"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"registration of person {person_id} sent" in run.stdout
    ingest = subprocess.Popen([str(SOCLE), "ingest", "run"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        message = consume_one(topic, timeout=60.0)
    finally:
        ingest.terminate()
        try:
            ingest.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ingest.kill()
    assert message is not None, f"socle ingest published nothing: {ingest.stderr.read()[-2000:]}"
    assert message.key() == person_id.encode()
    schema_id = int.from_bytes(message.value()[1:5], "big")
    assert registry.get_schema(schema_id).schema_str  # the writer schema, from socle's registry
    assert f"{topic}-socle.person.PersonRegistered" in registry.get_subjects()

    event = AvroDeserializer(registry)(message.value(), SerializationContext(topic, MessageField.VALUE))
    # fastavro reads the uuid logical type as uuid.UUID.
    assert event["person_id"] == uuid.UUID(person_id)
    assert event["operator"] == "france-travail"
    assert event["envelope"]["actor"] == "socle-cli"
    # The canonical event id is derived by ingest from the operator's event id (UUIDv5).
    assert event["envelope"]["event_id"].version in (5, 7)
    assert event["envelope"]["producer_organisation"] == "90000100900019"
    sealed = event["personal"]
    assert sealed["content"] == "socle.pii.PersonIdentity"
    assert sealed["algorithm"] == "AES-256-GCM"
    assert len(sealed["nonce"]) == 12
    # Sealed: the names and the NIR are nowhere in clear.
    for clear in (b"Interop", b"Camille", b"190057505600162"):
        assert clear not in message.value()
