"""Identity resolution as streams, as pure processors: records in, records out (no Kafka, no I/O).

``GraphProcessor`` is the one graph worker on the single-partition observations topic;
``FoldProcessor`` folds profiles on every worker for the ``resolved`` partitions it owns. A faust
adapter only moves their records' bytes (see docs/design/identity-streaming.md).
"""

from services.identity.streaming.fold_stage import EventStore, FoldedProfile, FoldProcessor, FormerProfile
from services.identity.streaming.graph_stage import (
    MALFORMED_EVENT,
    NO_IDENTIFIER,
    GraphProcessor,
    StaleObservationError,
)
from services.identity.streaming.records import SCHEMA_VERSION, Kind, OutRecord, Topic

__all__ = [
    "MALFORMED_EVENT",
    "NO_IDENTIFIER",
    "SCHEMA_VERSION",
    "EventStore",
    "FoldProcessor",
    "FoldedProfile",
    "FormerProfile",
    "GraphProcessor",
    "Kind",
    "OutRecord",
    "StaleObservationError",
    "Topic",
]
