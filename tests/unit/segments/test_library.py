"""The built-in segment library on profiles folded from real canonical events."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson
import pytest

from services.identity.domain.event_time import to_micros
from services.identity.domain.profile_state import ProfileState
from services.segments.domain.definition import SegmentCatalog, load_documents
from services.segments.domain.evaluate import ProfileView, evaluate
from services.segments.domain.membership import ENTERED, MemberState, Reason, reevaluate
from services.segments.library import library_definitions
from tests.unit.identity.profile_events import (
    NOW,
    T0,
    Event,
    complaint,
    email,
    event,
    identify,
    order_completed,
    order_refunded,
    rated,
    subscription,
)

NOW_MICROS = to_micros(NOW)
DAY = 24 * 60
SINCE_T0 = (NOW - T0).total_seconds() / 60  # NOW in the builders' minutes after T0
LIBRARY = {
    "at_risk",
    "cart_abandoners",
    "email_inactive",
    "hard_bounced",
    "new_customers",
    "newsletter_engaged",
    "repeat_buyers",
    "unhappy_customers",
    "vip",
}
MARKETING = LIBRARY - {"unhappy_customers", "hard_bounced"}


def ago(days: float = 0, hours: float = 0, minutes: float = 0) -> float:
    """The builders' minutes for an instant this long before NOW."""
    return SINCE_T0 - days * DAY - hours * 60 - minutes


def profile(*events: Event) -> ProfileView:
    """A profile folded from ``events``, read back as the ``cdp.profiles`` record it would publish."""
    state = ProfileState()
    for e in [identify(ago(days=500), {"email": "anna@example.de", "first_name": "Anna"}), *events]:
        state.apply(e)
    record = {
        "profileId": "p1",
        "traits": state.traits(),
        "attributes": state.attributes(NOW),
        "snapshot": state.to_snapshot(),
    }
    return ProfileView.from_record(orjson.loads(orjson.dumps(record)))


def catalog() -> SegmentCatalog:
    empty = SegmentCatalog()
    return empty.with_changes(empty.plan(library_definitions(), "2026-11-01T00:00:00Z"))


def members(view: ProfileView) -> set[str]:
    library = catalog()
    memberships: dict[str, bool] = {}
    for segment_id in library.order:
        memberships[segment_id] = evaluate(library.rule(segment_id), view, NOW_MICROS, memberships).matches
    return {segment_id for segment_id, member in memberships.items() if member}


def doi() -> list[Event]:
    """A newsletter subscription confirmed by double opt-in."""
    return [subscription("Subscribed", ago(days=200)), subscription("Double Opt-In Confirmed", ago(days=199))]


def order(n: int, revenue: float, days_ago: float) -> Event:
    return order_completed(f"o{n}", revenue, ago(days=days_ago))


def added(**when: float) -> Event:
    return event("Product Added", ago(**when), properties={"product_id": "sku-1", "price": 49.9})


def mails(name: str, *days_ago: float) -> list[Event]:
    return [email(name, ago(days=d), email_id=f"mail-{d}") for d in days_ago]


# (segment, a profile that belongs, a profile that does not) for every library segment
CASES: list[tuple[str, list[Event], list[Event]]] = [
    ("new_customers", [order(1, 30.0, 10)], [order(1, 30.0, 40), order(2, 30.0, 5)]),
    ("new_customers", [order(1, 30.0, 29.9)], [order(1, 30.0, 30)]),
    ("repeat_buyers", [order(1, 50.0, 200), order(2, 50.0, 20)], [order(1, 50.0, 5)]),
    ("repeat_buyers", [order(1, 50.0, 500), order(2, 50.0, 364)], [order(1, 50.0, 500), order(2, 50.0, 365)]),
    ("vip", [order(1, 600.0, 100), order(2, 500.0, 3)], [order(1, 600.0, 100), order(2, 300.0, 3)]),
    ("vip", [order(1, 1200.0, 300)], [order(1, 1200.0, 400)]),  # a year ago no longer counts
    ("vip", [order(1, 600.0, 100), order(2, 500.0, 3)], [order(1, 600.0, 100), order(2, 500.0, 3), order_refunded("o2", ago(days=1))]),
    ("at_risk", [order(1, 40.0, 200), order(2, 40.0, 120)], [order(1, 40.0, 200), order(2, 40.0, 30)]),
    ("at_risk", [order(1, 40.0, 400), order(2, 40.0, 91)], [order(1, 40.0, 120)]),  # one order is no pattern
    ("cart_abandoners", [*doi(), added(hours=3)], [*doi(), added(hours=3), order(1, 49.9, 1 / 24)]),
    ("cart_abandoners", [added(days=6)], [added(minutes=30)]),  # the hour is not over yet
    ("cart_abandoners", [order(1, 20.0, 2), added(days=1)], [added(days=8)]),  # older carts are forgotten
    ("unhappy_customers", [complaint("Complaint Opened", "k1", ago(days=3))],
     [complaint("Complaint Opened", "k1", ago(days=3)), complaint("Complaint Resolved", "k1", ago(days=1))]),
    ("unhappy_customers", [rated("c1", 2, ago(days=10))], [rated("c1", 5, ago(days=10))]),
    ("unhappy_customers", [rated("c1", 1, ago(days=100)), rated("c2", 3, ago(days=5))], [rated("c1", 1, ago(days=100))]),
    ("newsletter_engaged", [*doi(), *mails("Email Opened", 5)], [*doi(), *mails("Email Opened", 40)]),
    ("newsletter_engaged", [*doi(), *mails("Email Link Clicked", 29)], [subscription("Subscribed", ago(days=60)), *mails("Email Opened", 5)]),
    ("email_inactive", [*doi(), *mails("Email Delivered", 80, 50, 20)], [*doi(), *mails("Email Delivered", 80, 50, 20), *mails("Email Opened", 10)]),
    ("email_inactive", [subscription("Subscribed", ago(days=150)), *mails("Email Delivered", 80, 50, 20), *mails("Email Opened", 100)],
     [*doi(), *mails("Email Delivered", 120, 50, 20)]),  # two in 90 days are too few to tell
    ("email_inactive", [*doi(), *mails("Email Delivered", 80, 50, 20)],
     [*doi(), subscription("Unsubscribed", ago(days=60), list_id=None), *mails("Email Delivered", 80, 50, 20)]),
    ("email_inactive", [*doi(), *mails("Email Delivered", 80, 50, 20)], [*doi(), *mails("Email Delivered", 80, 50, 20), *mails("Email Link Clicked", 2)]),
    ("hard_bounced", [email("Email Bounced", ago(days=30), bounce_type="hard")], [email("Email Bounced", ago(days=30), bounce_type="soft")]),
    ("hard_bounced", [email("Email Bounced", ago(days=700))], [*mails("Email Delivered", 1)]),  # no bounce type: hard
]  # fmt: skip


