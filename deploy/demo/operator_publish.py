#!/usr/bin/env python3
"""Publish one PersonRegistered on France Travail's ingress topic exactly as an operator's IS
would: with the confluent-kafka client (Confluent's serializer, socle's registry, the ingress
contract from schemas/ingress/). `socle ingest` checks it, seals the personal fields and
publishes the canonical event; the projector puts it in the France Travail read model.

Usage: operator_publish.py PERSON_ID (prints nothing on success but the person id).
Reads SOCLE__KAFKA__BROKERS, SOCLE__REGISTRY__URL and SOCLE__INGEST__FRANCE_TRAVAIL_TOPIC.
The person is synthetic: a NIR whose key is valid, a commune of the INSEE COG, the demo
agency's SIRET (so the demo advisor follows the person).
"""
import datetime
import os
import pathlib
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

ROOT = pathlib.Path(__file__).resolve().parents[2]


def nir(first13: str) -> str:
    return f"{first13}{97 - int(first13) % 97:02d}"


def main() -> int:
    person_id = sys.argv[1] if len(sys.argv) > 1 else str(uuid.uuid4())
    brokers = os.environ.get("SOCLE__KAFKA__BROKERS", "localhost:9092")
    registry = os.environ.get("SOCLE__REGISTRY__URL", "http://localhost:8081")
    topic = os.environ.get("SOCLE__INGEST__FRANCE_TRAVAIL_TOPIC", "socle.ingress.france-travail")
    schema = (ROOT / "schemas/ingress/PersonRegistered.avsc").read_text()
    serializer = AvroSerializer(
        SchemaRegistryClient({"url": registry}),
        schema,
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    # The operator's own reference: 11 digits, the shape of a France Travail identifier.
    ref = f"{uuid.UUID(person_id).int % 10**11:011d}"
    message = {
        "submission": {
            "event_id": str(uuid.uuid4()),
            "occurred_at": now,
            "producer_organisation": "90000100900019",
            "actor": "conseillere.demo",
            "correlation_id": None,
            "operator_person_ref": ref,
            "person_id": person_id,
        },
        "operator": "france-travail",
        "registering_organisation": "90000100900019",
        "registered_on": now.date(),
        "commune": "69123",
        "departement": "69",
        "identity": {
            "nir": nir("2950769123042"),
            "family_name": "Ondine",
            "given_name": "Python",
            "birth_date": datetime.date(1995, 7, 14),
            "email": "python.ondine@example.invalid",
            "phone": None,
        },
    }
    value = serializer(message, SerializationContext(topic, MessageField.VALUE))
    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True})
    errors = []
    producer.produce(topic, key=ref, value=value, on_delivery=lambda e, _m: e and errors.append(e))
    producer.flush(30)
    if errors:
        print(f"delivery failed: {errors[0]}", file=sys.stderr)
        return 1
    print(person_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
