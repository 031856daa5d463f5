"""The analytics refresh benchmark's pure helpers: the event mix, step timings, JSON-building SQL."""

from __future__ import annotations

import pytest

from tests.bench.analytics_refresh import _lit, _obj, medians, percentile, plan, step_durations


def test_plan_scales_email_and_chat_with_the_events_and_leaves_most_to_browsing() -> None:
    mix = plan(1_000_000, 10_000_000)
    assert (mix.deliveries, mix.conversations) == (1_250_000, 100_000)
    assert 1_100_000 < mix.expected_orders < 1_300_000  # 60 % buyers, about 2 orders each
    assert mix.expected_fixed_events < 0.5 * mix.events


def test_plan_refuses_too_few_events_for_the_profiles() -> None:
    with pytest.raises(ValueError, match="no room for browsing"):
        plan(1_000_000, 1_000_000)
    with pytest.raises(ValueError, match="at least"):
        plan(10, 1_000)


def test_each_step_lasts_until_the_next_progress_mark() -> None:
    marks = [("summarising orders", 10.0), ("fitting the models", 12.5), ("scoring customers", 13.0),
             ("publishing", 16.0), ("done", 16.25)]  # fmt: skip
    assert step_durations(marks, 16.5) == {
        "summarising orders": 2.5, "fitting the models": 0.5, "scoring customers": 3.0,
        "publishing": 0.25, "finishing": 0.25,
    }  # fmt: skip
    # a failed refresh reports the steps it reached
    assert step_durations([("summarising orders", 1.0)], 4.0) == {"summarising orders": 3.0}


def test_medians_per_step_and_percentile() -> None:
    rounds = [{"a": 1.0, "b": 5.0}, {"a": 3.0, "b": 1.0}, {"a": 2.0}]
    assert medians(rounds) == {"a": 2.0, "b": 3.0}
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_json_object_sql_quotes_keys_and_takes_values_as_json_text() -> None:
    sql = _obj(("type", _lit("track")), ("position", "toString(n)"))
    assert sql == """concat('{"type":', '"track"', ',"position":', toString(n), '}')"""
