from __future__ import annotations


class KafkaAdapterError(Exception):
    """Base for failures talking to the broker."""


class BrokerError(KafkaAdapterError):
    """The single-node broker could not be started or reached."""


class ProduceError(KafkaAdapterError):
    """A record was not acknowledged by the broker."""
