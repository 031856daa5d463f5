"""Relative windows written as ``90d``, ``24h``, ``30m``, ``45s`` or ``2w``."""

from __future__ import annotations

import re

SECOND_MICROS = 1_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: object) -> int:
    """Seconds in ``text``; ValueError says what is accepted."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"{text!r} is not a duration: write a positive whole number and a unit, "
            "s (seconds), m (minutes), h (hours), d (days) or w (weeks), e.g. '90d' or '24h'"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
