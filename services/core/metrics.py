"""Prometheus metrics of the platform. Tests pass a fresh ``CollectorRegistry`` to ``create``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double every counter's exposition and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


_Shared = TypeVar("_Shared", Counter, Gauge)
_SHARED: WeakKeyDictionary[CollectorRegistry, dict[str, Counter | Gauge]] = WeakKeyDictionary()


def _shared(registry: CollectorRegistry, name: str, make: Callable[[], _Shared]) -> _Shared:
    """A family several components of one process report (consumer lag, dead letters): created once
    per registry, so a process that runs a worker and sinks registers it once."""
    families = _SHARED.setdefault(registry, {})
    if name not in families:
        families[name] = make()
    return families[name]  # type: ignore[return-value]  # one name, one type


def consumer_lag_gauge(registry: CollectorRegistry) -> Gauge:
    """``cdp_consumer_lag_records``: one family that the sinks and every worker process report."""
    return _shared(registry, "cdp_consumer_lag_records", lambda: Gauge(
        "cdp_consumer_lag_records", "Records not yet processed by a consumer group", ["group", "topic"],
        registry=registry,
    ))  # fmt: skip


def consumer_lag_seconds_gauge(registry: CollectorRegistry) -> Gauge:
    """``cdp_consumer_lag_seconds``: the age of the oldest record a group has not processed yet."""
    return _shared(registry, "cdp_consumer_lag_seconds", lambda: Gauge(
        "cdp_consumer_lag_seconds",
        "Age of the oldest record a consumer group has not processed yet (0 when caught up)",
        ["group", "topic"], registry=registry,
    ))  # fmt: skip


def dlq_messages_counter(registry: CollectorRegistry) -> Counter:
    """``cdp_dlq_messages_total{reason}``: ingest counts the requests it refused, the identity and segment
    processors the records they met on their input topics and could not use."""
    return _shared(registry, "cdp_dlq_messages", lambda: Counter(
        "cdp_dlq_messages", "Rejected payloads written to the dead-letter topic", ["reason"],
        registry=registry,
    ))  # fmt: skip


class IngestMetrics(NamedTuple):
    events_accepted: Counter
    events_rejected: Counter
    events_duplicate: Counter
    requests: Counter
    request_duration: Histogram
    produce_duration: Histogram
    dlq_messages: Counter
    dlq_failures: Counter
    webhook_skipped: Counter
    events_suppressed: Counter
    dlq_depth: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestMetrics:
        return cls(
            events_accepted=Counter(
                "cdp_ingest_events_accepted",
                "Events accepted and acknowledged by Kafka",
                ["source", "channel"],
                registry=registry,
            ),
            events_rejected=Counter(
                "cdp_ingest_events_rejected",
                "Events or requests refused, by reason",
                ["source", "reason"],
                registry=registry,
            ),
            events_duplicate=Counter(
                "cdp_ingest_events_duplicate",
                "Events dropped because their messageId was seen in the window",
                ["source"],
                registry=registry,
            ),
            requests=Counter(
                "cdp_ingest_requests",
                "HTTP requests by endpoint and status code",
                ["endpoint", "status"],
                registry=registry,
            ),
            request_duration=Histogram(
                "cdp_ingest_request_duration_seconds",
                "HTTP request latency by endpoint",
                ["endpoint"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            produce_duration=Histogram(
                "cdp_kafka_produce_duration_seconds",
                "Time until Kafka acknowledged a request's records",
                ["topic"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            dlq_messages=dlq_messages_counter(registry),
            dlq_failures=Counter(
                "cdp_dlq_write_failures",
                "Rejected payloads that could not be written to the DLQ",
                registry=registry,
            ),
            webhook_skipped=Counter(
                "cdp_ingest_webhook_events_skipped",
                "Provider webhook events with no meaning for the CDP",
                ["provider"],
                registry=registry,
            ),
            events_suppressed=Counter(
                "cdp_ingest_events_suppressed",
                "Events dropped because they carry an identifier of an erased person (suppression list)",
                ["source"],
                registry=registry,
            ),
            dlq_depth=Gauge(
                "cdp_dlq_depth_records",
                "Records held in the dead-letter topic (read from the broker at scrape time)",
                registry=registry,
            ),
        )


class SinkMetrics(NamedTuple):
    rows_written: Counter
    insert_duration: Histogram
    insert_errors: Counter
    consumer_lag: Gauge
    batch_rows: Histogram
    event_age: Histogram
    rows_skipped: Counter
    consumer_lag_seconds: Gauge
    rows_repeated: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, consumer_lag: Gauge | None = None) -> SinkMetrics:
        """``consumer_lag``: the process's ``cdp_consumer_lag_records`` when a worker created it already."""
        return cls(
            rows_written=Counter(
                "cdp_warehouse_rows_written", "Rows inserted into the warehouse", ["table"], registry=registry
            ),
            insert_duration=Histogram(
                "cdp_warehouse_insert_duration_seconds",
                "Warehouse insert latency",
                ["table"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            insert_errors=Counter(
                "cdp_warehouse_insert_errors",
                "Failed warehouse insert attempts (each is retried), by table and error: unavailable "
                "(the warehouse did not answer) or rejected (it answered with an error)",
                ["table", "error"],
                registry=registry,
            ),
            consumer_lag=consumer_lag if consumer_lag is not None else consumer_lag_gauge(registry),
            batch_rows=Histogram(
                "cdp_warehouse_batch_rows",
                "Rows per warehouse insert",
                ["table"],
                buckets=(1, 10, 100, 1000, 5000, 10_000, 50_000, 100_000),
                registry=registry,
            ),
            event_age=Histogram(
                "cdp_warehouse_ingest_delay_seconds",
                "From the record's arrival on its topic to the row being in the warehouse",
                ["table"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            rows_skipped=Counter(
                "cdp_warehouse_rows_skipped",
                "Records set aside because the table cannot read them (they stay on their topic)",
                ["table"],
                registry=registry,
            ),
            consumer_lag_seconds=consumer_lag_seconds_gauge(registry),
            rows_repeated=Counter(
                "cdp_warehouse_rows_repeated",
                "Records a restarted identity worker produced again, recognised by their position and "
                "not stored twice",
                ["table"],
                registry=registry,
            ),
        )


IDENTIFIER_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500)


class IdentityMetrics(NamedTuple):
    observations: Counter
    merges: Counter
    refused_links: Counter
    corrections: Counter
    unresolved: Counter
    profiles_published: Counter
    identifiers_per_profile: Histogram
    processing_delay: Histogram
    consumer_lag: Gauge
    events_suppressed: Counter
    dlq_messages: Counter
    consumer_lag_seconds: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IdentityMetrics:
        return cls(
            observations=Counter(
                "cdp_identity_observations", "Observations the identity graph decided", registry=registry
            ),
            merges=Counter("cdp_identity_merges", "Profiles merged into another", registry=registry),
            refused_links=Counter(
                "cdp_identity_refused_links",
                "Links the safeguards refused, by reason",
                ["reason"],
                registry=registry,
            ),
            corrections=Counter(
                "cdp_identity_corrections",
                "Operator corrections (split, detach) applied, by outcome",
                ["action", "status"],
                registry=registry,
            ),
            unresolved=Counter(
                "cdp_identity_unresolved_events",
                "Events that name no person (stored without a profile), by reason",
                ["reason"],
                registry=registry,
            ),
            profiles_published=Counter(
                "cdp_identity_profiles_published",
                "Profile versions published to cdp.profiles",
                registry=registry,
            ),
            identifiers_per_profile=Histogram(
                "cdp_identity_identifiers_per_profile",
                "Identifiers per published profile",
                buckets=IDENTIFIER_BUCKETS,
                registry=registry,
            ),
            processing_delay=Histogram(
                "cdp_identity_processing_delay_seconds",
                "From HTTP acceptance of an event to the end of an identity stage",
                ["stage"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            consumer_lag=consumer_lag_gauge(registry),
            events_suppressed=Counter(
                "cdp_identity_events_suppressed",
                "Events the identity graph dropped: they carry an identifier of an erased person",
                registry=registry,
            ),
            dlq_messages=dlq_messages_counter(registry),
            consumer_lag_seconds=consumer_lag_seconds_gauge(registry),
        )


class PlatformMetrics(NamedTuple):
    ingest: IngestMetrics
    sink: SinkMetrics
    identity_restore: Gauge
    up: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PlatformMetrics:
        return cls(
            ingest=IngestMetrics.create(registry),
            sink=SinkMetrics.create(registry),
            identity_restore=Gauge(
                "cdp_identity_restore_duration_seconds",
                "Duration of the identity restore (replay of the stored decisions) at the last start",
                registry=registry,
            ),
            up=Gauge("cdp_component_up", "1 when a component is running", ["component"], registry=registry),
        )


class BrokerLossMetrics(NamedTuple):
    """``cdp up`` on its single-node broker (Tansu, topics in memory only)."""

    restarts: Counter
    events_lost: Counter
    unconfirmed: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BrokerLossMetrics:
        return cls(
            restarts=Counter(
                "cdp_broker_restarts",
                "Times the single-node broker was lost and the platform rebuilt on a new one",
                registry=registry,
            ),
            events_lost=Counter(
                "cdp_events_lost",
                "Events acknowledged to clients that were lost with the single-node broker before "
                "they reached the warehouse",
                registry=registry,
            ),
            unconfirmed=Gauge(
                "cdp_ingest_events_unconfirmed",
                "Events acknowledged to clients and not yet found in the warehouse (what a loss of the "
                "single-node broker could take)",
                registry=registry,
            ),
        )


class SegmentMetrics(NamedTuple):
    evaluations: Counter
    transitions: Counter
    transition_latency: Histogram
    timer_delay: Histogram
    members: Gauge
    backfill_remaining: Gauge
    backfill_profiles: Counter
    consumer_lag: Gauge
    dlq_messages: Counter
    consumer_lag_seconds: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SegmentMetrics:
        return cls(
            evaluations=Counter(
                "cdp_segment_evaluations",
                "Segment rules evaluated on a profile (one per segment and profile version or timer)",
                registry=registry,
            ),
            transitions=Counter(
                "cdp_segment_transitions",
                "Membership transitions published, by segment, action, reason and feed "
                "(membership: cdp.segments.membership; activation: cdp.segment.<id>)",
                ["segment", "action", "reason", "feed"],
                registry=registry,
            ),
            transition_latency=Histogram(
                "cdp_segment_transition_latency_seconds",
                "From HTTP acceptance of the event behind a profile change to its transitions published",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            timer_delay=Histogram(
                "cdp_segment_time_transition_delay_seconds",
                "How long after a window condition stopped (or started) holding it was re-evaluated",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            members=Gauge(
                "cdp_segment_members",
                "Current members per segment (of the profiles this worker evaluates)",
                ["segment"],
                registry=registry,
            ),
            backfill_remaining=Gauge(
                "cdp_segment_backfill_remaining_profiles",
                "Profiles still to evaluate for a new or changed segment",
                ["segment"],
                registry=registry,
            ),
            backfill_profiles=Counter(
                "cdp_segment_backfill_profiles",
                "Profiles evaluated by backfills of new or changed segments",
                ["segment"],
                registry=registry,
            ),
            consumer_lag=consumer_lag_gauge(registry),
            dlq_messages=dlq_messages_counter(registry),
            consumer_lag_seconds=consumer_lag_seconds_gauge(registry),
        )


class AnalyticsMetrics(NamedTuple):
    refreshes: Counter
    refresh_duration: Gauge
    last_success: Gauge
    customers: Gauge
    refresh_interval: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> AnalyticsMetrics:
        return cls(
            refreshes=Counter(
                "cdp_analytics_refreshes",
                "Customer value refreshes finished, by outcome (done, failed) and trigger (schedule, api)",
                ["outcome", "trigger"],
                registry=registry,
            ),
            refresh_duration=Gauge(
                "cdp_analytics_refresh_duration_seconds",
                "Duration of the last finished customer value refresh",
                registry=registry,
            ),
            last_success=Gauge(
                "cdp_analytics_last_success_timestamp_seconds",
                "Unix time the last successful customer value refresh finished",
                registry=registry,
            ),
            customers=Gauge(
                "cdp_analytics_customers",
                "Customers (profiles with at least one counted order) scored by the last refresh",
                registry=registry,
            ),
            refresh_interval=Gauge(
                "cdp_analytics_refresh_interval_seconds",
                "Seconds between scheduled customer value refreshes (0: this process schedules none)",
                registry=registry,
            ),
        )


class PrivacyMetrics(NamedTuple):
    requests: Counter
    erase_duration: Histogram
    suppressed_identifiers: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PrivacyMetrics:
        return cls(
            requests=Counter(
                "cdp_privacy_requests",
                "Privacy requests (export, erase) by outcome",
                ["kind", "outcome"],
                registry=registry,
            ),
            erase_duration=Histogram(
                "cdp_privacy_erase_duration_seconds",
                "Time from an erasure request to its verified completion",
                buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
                registry=registry,
            ),
            suppressed_identifiers=Gauge(
                "cdp_privacy_suppressed_identifiers",
                "Identifier hashes on the suppression list",
                registry=registry,
            ),
        )
