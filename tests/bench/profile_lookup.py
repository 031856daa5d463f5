"""Profile 360 benchmark: ``GET /api/v1/profiles/lookup`` latency over 100k profiles.

The warehouse is the embedded chDB engine of this process, filled directly with SQL (``INSERT ...
SELECT FROM numbers()``): 100k profiles (5% absorbed by a merge, with redirects and rewritten
identities), about 330k identity rows and about 1.1M events_by_anchor rows (10 per profile, plus
100 heavy profiles with 1,000 each). The admin routes run in a real uvicorn server in a thread; one
keep-alive client sends the lookups one after another (email in mixed case, phone, customer id,
anonymous id, an absorbed profile's identifier, a profile id) and checks every answer.

    .venv/bin/python -m tests.bench.profile_lookup [--profiles 100000] [--lookups 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import httpx
from starlette.applications import Starlette

from services.admin.api import admin_routes
from services.admin.auth import AdminTokens
from services.admin.profiles import ProfileReader
from services.core.warehouse.chdb_adapter import ChdbWarehouse
from tests.bench.bench_warehouse import migrated_warehouse
from tests.integration.servers import serve_app

TOKEN = "bench-admin-token"
FLOOR_P99_MS = 50.0
HEAVY_PROFILES, HEAVY_EVENTS = 100, 1_000

# Profile n: its id, and whether a merge absorbed it into profile n - 1.
PROFILE_ID = "concat('p_', substring(lower(hex(sipHash128(toString({n})))), 1, 22))"
ABSORBED = "({n} % 20 = 19)"
ANONYMOUS_ID = "concat('a-', lower(hex(sipHash64('anonymous', {n}))))"


def _identifiers(n: str) -> str:
    return (
        f"arrayConcat([concat('customer_id:C', toString({n})), concat('email:kunde', toString({n}), '@example.de'), "
        f"concat('anonymous_id:', {ANONYMOUS_ID.format(n=n)})], "
        f"if({n} % 4 = 0, [concat('phone:+49151', leftPad(toString({n}), 8, '0'))], []))"
    )


def load(warehouse: ChdbWarehouse, profiles: int) -> dict[str, int]:
    """Fill ``warehouse`` (migrated, empty) with ``profiles`` profiles and their rows."""
    db, pid, absorbed = warehouse.database, PROFILE_ID.format(n="number"), ABSORBED.format(n="number")
    survivor = PROFILE_ID.format(n="(number - 1)")
    traits = 'concat(\'{"email":"kunde\', toString(number), \'@example.de","first_name":"Anna"}\')'
    attributes = (
        "concat('{\"orders_count\":', toString(number % 7), ',\"revenue_net\":', toString(number % 300), "
        '\',"preferred_channel":"shop","last_seen_at":"2026-11-20T10:00:00.000Z"}\')'
    )
    statements = [
        f"INSERT INTO {db}.profiles (profile_id, version, identifiers, traits, attributes) "
        f"SELECT {pid}, 1, {_identifiers('number')}, {traits}, {attributes} FROM numbers({profiles})",
        f"INSERT INTO {db}.profiles (profile_id, version, merged_into) "
        f"SELECT {pid}, 2, {survivor} FROM numbers({profiles}) WHERE {absorbed}",
        f"INSERT INTO {db}.profile_redirects (absorbed, survivor, version) "
        f"SELECT {pid}, {survivor}, 1 FROM numbers({profiles}) WHERE {absorbed}",
        f"INSERT INTO {db}.identities (identifier, profile_id, version) "
        f"SELECT arrayJoin({_identifiers('number')}), {pid}, 1 FROM numbers({profiles})",
        # After the merge the graph rewrites the absorbed profile's customer id and email; its
        # anonymous id is left pointing at the absorbed id, so lookups must follow the redirect.
        f"INSERT INTO {db}.identities (identifier, profile_id, version) "
        f"SELECT arrayJoin(arraySlice({_identifiers('number')}, 1, 2)), {survivor}, 2 "
        f"FROM numbers({profiles}) WHERE {absorbed}",
        _events_sql(db, profiles * 10, f"intDiv(number, 10) % {profiles}", "e"),
        _events_sql(
            db, HEAVY_PROFILES * HEAVY_EVENTS, f"intDiv(number, {HEAVY_EVENTS}) * 997 % {profiles}", "h"
        ),
    ]
    for sql in statements:
        warehouse.command(sql)
    counts = {}
    for table in ("profiles", "identities", "profile_redirects", "events_by_anchor"):
        counts[table] = int(warehouse.query(f"SELECT count() FROM {db}.{table}")[0][0])
    return counts


def _events_sql(db: str, rows: int, profile_of_number: str, id_prefix: str) -> str:
    return (
        f"INSERT INTO {db}.events_by_anchor SELECT concat('customer_id:C', toString({profile_of_number})), "
        f"{PROFILE_ID.format(n=profile_of_number)}, "
        "toDateTime64('2026-08-01 00:00:00', 3, 'UTC') + toIntervalSecond(cityHash64(number) % 9000000), "
        f"concat('{id_prefix}-', toString(number)), 'track', "
        "['Product Viewed', 'Order Completed', 'Conversation Started', 'Email Opened'][number % 4 + 1], '', "
        "['shop', 'shop', 'chat', 'email'][number % 4 + 1], 'api', "
        'concat(\'{"product_id":"P-\', toString(number % 1000), \'","price":24.95,"currency":"EUR"}\') '
        f"FROM numbers({rows})"
    )


def _requests(warehouse: ChdbWarehouse, profiles: int, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (path, expected profile id) pairs over the identifier types."""
    rng = random.Random(seed)
    numbers = [rng.randrange(1, profiles) for _ in range(count)]
    ids = dict(
        warehouse.query(
            f"SELECT number, {PROFILE_ID.format(n='number')} FROM numbers({profiles}) WHERE has({{ns:Array(UInt64)}}, number)",
            {"ns": sorted(set(numbers) | {n - 1 for n in numbers})},
        )
    )
    anonymous = dict(
        warehouse.query(
            f"SELECT number, {ANONYMOUS_ID.format(n='number')} FROM numbers({profiles}) WHERE has({{ns:Array(UInt64)}}, number)",
            {"ns": sorted(set(numbers))},
        )
    )
    requests = []
    for i, n in enumerate(numbers):
        expected = ids[n - 1] if n % 20 == 19 else ids[n]
        kind = i % 5
        if kind == 0:
            email = f"Kunde{n}@Example.DE" if i % 2 else f"kunde{n}@example.de"
            requests.append((f"/api/v1/profiles/lookup?email={email}", expected))
        elif kind == 1:
            requests.append((f"/api/v1/profiles/lookup?customer_id=C{n}", expected))
        elif kind == 2:
            requests.append((f"/api/v1/profiles/lookup?anonymous_id={anonymous[n]}", expected))
        elif kind == 3 and n % 4 == 0:
            requests.append((f"/api/v1/profiles/lookup?phone=0151{n:08d}", expected))
        else:
            requests.append((f"/api/v1/profiles/{ids[n]}", expected))
    return requests


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(client: httpx.Client, requests: list[tuple[str, str]]) -> list[float]:
    latencies = []
    for path, expected in requests:
        started = time.perf_counter()
        response = client.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response.json()["profile_id"] != expected:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]} (expected {expected})")
    return latencies


def run(profiles: int = 100_000, lookups: int = 1_000, seed: int = 7) -> dict[str, Any]:
    with migrated_warehouse("cdp-bench-lookup-") as warehouse:
        started = time.perf_counter()
        counts = load(warehouse, profiles)
        load_seconds = time.perf_counter() - started
        requests = _requests(warehouse, profiles, lookups + 50, seed)
        app = Starlette(routes=admin_routes(ProfileReader(warehouse), AdminTokens.single_admin(TOKEN)))
        with (
            serve_app(app) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
        ):
            _timed(client, requests[:50])  # warm-up: connections, caches
            latencies = _timed(client, requests[50:])
    return {
        "name": "profile_lookup",
        "description": f"GET /api/v1/profiles/lookup|{{id}} over {profiles:,} profiles, one client, sequential",
        "profiles": profiles,
        "rows": counts,
        "load_seconds": load_seconds,
        "lookups": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "floor_p99_ms": FLOOR_P99_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1_000)
    args = parser.parse_args()
    print(json.dumps(run(args.profiles, args.lookups), indent=2))


if __name__ == "__main__":
    main()
