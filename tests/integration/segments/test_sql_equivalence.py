"""The SQL a segment compiles to finds exactly the members ``evaluate`` finds, on the same data.

A varied data set (random profiles plus hand-made edge cases: window edges, more than
``RECENT_PER_EVENT`` orders, explicit consents, merged and split profiles, stale profile versions,
replayed and unresolved events) is folded with ``ProfileState`` into profile records, and both the
events and the records are stored the way the platform's sinks store them. For every rule, the
members the warehouse returns must equal the profiles ``evaluate`` matches at the same ``now``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from services.core.warehouse.migrations import apply_migrations
from services.core.warehouse.port import Warehouse
from services.identity.domain.event_time import to_micros
from services.identity.domain.profile_state import ProfileState
from services.segments.domain.definition import SegmentCatalog, load_documents, parse_definition
from services.segments.domain.evaluate import ProfileView, evaluate
from services.segments.domain.sql import compile_members_sql

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FOLDED_AT = NOW - timedelta(days=3)  # stale days_since_* in the records: both sides must recompute
CLUSTER = "test-cluster"
QUOTED = "O'Brien \\ {x:String} %s\n"  # a value that would break naive quoting or formatting
LIBRARY = Path(__file__).resolve().parents[3] / "services" / "segments" / "library"

RULES: dict[str, dict[str, Any]] = {
    "plan_pro": {"trait": "plan", "op": "=", "value": "pro"},
    "plan_not_free": {"trait": "plan", "op": "!=", "value": "free"},
    "adults": {"trait": "age", "op": ">=", "value": 30},
    "cities": {"trait": "address.city", "op": "in", "value": ["Berlin", "Hamburg", 1]},
    "vip_tag": {"trait": "tags", "op": "contains", "value": "vip"},
    "tag_one": {"trait": "tags", "op": "contains", "value": 1},
    "no_nickname": {"trait": "nickname", "op": "exists", "value": False},
    "score_band": {"trait": "score", "op": "between", "value": [1.5, 7]},
    "score_not_3": {"trait": "score", "op": "!=", "value": 3},
    "early_signup": {"trait": "signup_date", "op": "<", "value": "2026-06-01"},
    "beta": {"trait": "beta", "op": "=", "value": True},
    "quoted": {"trait": "last_name", "op": "=", "value": QUOTED},
    "quoted_part": {"trait": "last_name", "op": "contains", "value": "'Brien \\"},
    "repeat": {"attribute": "orders_count", "op": ">", "value": 1},
    "recent_order": {"attribute": "days_since_last_order", "op": "<=", "value": 7},
    "seen_band": {"attribute": "days_since_last_seen", "op": "between", "value": [1, 10]},
    "orders_30d": {"event": "Order Completed", "within": "30d", "op": ">=", "value": 2},
    "revenue_90d": {"event": "Order Completed", "within": "90d", "measure": "revenue", "op": ">", "value": 100},
    "revenue_band": {
        "event": "Order Completed", "within": "365d", "measure": "revenue", "op": "between", "value": [450, 520],
    },
    "no_views_7d": {"event": "Product Viewed", "within": "7d", "op": "=", "value": 0},
    "opens_14d": {"event": "Email Opened", "within": "14d", "op": "between", "value": [1, 3]},
    "cart": {"event": "Product Added", "not_followed_by": "Order Completed", "within": "24h", "lookback": "7d"},
    "newsletter": {"consent": "email_marketing"},
    "newsletter_doi": {"consent": "email_marketing", "double_opt_in": True},
    "analytics": {"consent": "analytics"},
    "spenders_without_doi": {"all": [{"segment": "revenue_90d"}, {"not": {"segment": "newsletter_doi"}}]},
    "a_at_risk": {"all": [{"attribute": "abc_class", "op": "=", "value": "A"},
                          {"attribute": "churn_risk", "op": ">", "value": 0.6}]},
    "top_rfm": {"attribute": "rfm_score", "op": "in", "value": ["555", "554"]},
    "clv_band": {"attribute": "predicted_clv", "op": "between", "value": [50, 300]},
    "no_prediction": {"attribute": "churn_risk", "op": "exists", "value": False},
    "valuable_history": {"attribute": "historical_clv", "op": ">=", "value": 450},
    "nested": {
        "any": [
            {"all": [{"trait": "plan", "op": "in", "value": ["pro", "Pro"]}, {"not": {"trait": "age", "op": "<", "value": 25}}]},
            {"all": [{"segment": "cart"}, {"event": "Product Viewed", "within": "14d", "op": ">", "value": 2}]},
        ]
    },
}  # fmt: skip

Event = dict[str, Any]
_ids = itertools.count()


def when(ago: timedelta) -> str:
    """``NOW - ago`` in milliseconds (the precision the warehouse keeps), as orjson writes it."""
    moment = NOW - ago
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def days(value: float) -> timedelta:
    return timedelta(days=value)


def event(kind: str, ago: timedelta, name: str = "", properties: dict[str, Any] | None = None,
          traits: dict[str, Any] | None = None) -> Event:  # fmt: skip
    record: Event = {
        "schemaVersion": 1,
        "messageId": f"msg-{next(_ids)}",
        "type": kind,
        "channel": "shop",
        "source": "web",
        "identifiers": {"anonymousId": "anon"},
        "properties": properties or {},
        "traits": traits or {},
        "context": {},
        "timestamp": when(ago),
        "receivedAt": when(ago),
    }
    if kind == "track":
        record["event"] = name
    elif kind == "page":
        record["name"] = name
    return record


def track(name: str, ago: timedelta, **properties: Any) -> Event:
    return event("track", ago, name, properties)


def identify(ago: timedelta, **traits: Any) -> Event:
    return event("identify", ago, traits=traits)


# -- the data set -------------------------------------------------------------------------------


@dataclass
class DataSet:
    events: list[tuple[str, str, Event]] = field(default_factory=list)  # (stored profile id, anchor, event)
    folds: dict[str, list[Event]] = field(default_factory=dict)  # live profile id -> the events it folds
    anchors: dict[str, list[str]] = field(default_factory=dict)  # live profile id -> identifier keys
    extra_attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_records: list[dict[str, Any]] = field(default_factory=list)  # older or retired versions
    assignments: list[dict[str, Any]] = field(default_factory=list)
    redirects: list[dict[str, Any]] = field(default_factory=list)
    unresolved: list[Event] = field(default_factory=list)
    replayed: set[str] = field(default_factory=set)  # message ids stored twice
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer value attributes

    def person(self, pid: str, events: list[Event], anchor: str | None = None) -> str:
        anchor = anchor or f"email:{pid}@example.de"
        self.folds.setdefault(pid, []).extend(events)
        self.anchors.setdefault(pid, []).append(anchor)
        self.events.extend((pid, anchor, e) for e in events)
        return anchor

    def records(self) -> dict[str, dict[str, Any]]:
        """The latest live record of every profile, as the identity worker publishes it."""
        out = {}
        for pid, events in self.folds.items():
            state = ProfileState()
            for e in events:
                state.apply(e)
            attributes = {
                **state.attributes(FOLDED_AT),
                **self.extra_attributes.get(pid, {}),
                **self.values.get(pid, {}),
            }
            out[pid] = {
                "schemaVersion": 1, "profileId": pid, "version": 10, "position": 10, "live": True,
                "mergedInto": None, "identifiers": self.anchors[pid], "traits": state.traits(),
                "attributes": attributes, "snapshot": state.to_snapshot(),
            }  # fmt: skip
        return out


def profile_id(n: int) -> str:
    return f"p_{n:022x}"


def pick(rng: random.Random, name: str, choices: list[Any], into: dict[str, Any]) -> None:
    """Set ``into[name]`` to a random choice; ``...`` leaves it out."""
    value = rng.choice(choices)
    if value is not ...:
        into[name] = value


def random_traits(rng: random.Random) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    pick(rng, "plan", ["pro", "free", "Pro", 5, None, ...], traits)
    pick(rng, "age", [22, 30, 30.0, 45.5, "40", None, ...], traits)
    pick(rng, "address", [{"city": "Berlin"}, {"city": "Hamburg", "zip": "20095"}, {"city": "München"},
                          {"city": 1}, "Berlin", ...], traits)  # fmt: skip
    pick(rng, "tags", [["vip", "new"], ["new"], "vip-list", [1, True], [1.0], [], ...], traits)
    pick(rng, "score", [3, 3.0, "3", 1.5, 7, 7.01, 0, None, ...], traits)
    pick(rng, "beta", [True, False, 1, "true", ...], traits)
    pick(rng, "nickname", ["Bo", "", None, ...], traits)
    pick(rng, "signup_date", ["2026-01-15", "2026-06-01", "2026-05-31T23:59:59Z", "2026-09-30", ...], traits)
    pick(rng, "last_name", [QUOTED, "O'Brien", "Müller", ...], traits)
    return traits


def random_amount(rng: random.Random) -> dict[str, Any]:
    return rng.choice([
        {"revenue": round(rng.uniform(5, 150), 2)},
        {"total": rng.randint(10, 200)},
        {"products": [{"price": 19.99, "quantity": 2}, {"price": "5.5"}]},
        {"revenue": "19.99"},
        {"revenue": " 42.5 "},
        {},
        {"revenue": -5, "total": 30},
        {"revenue": True, "total": 12.5},
        # Not {"quantity": 2.0}: the fold refuses a float quantity, but the warehouse stores the
        # properties re-serialised by JSONExtractRaw, which writes 2.0 as 2 (a known difference).
        {"products": [{"price": 10, "quantity": "2"}]},
        {"products": [{"price": 10, "quantity": 0}]},
        {"products": []},
        {"revenue": 0.00005},
    ])  # fmt: skip


def random_events(rng: random.Random) -> list[Event]:
    events = [identify(days(rng.uniform(30, 200)), **random_traits(rng))]
    if rng.random() < 0.6:
        events.append(identify(days(rng.uniform(0, 30)), **random_traits(rng)))
    for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
        ago = days(rng.uniform(-1, 120))  # some in the future
        properties = {"order_id": f"o-{next(_ids)}", "currency": "EUR", **random_amount(rng)}
        events.append(track("Order Completed", ago, **properties))
    cart = rng.choice(["none", "abandoned", "fresh", "ordered", "old"])
    if cart != "none":
        ranges = {"abandoned": (1.5, 6), "fresh": (0, 0.5), "ordered": (2, 2), "old": (10, 10)}
        added = rng.uniform(*ranges[cart])
        events.append(track("Product Added", days(added), product_id="sku-1", price=9.99))
        if cart == "ordered":
            events.append(track("Order Completed", days(1), order_id=f"o-{next(_ids)}", revenue=9.99))
    events.extend(track("Product Viewed", days(rng.uniform(0, 14))) for _ in range(rng.randint(0, 6)))
    events.extend(track("Email Opened", days(rng.uniform(0, 20)), email_id=f"e-{next(_ids)}")
                  for _ in range(rng.randint(0, 4)))  # fmt: skip
    subscription = rng.choice(["none", "subscribed", "imported_doi", "confirmed", "unsubscribed"])
    if subscription != "none":
        double = {"double_opt_in": True} if subscription == "imported_doi" else {}
        events.append(track("Subscribed", days(rng.uniform(20, 40)), list_id="news", **double))
        if subscription == "confirmed":
            events.append(track("Double Opt-In Confirmed", days(rng.uniform(5, 19)), list_id="news"))
        if subscription == "unsubscribed":
            events.append(track("Unsubscribed", days(rng.uniform(0, 19))))
    if rng.random() < 0.3:
        events.append(event("page", days(rng.uniform(0, 3)), "Startseite"))
    return events


def build_data_set(seed: int = 7, people: int = 40) -> DataSet:
    rng = random.Random(seed)
    data = DataSet()
    for n in range(people):
        data.person(profile_id(n), random_events(rng))
        if n % 5 == 0:
            data.replayed.update(e["messageId"] for e in data.folds[profile_id(n)][:3])

    # More orders than a profile keeps: the latest 50 count (500.0, inside 450..520; all 55: 550.0).
    heavy = profile_id(100)
    data.person(heavy, [track("Order Completed", days(1 + 5 * i), order_id=f"h-{i}", revenue=10)
                        for i in range(55)])  # fmt: skip
    # Window edges: exactly 30 days ago counts, 1 ms earlier does not; a cart due exactly now.
    data.person(profile_id(101), [
        track("Order Completed", days(30), order_id="edge-1", revenue=60),
        track("Order Completed", days(30) + timedelta(milliseconds=1), order_id="edge-2", revenue=60),
        track("Product Added", timedelta(hours=24)),
    ])  # fmt: skip
    data.person(profile_id(102), [
        track("Order Completed", days(30), order_id="edge-3", revenue=60),
        track("Order Completed", days(3), order_id="edge-4", revenue=60),
        track("Product Added", timedelta(hours=24) - timedelta(milliseconds=1)),
    ])  # fmt: skip
    # A follow-up at the same instant as the Product Added counts as "after" it.
    data.person(profile_id(103), [track("Product Added", days(2)), track("Order Completed", days(2))])
    # Explicit consents override the subscription, in both directions; malformed ones do not.
    data.person(profile_id(104), [identify(days(3), plan="pro")])
    data.extra_attributes[profile_id(104)] = {
        "consents": {
            "analytics": {"granted": True},
            "email_marketing": {"granted": True, "double_opt_in": True},
        }
    }
    data.person(profile_id(105), [track("Subscribed", days(9), list_id="news", double_opt_in=True)])
    data.extra_attributes[profile_id(105)] = {"consents": {"email_marketing": {"granted": False}}}
    data.person(profile_id(106), [track("Subscribed", days(9), list_id="news", double_opt_in=True)])
    data.extra_attributes[profile_id(106)] = {"consents": {"email_marketing": "yes", "analytics": "yes"}}
    data.person(profile_id(107), [identify(days(3), plan="free")])
    data.extra_attributes[profile_id(107)] = {"consents": "all"}

    # A merge recorded in `identities`: the absorbed profile's anchor now belongs to the survivor.
    survivor, absorbed = profile_id(110), profile_id(111)
    own = data.person(survivor, [identify(days(50), plan="pro", age=41), track("Order Completed", days(4),
                      order_id="m-1", revenue=80)])  # fmt: skip
    absorbed_events = [
        track("Order Completed", days(5), order_id="m-2", revenue=70),
        track("Product Added", days(3)),
    ]
    moved = f"email:{absorbed}@example.de"
    data.events.extend((absorbed, moved, e) for e in absorbed_events)
    data.folds[survivor].extend(absorbed_events)
    data.anchors[survivor].append(moved)
    data.assignments += [{"profileId": absorbed, "position": 1, "identifiers": [moved]},
                         {"profileId": survivor, "position": 2, "identifiers": [own]},
                         {"profileId": survivor, "position": 50, "identifiers": [own, moved]}]  # fmt: skip
    data.redirects.append({"absorbed": absorbed, "survivor": survivor, "version": 50})
    merged_away(data, absorbed, survivor)

    # A merge known only from `profile_redirects` (the events' anchors are in no `identities` row).
    survivor, absorbed = profile_id(112), profile_id(113)
    data.person(survivor, [track("Email Opened", days(2), email_id="x-1")])
    absorbed_events = [track("Email Opened", days(3), email_id="x-2"), track("Product Viewed", days(1))]
    data.events.extend((absorbed, f"anonymous:{absorbed}", e) for e in absorbed_events)
    data.folds[survivor].extend(absorbed_events)
    data.redirects.append({"absorbed": absorbed, "survivor": survivor, "version": 60})
    merged_away(data, absorbed, survivor)

    # A split: events stored under the old profile whose anchor now belongs to a new profile.
    kept, split_off = profile_id(114), profile_id(115)
    data.person(kept, [track("Order Completed", days(6), order_id="s-1", revenue=200)])
    split_events = [track("Order Completed", days(7), order_id="s-2", revenue=300),
                    track("Order Completed", days(8), order_id="s-3", revenue=250)]  # fmt: skip
    split_anchor = f"email:{split_off}@example.de"
    data.events.extend((kept, split_anchor, e) for e in split_events)
    data.folds[split_off] = list(split_events)
    data.anchors[split_off] = [split_anchor]
    data.assignments += [{"profileId": kept, "position": 3, "identifiers": [split_anchor]},
                         {"profileId": split_off, "position": 70, "identifiers": [split_anchor]}]  # fmt: skip

    # An older version of a profile that matched rules its current version does not.
    data.stale_records.append({"profileId": profile_id(107), "version": 3, "live": True, "identifiers": [],
                               "traits": {"plan": "pro", "last_name": QUOTED}, "attributes": {}})  # fmt: skip
    # Events that resolved to no profile: they count for nobody.
    data.unresolved += [track("Order Completed", days(1), order_id="u-1", revenue=999),
                        track("Product Added", days(2))]  # fmt: skip
    # Customer value attributes of the latest finished refresh, some without model predictions.
    for n in range(0, people, 2):
        data.values[profile_id(n)] = {
            "abc_class": rng.choice("ABC"), "rfm_score": rng.choice(["555", "554", "111", "345"]),
            "rfm_recency_score": rng.randint(1, 5), "historical_clv": round(rng.uniform(0, 900), 2),
            "churn_risk": None if n % 6 == 0 else round(rng.random(), 4),
            "predicted_clv": None if n % 6 == 0 else round(rng.uniform(0, 400), 2),
        }  # fmt: skip
    return data


def merged_away(data: DataSet, absorbed: str, survivor: str) -> None:
    """The absorbed id's records: live before the merge (matching rules), then retired."""
    data.stale_records.append({"profileId": absorbed, "version": 5, "live": True, "identifiers": [],
                               "traits": {"plan": "pro", "age": 50}, "attributes": {}})  # fmt: skip
    data.stale_records.append({"profileId": absorbed, "version": 20, "live": False, "mergedInto": survivor,
                               "identifiers": [], "traits": {}, "attributes": {}, "snapshot": None})  # fmt: skip


