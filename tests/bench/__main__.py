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
from tests.bench import ingest
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
                results = [ingest.run(cdp, rounds=args.rounds)]
        finally:
            cdp.stop()
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
    for r in results:
        ok = r["events_per_s_median"] >= r["floor_events_per_s"]
        table.add_row(
            r["name"],
            f"{r['events_per_s_median']:,.0f} events/s  p50 {r['request_p50_ms_median']:.1f} ms  "
            f"p99 {r['request_p99_ms_median']:.1f} ms",
            f"{'[green]' if ok else '[red]'}{r['floor_events_per_s']:,} events/s",
            r["description"],
        )
    console.print(table)
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