@pytest.mark.parametrize(("segment_id", "member", "outsider"), CASES)
def test_library_segment_on_profiles(segment_id: str, member: list[Event], outsider: list[Event]) -> None:
    assert segment_id in members(profile(*member))
    assert segment_id not in members(profile(*outsider))


def test_every_library_segment_has_a_member_and_an_outsider_case() -> None:
    assert {case[0] for case in CASES} == LIBRARY


def test_a_quiet_profile_belongs_to_no_library_segment() -> None:
    assert members(profile()) == set()


def test_a_busy_profile_belongs_to_several() -> None:
    view = profile(
        *doi(),
        order(1, 900.0, 300),
        order(2, 400.0, 100),
        added(hours=2),
        *mails("Email Delivered", 20),
        *mails("Email Opened", 10),
        rated("c1", 1, ago(days=4)),
    )
    assert members(view) == {
        "repeat_buyers",
        "vip",
        "at_risk",
        "cart_abandoners",
        "newsletter_engaged",
        "unhappy_customers",
    }


def test_marketing_segments_publish_only_with_double_opt_in() -> None:
    library = catalog()
    for consent_events, published in [(doi(), True), ([subscription("Subscribed", ago(days=200))], False)]:
        states: dict[str, MemberState] = {}
        view = profile(*consent_events, added(hours=3))
        transitions = reevaluate(library, "p1", view, states, NOW_MICROS, Reason.EVENT).transitions
        assert [(t.segment_id, t.action, t.activation) for t in transitions] == [
            ("cart_abandoners", ENTERED, False),
            *([("cart_abandoners", ENTERED, True)] if published else []),
        ]
        if published:
            assert transitions[0].exposed == {
                "email": "anna@example.de",
                "first_name": "Anna",
                "last_active_at": view.attributes["last_active_at"],
            }


def test_service_segments_publish_without_consent() -> None:
    transitions = reevaluate(
        catalog(),
        "p1",
        profile(complaint("Complaint Opened", "k1", ago(days=1))),
        {},
        NOW_MICROS,
        Reason.EVENT,
    ).transitions
    assert [(t.segment_id, t.activation) for t in transitions] == [
        ("unhappy_customers", False),
        ("unhappy_customers", True),
    ]
    assert transitions[0].exposed == {"email": "anna@example.de", "first_name": "Anna", "open_complaints": 1}


# --- the files themselves -------------------------------------------------------------------------


def _files() -> list[Any]:
    folder = files("services.segments").joinpath("library")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)


@pytest.mark.parametrize("path", _files(), ids=lambda f: f.name)
def test_each_file_holds_one_definition_named_after_it(path: Any) -> None:
    [definition] = load_documents(path.read_text(encoding="utf-8"), path.name)
    assert f"{definition.id}.yaml" == path.name
    assert definition.name and definition.description
    assert "email" in definition.expose
    if definition.id in MARKETING:
        assert definition.activation is not None
        assert (definition.activation.consent, definition.activation.double_opt_in) == (
            "email_marketing",
            True,
        )
    else:
        assert definition.activation is None


def test_library_definitions_are_sorted_and_form_a_catalog() -> None:
    definitions = library_definitions()
    assert [d.id for d in definitions] == sorted(LIBRARY)
    assert [d.id for d in definitions] == [f.name.removesuffix(".yaml") for f in _files()]
    library = catalog()
    assert set(library.order) == LIBRARY
    assert all(stored.version == 1 for stored in library.all())
    assert library.plan(library_definitions(), "2026-11-02T00:00:00Z") == []  # loading is deterministic
