"""When a German online shop is busy: week days, hours (Berlin time), Black Week and Christmas.

Times are UTC epoch seconds (floats) throughout the demo generator: cheaper than datetimes in the
hot loop, and the conversion to ISO strings happens once per emitted message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from services.demo.catalogue import SHOP_URL

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0
_EPOCH = date(1970, 1, 1)

# Monday .. Sunday: Sunday evening on the sofa is the busiest time of a German shop's week.
_WEEKDAY = (1.0, 0.95, 0.95, 1.0, 0.9, 0.85, 1.2)
_MONTH = (0.85, 0.9, 1.0, 1.0, 0.95, 0.9, 0.85, 0.85, 0.95, 1.0, 1.1, 1.25)
_HOURLY_RAW = (
    0.30, 0.15, 0.08, 0.05, 0.05, 0.10, 0.25, 0.50, 0.70, 0.85, 0.95, 1.00,
    1.05, 1.00, 0.95, 0.95, 1.00, 1.10, 1.30, 1.55, 1.70, 1.60, 1.20, 0.70,
)  # fmt: skip
HOURLY = tuple(w * 24 / sum(_HOURLY_RAW) for w in _HOURLY_RAW)  # mean 1.0
_DAY_FACTOR_MAX = 3.5
MAX_INTENSITY = _DAY_FACTOR_MAX * max(HOURLY)


@lru_cache(maxsize=64)
def _dst_window(year: int) -> tuple[float, float]:
    """Central European Summer Time: last Sunday of March to last Sunday of October, 01:00 UTC."""

    def last_sunday_1am(month: int) -> float:
        day = date(year, month, 31)
        day -= timedelta(days=(day.weekday() - 6) % 7)
        return datetime(day.year, day.month, day.day, 1, tzinfo=UTC).timestamp()

    return last_sunday_1am(3), last_sunday_1am(10)


@lru_cache(maxsize=4096)
def _year_of_utc_day(day: int) -> int:
    return (_EPOCH + timedelta(days=day)).year


def berlin_offset(t: float) -> float:
    """Seconds to add to UTC for Berlin local time (a tiny CET/CEST rule, no tz database needed)."""
    start, end = _dst_window(_year_of_utc_day(int(t // DAY)))
    return 2 * HOUR if start <= t < end else HOUR


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November (US Thanksgiving)."""
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21 + 1)


def _event_factor(day: date) -> float:
    bf = black_friday(day.year)
    delta = (day - bf).days
    if delta == 0:
        return 3.2
    if -4 <= delta < 0:  # Black Week
        return 1.5
    if delta in (1, 2):
        return 1.7
    if delta == 3:  # Cyber Monday
        return 2.4
    if day.month == 12:
        if day.day <= 20:
            return 1.25
        if day.day == 24:
            return 0.4
        if day.day in (25, 26):
            return 0.55
        return 1.0 if day.day < 24 else 0.9
    return 1.0


@lru_cache(maxsize=8192)
def day_factor(local_day: int) -> float:
    """Traffic of a (Berlin) calendar day relative to an ordinary day; ``local_day`` counts from 1970."""
    day = _EPOCH + timedelta(days=local_day)
    factor = _WEEKDAY[day.weekday()] * _MONTH[day.month - 1] * _event_factor(day)
    return min(factor, _DAY_FACTOR_MAX)


def intensity(t: float) -> float:
    """Relative shop traffic at ``t``: 1.0 is an average hour of an ordinary day."""
    local = t + berlin_offset(t)
    day = int(local // DAY)
    return day_factor(day) * HOURLY[int((local - day * DAY) // HOUR)]


def next_active(rng: random.Random, after: float, rate_per_day: float) -> float:
    """Next arrival of a Poisson process whose rate follows ``intensity`` (thinning)."""
    rate = rate_per_day * MAX_INTENSITY / DAY
    t = after
    while True:
        t += rng.expovariate(rate)
        if rng.random() * MAX_INTENSITY < intensity(t):
            return t


def local_day(t: float) -> int:
    return int((t + berlin_offset(t)) // DAY)


def utc_at_local(day: int, hour: float) -> float:
    """UTC epoch seconds of ``hour`` o'clock Berlin time on ``day``."""
    local = day * DAY + hour * HOUR
    return local - berlin_offset(local - HOUR)


@dataclass(frozen=True, slots=True)
class Campaign:
    at: float
    campaign_id: str
    name: str
    link_url: str
    # Opens relative to an ordinary newsletter: people wait for the Black Friday mail.
    appeal: float


def _season(month: int) -> str:
    return ("Winter", "Frühlings", "Sommer", "Herbst")[month % 12 // 3]


def _campaigns_on(day: date) -> list[tuple[float, str, str, float]]:
    """(local hour, slug, subject, appeal) of every newsletter sent on ``day``."""
    sends: list[tuple[float, str, str, float]] = []
    bf = black_friday(day.year)
    advent4 = date(day.year, 12, 24) - timedelta(days=(date(day.year, 12, 24).weekday() + 1) % 7)
    delta = (day - bf).days
    if delta == 0:
        sends.append((6.0, "black-friday", "Black Friday: bis zu 40 % auf alles", 1.35))
    elif delta == -4:
        sends.append((8.0, "black-week", "Die Black Week beginnt: jeden Tag neue Deals", 1.2))
    elif delta == 3:
        sends.append((7.0, "cyber-monday", "Cyber Monday: nur noch heute", 1.25))
    elif day.weekday() == 1:
        sends.append((10.0, "neuheiten", f"Neu eingetroffen: die {_season(day.month)}-Kollektion", 1.0))
    elif day.weekday() == 3:
        sends.append((18.0, "wochenende", "Wochenend-Deals: bis zu 30 % Rabatt", 0.9))
    for week in range(4):
        if day == advent4 - timedelta(weeks=week):
            sends.append((9.0, f"advent-{4 - week}", f"{4 - week}. Advent: Geschenkideen für alle", 1.1))
    if day.month == 12 and day.day == 19:
        sends.append((8.0, "last-minute", "Last-Minute-Geschenke: Lieferung bis Heiligabend", 1.15))
    if day.month == 1 and day.day == 2:
        sends.append((10.0, "winter-sale", "Winter-Sale: bis zu 50 % reduziert", 1.1))
    return sends


def next_campaign(after: float) -> Campaign:
    """The first newsletter sent strictly after ``after`` (there is one at least every week)."""
    day = local_day(after)
    while True:
        calendar_day = _EPOCH + timedelta(days=day)
        for hour, slug, subject, appeal in sorted(_campaigns_on(calendar_day)):
            at = utc_at_local(day, hour)
            if at > after:
                campaign_id = f"cmp-{calendar_day:%Y%m%d}-{slug}"
                url = f"{SHOP_URL}/aktion/{slug}?utm_source=newsletter&utm_campaign={campaign_id}"
                return Campaign(at, campaign_id, subject, url, appeal)
        day += 1
