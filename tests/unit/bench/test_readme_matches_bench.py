"""The README's benchmark table says what bench-results.json says, and bench-results.json is a
complete run: every benchmark, the core count. Regenerate both with `make bench` (or only the
table with `python -m tests.bench.readme`)."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from tests.bench.readme import BEGIN, END, ROWS, cell, render, section, shown, updated
from tests.bench.summary import REQUIRED_BENCHMARKS, REQUIRED_SUMMARY, problems, summarise

REPO = Path(__file__).resolve().parents[3]
NUMBER = r"(?P<number>-?[0-9][0-9,]*(?:\.[0-9]+)?)"


def load_report() -> dict[str, Any]:
    return json.loads((REPO / "bench-results.json").read_text())


def table_rows(readme: str) -> list[list[str]]:
    """The cells of every line of the generated section's table, header first."""
    return [
        [part.strip() for part in line.strip().strip("|").split("|")]
        for line in section(readme).splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def within_documented_rounding(shown_number: str, value: float) -> bool:
    """Whole numbers from 100 up, three significant digits below (README, docs/benchmarks.md)."""
    number = float(shown_number.replace(",", ""))
    if abs(value) >= 100:
        return "." not in shown_number and abs(number - value) <= 0.5
    digits = len(shown_number.replace(".", "").replace("-", "").lstrip("0"))
    half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 2) if value else 0.0
    return digits <= 3 and abs(number - value) <= half_unit * 1.0000001


def mismatches(readme: str, report: dict[str, Any]) -> list[str]:
    """Every way the README's table disagrees with ``report``: parsed from the README's text."""
    summary, found = report["summary"], []
    header, *body = table_rows(readme)
    cores = re.search(r"\((\d+) cores\)", header[1])
    if cores is None or int(cores.group(1)) != report["machine"]["cores"]:
        found.append(f"header {header[1]!r} does not name {report['machine']['cores']} cores")
    specs = {row.title: row for row in ROWS}
    seen = set()
    for cells in body:
        title, ours = cells[0], cells[1]
        spec = specs.get(title)
        if spec is None:
            found.append(f"row {title!r} is not a benchmark row of tests/bench/readme.py")
            continue
        seen.add(title)
        items = ours.split("; ")
        if len(items) != len(spec.items):
            found.append(f"{title}: {len(items)} numbers, expected {len(spec.items)}")
            continue
        for shown_item, item in zip(items, spec.items, strict=True):
            pattern = r"\s*".join(filter(None, (re.escape(item.label), NUMBER, re.escape(item.unit))))
            match = re.fullmatch(pattern, shown_item)
            value = summary.get(item.key)
            if match is None:
                found.append(f"{title}: {shown_item!r} is not '{item.label} <number> {item.unit}'")
            elif not isinstance(value, int | float) or not within_documented_rounding(match["number"], value):
                found.append(f"{title}: {shown_item!r} but summary.{item.key} is {value!r}")
    found += [f"row {row.title!r} is missing" for row in ROWS if not row.optional and row.title not in seen]
    return found


def test_bench_results_has_every_benchmark_and_the_core_count() -> None:
    report = load_report()
    assert problems(report) == [], "bench-results.json is not a complete `make bench` run"
    assert report["machine"]["cores"] == report["summary"]["cores"] >= 1
    assert {r["name"] for r in report["results"]} >= set(REQUIRED_BENCHMARKS)
    # the summary is what the results say (a hand-edited summary would not be)
    recomputed = summarise(report["results"], report["machine"]["cores"])
    assert {k: report["summary"][k] for k in recomputed} == recomputed


def test_every_number_of_the_readme_table_is_bench_results_json() -> None:
    readme = (REPO / "README.md").read_text()
    assert mismatches(readme, load_report()) == []


def test_readme_section_is_what_the_generator_makes_of_bench_results() -> None:
    # also covers the competitors' columns and the quoted sources
    readme = (REPO / "README.md").read_text()
    assert section(readme) == render(load_report()), "run: .venv/bin/python -m tests.bench.readme"


def test_the_check_finds_a_stale_number_a_wrong_core_count_and_a_missing_row() -> None:
    report = load_report()
    readme = (REPO / "README.md").read_text()
    stale = copy.deepcopy(report)
    stale["summary"]["ingest_request_p99_ms"] = report["summary"]["ingest_request_p99_ms"] * 1.5 + 3
    assert any("ingest_request_p99_ms" in m for m in mismatches(readme, stale))
    other = copy.deepcopy(report)
    other["machine"]["cores"] = report["machine"]["cores"] + 6
    assert any("cores" in m for m in mismatches(readme, other))
    first_row = next(line for line in section(readme).splitlines() if line.startswith("| ingest:"))
    assert any("is missing" in m for m in mismatches(readme.replace(first_row + "\n", ""), report))


