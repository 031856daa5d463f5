"""The headline numbers of a benchmark run, keyed by name: the ``summary`` object of ``bench-results.json``.

Pure: from the benchmarks' result objects to one flat ``{name: number or None}`` mapping. Every
name says its unit (``_per_s``, ``_ms``, ``_s``, ``_bytes``...). The README table, the console
table and the README check read these, never the result objects' own fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SCHEMA_VERSION = 2

# Benchmark name -> what it needs (the ``name`` of a result object in ``results``).
REQUIRED_BENCHMARKS = (
    "ingest",
    "identity_graph",
    "profile_fold",
    "identity_pipeline",
    "segment_latency",
    "profile_lookup",
    "analytics_refresh",
    "profile_memory",
)

# Summary keys that a complete run has as numbers (a quick run may lack the 5,000 events/s round).
REQUIRED_SUMMARY = (
    "cores",
    "ingest_events_per_s",
    "ingest_request_p50_ms",
    "ingest_request_p99_ms",
    "identity_events_per_s_1_worker",
    "identity_events_per_s_2_workers",
    "identity_scaling_ratio_2_workers",
    "identity_graph_events_per_s",
    "identity_graph_bytes_per_identifier",
    "profile_fold_events_per_s",
    "segment_latency_p50_ms_at_1000",
    "segment_latency_p99_ms_at_1000",
    "profile_lookup_p50_ms",
    "profile_lookup_p99_ms",
    "analytics_refresh_s",
    "kpi_daily_30_days_p50_ms",
    "worker_rss_bytes_per_profile",
    "worker_rss_bytes_per_profile_marginal",
    "warehouse_bytes_per_profile",
)

OPTIONAL_SUMMARY = (
    "segment_latency_p50_ms_at_5000",
    "segment_latency_p99_ms_at_5000",
)

Number = float | int | None


def _number(value: Any) -> Number:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ms(seconds: Any) -> Number:
    value = _number(seconds)
    return None if value is None else value * 1000


def summarise(results: Sequence[Mapping[str, Any]], cores: int | None) -> dict[str, Number]:
    """The headline numbers of ``results``; a benchmark that is missing or failed gives None."""
    by_name = {str(result.get("name")): result for result in results}

    def field(benchmark: str, name: str) -> Number:
        return _number(by_name.get(benchmark, {}).get(name))

    summary: dict[str, Number] = {"cores": cores}
    summary["ingest_events_per_s"] = field("ingest", "events_per_s_median")
    summary["ingest_request_p50_ms"] = field("ingest", "request_p50_ms_median")
    summary["ingest_request_p99_ms"] = field("ingest", "request_p99_ms_median")
    summary["identity_events_per_s_1_worker"] = field("identity_pipeline", "events_per_s_1_worker_median")
    summary["identity_events_per_s_2_workers"] = field("identity_pipeline", "events_per_s_2_workers_median")
    summary["identity_scaling_ratio_2_workers"] = field("identity_pipeline", "scaling_ratio_median")
    summary["identity_graph_events_per_s"] = field("identity_graph", "observe_events_per_s_shop_stream")
    summary["identity_graph_bytes_per_identifier"] = field("identity_graph", "bytes_per_identifier")
    summary["profile_fold_events_per_s"] = field("profile_fold", "apply_events_per_s")
    rounds = by_name.get("segment_latency", {}).get("rounds") or []
    for rate in (1000, 5000):
        measured = next((r for r in rounds if r.get("rate_events_per_s") == rate), {})
        summary[f"segment_latency_p50_ms_at_{rate}"] = _ms(measured.get("p50_s"))
        summary[f"segment_latency_p99_ms_at_{rate}"] = _ms(measured.get("p99_s"))
    summary["profile_lookup_p50_ms"] = field("profile_lookup", "p50_ms")
    summary["profile_lookup_p99_ms"] = field("profile_lookup", "p99_ms")
    summary["analytics_refresh_s"] = field("analytics_refresh", "refresh_seconds_median")
    kpi = by_name.get("analytics_refresh", {}).get("kpi_daily_30_days") or {}
    summary["kpi_daily_30_days_p50_ms"] = _number(kpi.get("p50_ms"))
    summary["worker_rss_bytes_per_profile"] = field("profile_memory", "worker_rss_bytes_per_profile")
    summary["worker_rss_bytes_per_profile_marginal"] = field(
        "profile_memory", "worker_rss_bytes_per_profile_marginal"
    )
    summary["warehouse_bytes_per_profile"] = field("profile_memory", "warehouse_bytes_per_profile")
    return summary


def problems(report: Mapping[str, Any]) -> list[str]:
    """What makes ``report`` (a parsed ``bench-results.json``) not a complete run; empty when it is."""
    found = []
    if report.get("schema_version") != SCHEMA_VERSION:
        found.append(f"schema_version is {report.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    cores = (report.get("machine") or {}).get("cores")
    if not isinstance(cores, int) or cores < 1:
        found.append(f"machine.cores is {cores!r}, expected the machine's core count")
    names = {str(result.get("name")) for result in report.get("results") or []}
    found += [f"no result of the {name} benchmark" for name in REQUIRED_BENCHMARKS if name not in names]
    summary = report.get("summary") or {}
    found += [
        f"summary.{key} is {summary.get(key)!r}"
        for key in REQUIRED_SUMMARY
        if _number(summary.get(key)) is None
    ]
    if summary.get("cores") != cores:
        found.append(f"summary.cores {summary.get('cores')!r} differs from machine.cores {cores!r}")
    if report.get("quick"):
        found.append("a --quick smoke run: its numbers are not benchmark results")
    return found