# -- storing it like the sinks do -----------------------------------------------------------------


def insert(
    warehouse: Warehouse, table: str, records: Iterable[dict[str, Any]], topic: str | None = None
) -> None:
    rows = []
    for offset, record in enumerate(records):
        row: dict[str, Any] = {
            "_raw": record,
            "kafka_cluster": CLUSTER,
            "kafka_partition": 0,
            "kafka_offset": offset,
        }
        if topic is not None:
            row["kafka_topic"] = topic
        rows.append(orjson.dumps(row))
    if rows:
        warehouse.insert_json_rows(table, b"\n".join(rows), columns=list(orjson.loads(rows[0])))


def store(warehouse: Warehouse, data: DataSet, records: dict[str, dict[str, Any]]) -> None:
    resolved = []
    for position, (pid, anchor, e) in enumerate(data.events, start=1000):
        record = {"schemaVersion": 1, "kind": "event", "profileId": pid, "position": position,
                  "identifiers": [anchor], "event": e}  # fmt: skip
        resolved.append(record)
        if e["messageId"] in data.replayed:
            resolved.append(record)
    insert(warehouse, "events", resolved, "resolved")
    insert(warehouse, "events", data.unresolved, "unresolved")
    insert(warehouse, "identity_assignments", data.assignments)
    insert(warehouse, "profile_redirects", data.redirects)
    # Values: refresh 2 is the latest finished one; 1 is older and 3 still running (both ignored).
    stale = {"abc_class": "A", "churn_risk": 0.99, "rfm_score": "555", "predicted_clv": 999.0}
    value_rows = [
        {"refresh_id": refresh, "profile_id": pid, "attributes": orjson.dumps(values).decode()}
        for pid, current in data.values.items()
        for refresh, values in ((1, stale), (2, current), (3, stale))
    ]
    warehouse.insert_json_rows("customer_value", b"\n".join(map(orjson.dumps, value_rows)))
    refreshes = [{"refresh_id": 1, "status": "done"}, {"refresh_id": 2, "status": "done"},
                 {"refresh_id": 3, "status": "running"}]  # fmt: skip
    warehouse.insert_json_rows("analytics_refreshes", b"\n".join(map(orjson.dumps, refreshes)))
    # Separate inserts: ReplacingMergeTree collapses versions within one block at insert time.
    insert(warehouse, "profiles", data.stale_records)
    insert(warehouse, "profiles", records.values())