SUMMARY = {
    "cores": 2,
    "ingest_events_per_s": 24587.52,
    "ingest_request_p50_ms": 27.0012,
    "ingest_request_p99_ms": 95.63,
    "identity_events_per_s_1_worker": 13929.26,
    "identity_events_per_s_2_workers": 15815.7,
    "identity_scaling_ratio_2_workers": 1.13543,
    "identity_graph_events_per_s": 118248.8,
    "identity_graph_bytes_per_identifier": 187.5,
    "profile_fold_events_per_s": 107506.8,
    "segment_latency_p50_ms_at_1000": 185.335,
    "segment_latency_p99_ms_at_1000": 375.157,
    "segment_latency_p50_ms_at_5000": None,
    "segment_latency_p99_ms_at_5000": None,
    "profile_lookup_p50_ms": 14.3609,
    "profile_lookup_p99_ms": 16.957,
    "analytics_refresh_s": 6.7123,
    "kpi_daily_30_days_p50_ms": 1412.5,
    "worker_rss_bytes_per_profile": 9876.5,
    "worker_rss_bytes_per_profile_marginal": 8765.4,
    "warehouse_bytes_per_profile": 403.26,
}


def complete_report() -> dict[str, Any]:
    results = [{"name": name} for name in REQUIRED_BENCHMARKS]
    return {"schema_version": 2, "when": "2026-11-23T10:00:00+00:00", "quick": False, "rounds": 3,
            "machine": {"cores": 2, "python": "3.11.7"}, "summary": dict(SUMMARY), "results": results}  # fmt: skip


def test_documented_rounding() -> None:
    assert [shown(v) for v in (24587.52, 100.0, 99.96, 14.3609, 6.7123, 1.13543, 0.0)] == [
        "24,588", "100", "100", "14.4", "6.71", "1.14", "0",
    ]  # fmt: skip
    assert within_documented_rounding("24,588", 24587.52)
    assert within_documented_rounding("14.4", 14.3609)
    assert not within_documented_rounding("14.3", 14.3609)
    assert not within_documented_rounding("14.36", 14.3609)  # more digits than documented
    assert not within_documented_rounding("24,590", 24587.52)
    with pytest.raises(ValueError):
        shown(float("nan"))


def test_rendered_table_parses_back_to_the_summary_and_skips_an_unmeasured_optional_row() -> None:
    report = complete_report()
    readme = "intro\n\n" + BEGIN + "\n" + END + "\n\nmore\n"
    generated = updated(readme, report)
    assert generated.startswith("intro\n\n") and generated.endswith("\n\nmore\n")
    assert mismatches(generated, report) == []
    assert "5,000 events/s" not in section(generated)  # the optional row: not measured here
    assert "| 24,588 events/s |" in generated
    assert "1 worker 13,929 events/s; 2 workers 15,816 events/s; ratio 1.14" in generated
    row = next(r for r in ROWS if r.items[0].key == "worker_rss_bytes_per_profile")
    assert cell(row, SUMMARY) == (
        "identity worker RSS 9,876 bytes; marginal 8,765 bytes; warehouse `profiles` table 403 bytes on disk"
    )


def test_an_incomplete_or_quick_run_is_refused() -> None:
    report = complete_report()
    assert problems(report) == []
    missing = complete_report()
    missing["results"] = [r for r in missing["results"] if r["name"] != "profile_memory"]
    missing["summary"]["warehouse_bytes_per_profile"] = None
    quick = {**complete_report(), "quick": True}
    no_cores = complete_report()
    no_cores["machine"]["cores"] = None
    assert any("profile_memory" in p for p in problems(missing))
    assert any("warehouse_bytes_per_profile" in p for p in problems(missing))
    assert any("--quick" in p for p in problems(quick))
    assert any("machine.cores" in p for p in problems(no_cores))
    for wrong in (missing, quick, no_cores):
        with pytest.raises(ValueError, match="not a complete benchmark run"):
            render(wrong)
    assert set(REQUIRED_SUMMARY) <= set(SUMMARY)


def test_summary_of_results_names_its_units() -> None:
    results = [
        {
            "name": "ingest",
            "events_per_s_median": 100.0,
            "request_p50_ms_median": 2.0,
            "request_p99_ms_median": 9.0,
        },
        {"name": "segment_latency", "rounds": [{"rate_events_per_s": 1000, "p50_s": 0.25, "p99_s": None}]},
        {"name": "analytics_refresh", "refresh_seconds_median": None, "kpi_daily_30_days": {"error": "x"}},
    ]
    summary = summarise(results, 4)
    assert summary["cores"] == 4
    assert (summary["ingest_events_per_s"], summary["ingest_request_p99_ms"]) == (100.0, 9.0)
    assert summary["segment_latency_p50_ms_at_1000"] == 250.0
    assert summary["segment_latency_p99_ms_at_1000"] is None  # no transition received
    assert summary["segment_latency_p50_ms_at_5000"] is None  # not run
    assert summary["analytics_refresh_s"] is None and summary["kpi_daily_30_days_p50_ms"] is None
    assert summary["profile_lookup_p99_ms"] is None  # benchmark missing
