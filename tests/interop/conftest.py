"""Shared fixtures for the interop tests: the real Kafka and socle's schema registry, found
through the SOCLE__* variables of deploy/local/env.sh (the defaults are the local stack's).
Each test creates its own randomly named topic, so the subjects it registers are new."""

import os
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

BROKERS = os.environ.get("SOCLE__KAFKA__BROKERS", "localhost:9092")
REGISTRY = os.environ.get("SOCLE__REGISTRY__URL", "http://localhost:8081")


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": REGISTRY})


@pytest.fixture
def topic() -> str:
    """A new topic with one partition, deleted at the end of the test."""
    name = f"interop-python-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for future in admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)
    yield name
    for future in admin.delete_topics([name]).values():
        try:
            future.result(timeout=30)
        except Exception:  # noqa: BLE001 - cleanup only; the test's outcome is what matters
            pass
