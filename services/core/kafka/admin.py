"""Topic administration: create the platform's topics when they are missing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from schemas.topics import IDENTITY_TOPICS, PLATFORM_TOPICS, SEGMENT_TOPICS, TopicSpec
from services.core.kafka.exceptions import BrokerError
from services.core.kafka.producer import KAFKA_LOG


def admin_client(bootstrap: str) -> AdminClient:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": KAFKA_LOG}
    return AdminClient(config)


def cluster_id(bootstrap: str, timeout: float = 10.0) -> str:
    """The cluster's id: offsets are only comparable within one cluster (and one Tansu life)."""
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    return str(metadata.cluster_id or "unknown")


def ensure_topics(
    bootstrap: str, topics: Iterable[TopicSpec], partitions: int, replication: int, timeout: float = 15.0
) -> list[str]:
    """Create every missing topic; return the names created. Existing topics are left as they are."""
    admin = admin_client(bootstrap)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    wanted = [spec for spec in topics if spec.name not in existing]
    if not wanted:
        return []
    new_topics = []
    for spec in wanted:
        config = dict(spec.config)
        if spec.compacted:
            config["cleanup.policy"] = "compact"
        new_topics.append(NewTopic(spec.name, spec.partitions or partitions, replication, config=config))
    created = []
    for name, future in admin.create_topics(new_topics, operation_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"cannot create topic {name}: {exc}") from exc
    return created


def ensure_platform_topics(bootstrap: str, partitions: int, replication: int) -> list[str]:
    """Every topic the platform's services read or write (idempotent; ``cdp up``, ``cdp run
    broker`` and ``cdp run ingest`` call it at start)."""
    every = PLATFORM_TOPICS + IDENTITY_TOPICS + SEGMENT_TOPICS
    return ensure_topics(bootstrap, every, partitions, replication)
