"""cdp up serves its worker processes' metrics: a family both report is one family, and a series
both report (the same labels) is their sum."""

from __future__ import annotations

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from services.identity.child import _add_samples


def test_samples_of_a_shared_family_are_merged_and_equal_series_summed() -> None:
    family = Metric("cdp_dlq_messages", "Rejected payloads", "counter")
    family.samples = [Sample("cdp_dlq_messages_total", {"reason": "malformed_json"}, 2.0)]
    _add_samples(family, [
        Sample("cdp_dlq_messages_total", {"reason": "malformed_json"}, 3.0),
        Sample("cdp_dlq_messages_total", {"reason": "invalid_profile"}, 1.0),
        Sample("cdp_dlq_messages_total", {"reason": "invalid_profile"}, 4.0),
    ])  # fmt: skip
    assert [(s.labels["reason"], s.value) for s in family.samples] == [
        ("malformed_json", 5.0),
        ("invalid_profile", 5.0),
    ]
