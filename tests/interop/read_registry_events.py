"""Prints the registry's events (topic socle.schemas, or the first argument) from the start,
decoded by confluent-kafka's AvroDeserializer with the schemas from socle's registry:
offset, when, who, the subject (the key) and the version or compatibility level.

    . deploy/local/env.sh && .local/venv/bin/python tests/interop/read_registry_events.py
"""

import os
import sys
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

topic = sys.argv[1] if len(sys.argv) > 1 else "socle.schemas"
decode = AvroDeserializer(SchemaRegistryClient({"url": os.environ.get("SOCLE__REGISTRY__URL", "http://localhost:8081")}))
consumer = Consumer({
    "bootstrap.servers": os.environ.get("SOCLE__KAFKA__BROKERS", "localhost:9092"),
    "group.id": f"read-registry-events-{uuid.uuid4().hex}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic])
try:
    while (message := consumer.poll(5.0)) is not None:
        if message.error():
            sys.exit(f"{topic}: {message.error()}")
        event = decode(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
        who = event.get("registered_by") or event.get("deleted_by") or event.get("changed_by")
        what = event.get("compatibility") or f"version {event.get('version')}"
        if event.get("permanent") is not None:
            what += " deleted" + (" permanently" if event["permanent"] else "")
        print(message.offset(), event["envelope"]["recorded_at"].isoformat(), who,
              (message.key() or b"").decode(), what)
finally:
    consumer.close()
