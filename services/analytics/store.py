"""Reading customer value back: the latest refresh, values per partition, one profile's value."""

from __future__ import annotations

from typing import Any

from services.core.warehouse.port import Warehouse


def latest_refresh_id(warehouse: Warehouse) -> int | None:
    """The latest finished refresh, whose ``customer_value`` partition readers use."""
    rows = warehouse.query(
        f"SELECT max(refresh_id) FROM {warehouse.database}.analytics_refreshes FINAL WHERE status = 'done'"
    )
    latest = int(rows[0][0]) if rows and rows[0][0] else 0
    return latest or None


def values_of_partitions(
    warehouse: Warehouse, refresh_id: int, partitions: int, mine: set[int]
) -> list[tuple[str, str]]:
    """``(profile_id, attributes JSON)`` of a refresh for the profiles of Kafka partitions ``mine``
    (``CRC32 % partitions`` is the Kafka client's partitioner)."""
    if not mine:
        return []
    rows = warehouse.query(
        f"SELECT profile_id, attributes FROM {warehouse.database}.customer_value "
        "WHERE refresh_id = {refresh:UInt64} AND CRC32(profile_id) % {count:UInt32} IN {mine:Array(UInt32)}",
        {"refresh": refresh_id, "count": partitions, "mine": sorted(mine)},
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def profile_value(warehouse: Warehouse, profile_id: str) -> dict[str, Any] | None:
    """One profile's row of ``customer_value_latest`` (None: not a customer, or no refresh yet)."""
    rows = warehouse.query_dicts(
        f"SELECT * EXCEPT (refresh_id, profile_id) FROM {warehouse.database}.customer_value_latest "
        "WHERE profile_id = {profile:String}",
        {"profile": profile_id},
    )
    return rows[0] if rows else None
