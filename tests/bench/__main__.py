"""``make bench``: runs every benchmark, prints a table and writes ``bench-results.json``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.core.kafka.broker import free_port
from tests.bench import (
    analytics_refresh,
    identity_graph,
    identity_pipeline,
    ingest,
    profile_fold,
    profile_lookup,
    segment_latency,
)
from tests.e2e.cdp_process import CdpProcess

RESULTS = Path("bench-results.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per benchmark (medians are reported)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="cdp-bench-") as tmp:
        cdp = CdpProcess(Path(tmp) / "data", free_port(), free_port(), free_port(), "bench-key")
        with console.status("starting cdp up for the benchmarks..."):
            cdp.start()
        try:
            with console.status("ingest: POST /v1/batch -> Kafka..."):
                results: list[dict[str, object]] = [ingest.run(cdp, rounds=args.rounds)]
        finally:
            cdp.stop()
        cdp = CdpProcess(Path(tmp) / "segments", free_port(), free_port(), free_port(), "bench-key")
        with console.status("starting cdp up for the segment latency benchmark..."):
            cdp.start()
        try:
            with console.status(
                "segments: HTTP event -> membership transition on Kafka at 1,000 and 5,000 events/s..."
            ):
                results.append(segment_latency.run(cdp))
        finally:
            cdp.stop()
    with console.status("identity graph: observe throughput and memory per identifier..."):
        results.append(identity_graph.run(1_000_000))
    with console.status("profile folding: apply throughput..."):
        results.append(profile_fold.run(rounds=args.rounds))
    with console.status(
        "identity pipeline: cdp.events -> cdp.profiles through Kafka, 1 and 2 worker processes..."
    ):
        results.append(identity_pipeline.run(rounds=args.rounds))
    with console.status("profile 360 lookup over HTTP with 100k profiles..."):
        results.append(profile_lookup.run())
    with console.status(
        "analytics: customer value refresh (RFM, ABC, CLV) over 1M profiles and 10M events, daily KPI view..."
    ):
        results.append(analytics_refresh.run(rounds=args.rounds))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": results,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"cdp benchmarks ({os.cpu_count()} cores, medians of {args.rounds} rounds)")
    for column in ("benchmark", "result", "floor", "detail"):
        table.add_column(column)
    for row in _rows(results):
        table.add_row(*row)
    console.print(table)
    console.print(f"written to {args.output}")


def _rows(results: list[dict[str, object]]) -> list[tuple[str, str, str, str]]:
    by_name = {str(r["name"]): r for r in results}
    rows = []
    ing = by_name["ingest"]
    ok = float(ing["events_per_s_median"]) >= float(ing["floor_events_per_s"])  # type: ignore[arg-type]
    rows.append((
        "ingest",
        f"{ing['events_per_s_median']:,.0f} events/s  p50 {ing['request_p50_ms_median']:.1f} ms  "
        f"p99 {ing['request_p99_ms_median']:.1f} ms",
        f"{'[green]' if ok else '[red]'}{ing['floor_events_per_s']:,} events/s",
        str(ing["description"]),
    ))  # fmt: skip
    graph = by_name["identity_graph"]
    rows.append((
        "identity graph",
        f"{graph['observe_events_per_s_shop_stream']:,.0f} events/s (all new: {graph['observe_events_per_s_new']:,.0f}),"
        f" {graph['bytes_per_identifier']:,.0f} B per identifier",
        "",
        str(graph["description"]),
    ))  # fmt: skip
    fold = by_name["profile_fold"]
    rows.append((
        "profile folding",
        f"{fold['apply_events_per_s']:,.0f} events/s, snapshot median {fold['snapshot_bytes_median']:,} B",
        "",
        str(fold["description"]),
    ))  # fmt: skip
    lookup = by_name["profile_lookup"]
    ok = float(lookup["p99_ms"]) < float(lookup["floor_p99_ms"])  # type: ignore[arg-type]
    rows.append((
        "profile 360 lookup",
        f"p50 {lookup['p50_ms']:.1f} ms  p99 {lookup['p99_ms']:.1f} ms",
        f"{'[green]' if ok else '[red]'}p99 < {lookup['floor_p99_ms']} ms",
        str(lookup["description"]),
    ))  # fmt: skip
    analytics = by_name["analytics_refresh"]
    refresh = analytics["refresh_seconds_median"]
    ok = refresh is not None and float(refresh) < float(analytics["floor_refresh_s"])  # type: ignore[arg-type]
    steps = analytics["refresh_step_seconds_median"]
    kpi_recent, kpi_year = analytics["kpi_daily_30_days"], analytics["kpi_daily_year"]
    if refresh is None:
        shown = f"refresh failed: {str(analytics['refresh_error'])[:200]}"
    else:
        shown = (
            f"refresh {refresh:.1f} s ("
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())  # type: ignore[attr-defined]
            + f"), {analytics['customers_scored']:,} customers; load {analytics['load_seconds']:.0f} s"
        )
    for label, kpi in (("30 days", kpi_recent), ("year", kpi_year)):
        shown += (
            f"; kpi_daily {label} "
            + (f"p50 {kpi['p50_ms']:,.0f} ms p99 {kpi['p99_ms']:,.0f} ms" if "p50_ms" in kpi else "failed")  # type: ignore[operator,index]
        )
    rows.append((
        "analytics refresh",
        shown,
        f"{'[green]' if ok else '[red]'}refresh < {analytics['floor_refresh_s']:.0f} s",
        str(analytics["description"]),
    ))  # fmt: skip
    segments = by_name["segment_latency"]
    for r in segments["rounds"]:  # type: ignore[attr-defined]
        at_floor = r["rate_events_per_s"] == 1000
        p99 = r["p99_s"]
        ok = p99 is not None and (not at_floor or p99 < float(segments["floor_p99_s_at_1000"]))  # type: ignore[arg-type]
        shown = (
            "no transitions received"
            if p99 is None
            else (
                f"p50 {r['p50_s'] * 1000:,.0f} ms  p99 {p99 * 1000:,.0f} ms "
                f"({r['probes_received']}/{r['probes_sent']} probes)"
            )
        )
        rows.append((
            f"event -> segment transition at {r['rate_events_per_s']:,}/s",
            shown,
            f"{'[green]' if ok else '[red]'}p99 < {segments['floor_p99_s_at_1000']} s" if at_floor else "",
            str(segments["description"]) if at_floor else "",
        ))  # fmt: skip
    pipeline = by_name["identity_pipeline"]
    one = pipeline["events_per_s_1_worker_median"]
    two = pipeline["events_per_s_2_workers_median"]
    floor = pipeline["floor_events_per_s_per_worker"]
    if one is None or two is None:
        ok = False
        shown = f"incomplete: {pipeline['complete_rounds']} of {pipeline['rounds']} rounds complete"
    else:
        ok = float(one) >= float(floor)  # type: ignore[arg-type]
        shown = (
            f"1 worker {one:,.0f} events/s, 2 worker processes {two:,.0f} events/s "
            f"(ratio {pipeline['scaling_ratio_median']:.2f}); "
            f"{pipeline['worker_cpu_us_per_event_1_worker_median']:.0f} us worker CPU per event"
        )
    rows.append((
        "identity pipeline",
        shown,
        f"{'[green]' if ok else '[red]'}{floor:,} events/s per worker",
        str(pipeline["description"]),
    ))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