# -- the comparison -------------------------------------------------------------------------------


def catalog_of(documents: Iterable[dict[str, Any]]) -> SegmentCatalog:
    definitions = [parse_definition(d) for d in documents]
    return SegmentCatalog().with_changes(SegmentCatalog().plan(definitions, NOW.isoformat()))


def evaluated(catalog: SegmentCatalog, records: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Members per segment by ``evaluate``, on the records as consumers read them (JSON)."""
    members: dict[str, set[str]] = {sid: set() for sid in catalog.order}
    now = to_micros(NOW)
    for pid, record in records.items():
        view = ProfileView.from_record(orjson.loads(orjson.dumps(record)))
        flags: dict[str, bool] = {}
        for sid in catalog.order:
            flags[sid] = evaluate(catalog.rule(sid), view, now, flags).matches
            if flags[sid]:
                members[sid].add(pid)
    return members


def queried(warehouse: Warehouse, catalog: SegmentCatalog) -> dict[str, set[str]]:
    members = {}
    for sid in catalog.order:
        rows = warehouse.query(compile_members_sql(sid, catalog, NOW, warehouse.database))
        ids = [row[0] for row in rows]
        assert len(ids) == len(set(ids)), f"{sid}: a member appears more than once"
        members[sid] = set(ids)
    return members


def differences(expected: dict[str, set[str]], actual: dict[str, set[str]]) -> list[str]:
    return [
        f"{sid}: only evaluate {sorted(expected[sid] - actual[sid])}, only SQL {sorted(actual[sid] - expected[sid])}"
        for sid in expected
        if expected[sid] != actual[sid]
    ]


def test_sql_members_equal_evaluated_members(warehouse: Warehouse):
    apply_migrations(warehouse)
    data = build_data_set()
    records = data.records()
    store(warehouse, data, records)
    catalog = catalog_of({"id": sid, "name": sid, "rule": rule} for sid, rule in RULES.items())

    expected = evaluated(catalog, records)
    # The data set must make every rule decide something: members and non-members alike.
    trivial = [sid for sid, found in expected.items() if not found or found == set(records)]
    assert not trivial, f"rules without members or without non-members on this data set: {trivial}"
    assert profile_id(100) in expected["revenue_band"]  # the latest 50 of 55 orders, not all of them
    assert profile_id(102) in expected["orders_30d"] and profile_id(101) not in expected["orders_30d"]
    assert profile_id(101) in expected["cart"] and profile_id(102) not in expected["cart"]

    assert differences(expected, queried(warehouse, catalog)) == []


def test_library_segments_in_sql_equal_evaluated_members(warehouse: Warehouse):
    """The built-in segments: whatever they find on this data set, SQL finds the same."""
    apply_migrations(warehouse)
    data = build_data_set(seed=11)
    records = data.records()
    store(warehouse, data, records)
    definitions = [
        d for path in sorted(LIBRARY.glob("*.yaml")) for d in load_documents(path.read_text(), path.name)
    ]
    catalog = SegmentCatalog().with_changes(SegmentCatalog().plan(definitions, NOW.isoformat()))
    assert len(catalog) > 0

    assert differences(evaluated(catalog, records), queried(warehouse, catalog)) == []
