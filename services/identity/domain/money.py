"""Amounts as integer units of 1/10,000 of the currency.

Floats summed in a different order give different totals, which would make a profile depend on
arrival order; integers add exactly. Four decimals cover every ISO 4217 currency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MONEY_SCALE = 10_000
DEFAULT_CURRENCY = "EUR"  # the default of every ``currency`` field in schemas/shop.py


def to_units(value: object) -> int | None:
    """Units of a non-negative amount; None when the value is missing or not a usable number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return round(number * MONEY_SCALE)


def to_amount(units: int) -> float:
    return units / MONEY_SCALE


def line_items_units(properties: Mapping[str, Any]) -> int | None:
    """Sum of price x quantity over ``products``; None without usable line items."""
    products = properties.get("products")
    if not isinstance(products, list) or not products:
        return None
    total = 0
    for item in products:
        if not isinstance(item, Mapping):
            return None
        price = to_units(item.get("price"))
        quantity = item.get("quantity", 1)
        if price is None or not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            return None
        total += price * quantity
    return total


def currency_of(properties: Mapping[str, Any]) -> str:
    currency = properties.get("currency")
    return currency if isinstance(currency, str) and currency else DEFAULT_CURRENCY
