"""``make bench``: runs every benchmark, prints a table and writes ``bench-results.json``.

    .venv/bin/python -m tests.bench [--quick] [--only NAME,...] [--rounds N] [--output FILE]

``--quick`` is a smoke run with small sizes and one round (a few minutes): it checks that every
benchmark still runs, and writes ``bench-results.quick.json`` unless ``--output`` says otherwise;
its numbers are not results. ``--only`` runs some benchmarks and merges their results into the
output file's (each result keeps its own ``measured_at``). The JSON schema is in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    profile_memory,
    segment_latency,
)
from tests.bench.readme import ROWS, Item, Row, cell
from tests.bench.summary import SCHEMA_VERSION, summarise
from tests.e2e.cdp_process import CdpProcess

RESULTS = Path("bench-results.json")
QUICK_RESULTS = Path("bench-results.quick.json")

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    status: str  # shown while it runs
    run: Callable[[bool, int], Result]  # (quick, rounds) -> its result object


def _with_cdp(run: Callable[[CdpProcess], Result]) -> Result:
    """``run`` against a fresh ``cdp up`` on free ports and a temporary data directory."""
    with tempfile.TemporaryDirectory(prefix="cdp-bench-") as tmp:
        cdp = CdpProcess(Path(tmp) / "data", free_port(), free_port(), free_port(), "bench-key")
        cdp.start()
        try:
            return run(cdp)
        finally:
            cdp.stop()


BENCHMARKS = (
    Benchmark("ingest", "ingest: POST /v1/batch -> Kafka...",
              lambda quick, rounds: _with_cdp(lambda cdp: ingest.run(cdp, batches=60 if quick else 600, rounds=rounds))),
    Benchmark("segment_latency", "segments: HTTP event -> membership transition on Kafka at 1,000 and 5,000 events/s...",
              lambda quick, _rounds: _with_cdp(lambda cdp: segment_latency.run(
                  cdp, seconds=5.0 if quick else segment_latency.SECONDS,
                  rates=(1000,) if quick else segment_latency.RATES))),
    Benchmark("identity_graph", "identity graph: observe throughput and memory per identifier...",
              lambda quick, _rounds: identity_graph.run(100_000 if quick else 1_000_000)),
    Benchmark("profile_fold", "profile folding: apply throughput...",
              lambda quick, rounds: profile_fold.run(customers=300 if quick else 2000, rounds=rounds)),
    Benchmark("identity_pipeline", "identity pipeline: cdp.events -> cdp.profiles through Kafka, 1 and 2 worker processes...",
              lambda quick, rounds: identity_pipeline.run(events=10_000 if quick else 50_000, rounds=rounds)),
    Benchmark("profile_lookup", "profile 360 lookup over HTTP with 100k profiles...",
              lambda quick, _rounds: profile_lookup.run(*((10_000, 200) if quick else (100_000, 1_000)))),
    Benchmark("analytics_refresh", "analytics: customer value refresh over 1M profiles and 10M events, daily KPI view...",
              lambda quick, rounds: analytics_refresh.run(
                  *((20_000, 200_000) if quick else (1_000_000, 10_000_000)), rounds=rounds,
                  kpi_runs=5 if quick else 20)),
    Benchmark("profile_memory", "memory per profile: identity worker RSS and warehouse bytes at 100k profiles...",
              lambda quick, _rounds: profile_memory.run(10_000 if quick else 100_000)),
)  # fmt: skip

# The console shows the README's rows and the two pure-domain benchmarks.
CONSOLE_ROWS = (
    *ROWS,
    Row("identity graph (pure domain, one core)",
        (Item("identity_graph_events_per_s", "", "events/s"),
         Item("identity_graph_bytes_per_identifier", "", "bytes per identifier")), {}),
    Row("profile folding (pure domain, one core)", (Item("profile_fold_events_per_s", "", "events/s"),), {}),
)  # fmt: skip

# Summary key -> (floor text, whether the value meets it); a floor of the issues, green or red.
FLOORS: Mapping[str, tuple[str, Callable[[float], bool]]] = {
    "ingest_events_per_s": ("20,000 events/s", lambda v: v >= 20_000),
    "identity_events_per_s_1_worker": ("10,000 events/s per worker", lambda v: v >= 10_000),
    "segment_latency_p99_ms_at_1000": ("p99 < 1 s at 1,000 events/s", lambda v: v < 1000),
    "profile_lookup_p99_ms": ("p99 < 50 ms", lambda v: v < 50),
    "analytics_refresh_s": ("refresh < 60 s", lambda v: v < 60),
}


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")), "")  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def report(results: list[Result], *, quick: bool, rounds: int) -> dict[str, Any]:
    host = machine()
    return {
        "schema_version": SCHEMA_VERSION,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "rounds": rounds,
        "machine": host,
        "summary": summarise(results, host["cores"]),
        "results": results,
    }


def merged(previous: Path, fresh: list[Result]) -> list[Result]:
    """``previous``'s results with ``fresh`` in place of those of the same names."""
    if not previous.exists():
        return fresh
    names = {r["name"] for r in fresh}
    before = json.loads(previous.read_text())
    kept = [
        {"measured_at": before.get("when"), **r}  # results from before measured_at existed
        for r in before.get("results", [])
        if r.get("name") not in names
    ]
    return kept + fresh


def table(summary: Mapping[str, Any], cores: int, title: str) -> Table:
    shown = Table(title=title)
    for column in ("benchmark", f"result ({cores} cores)", "floor"):
        shown.add_column(column)
    for row in CONSOLE_ROWS:
        floors = [(key, FLOORS[key]) for key in (item.key for item in row.items) if key in FLOORS]
        marks = []
        for key, (text, met) in floors:
            value = summary.get(key)
            ok = isinstance(value, int | float) and met(float(value))
            marks.append(f"{'[green]' if ok else '[red]'}{text}[/]")
        shown.add_row(row.title, cell(row, summary) or "[red]not measured[/]", "; ".join(marks))
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one round, not results")
    parser.add_argument(
        "--only", help=f"comma-separated benchmarks to run: {', '.join(b.name for b in BENCHMARKS)}"
    )
    parser.add_argument(
        "--rounds", type=int, help="rounds per repeated benchmark, medians reported (default 3)"
    )
    parser.add_argument("--output", type=Path, help=f"default {RESULTS}, or {QUICK_RESULTS} with --quick")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    chosen = list(BENCHMARKS)
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {b.name for b in BENCHMARKS})
        if unknown:
            parser.error(
                f"no benchmark named {', '.join(unknown)}; choose from {', '.join(b.name for b in BENCHMARKS)}"
            )
        chosen = [b for b in BENCHMARKS if b.name in wanted]
    console = Console()
    results: list[Result] = []
    for benchmark in chosen:
        with console.status(benchmark.status):
            result = benchmark.run(args.quick, rounds)
        results.append({**result, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")})
    if args.only:
        results = merged(output, results)
    written = report(results, quick=args.quick, rounds=rounds)
    output.write_text(json.dumps(written, indent=2, default=str) + "\n")
    cores = written["machine"]["cores"]
    kind = "quick smoke run, not results" if args.quick else f"medians of {rounds} rounds"
    console.print(table(written["summary"], cores, f"cdp benchmarks ({cores} cores, {kind})"))
    console.print(f"written to {output}")


if __name__ == "__main__":
    main()
