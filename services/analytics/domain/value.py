"""What a customer value refresh computes, and with which options: pure, no I/O.

The refresh itself runs in the warehouse (``services.analytics.sql``); this module holds its
options, the attributes it adds to profiles, and the fit's JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.analytics.domain.bgnbd import BgNbdFit
from services.analytics.domain.gamma_gamma import GammaGammaFit

UNITS = {"days": 1, "weeks": 7}
# Fewer customers with repeat purchases than this do not pin down the models' parameters: the
# refresh then leaves the predictions empty and says why.
MIN_REPEAT_CUSTOMERS = 20

# The profile attributes a refresh adds (segment rules read them like any attribute).
VALUE_ATTRIBUTES = (
    "rfm_recency_score",
    "rfm_frequency_score",
    "rfm_monetary_score",
    "rfm_score",
    "abc_class",
    "historical_clv",
    "predicted_clv",
    "predicted_purchases",
    "expected_order_value",
    "p_alive",
    "churn_risk",
)


class OptionError(ValueError):
    """Options that do not make a valid refresh or fit."""


@dataclass(frozen=True, slots=True)
class ValueOptions:
    until: date
    unit: str = "days"
    horizon_days: int = 365
    margin: float = 1.0
    abc_a: float = 0.80
    abc_b: float = 0.15

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise OptionError(f"unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.horizon_days <= 0:
            raise OptionError("the horizon must be at least one day")
        if not 0 < self.margin <= 1:
            raise OptionError("the margin must be a share between 0 (exclusive) and 1")
        if not (0 < self.abc_a < 1 and 0 < self.abc_b < 1 and self.abc_a + self.abc_b < 1):
            raise OptionError(
                f"ABC shares must be positive and leave room for class C: A {self.abc_a} + B {self.abc_b} < 1"
            )

    @property
    def unit_days(self) -> int:
        return UNITS[self.unit]

    @property
    def horizon(self) -> float:
        """The horizon in the fit's unit."""
        return self.horizon_days / self.unit_days


@dataclass(frozen=True, slots=True)
class FittedModels:
    until: date
    unit: str
    customers: int
    repeat_customers: int
    bgnbd: BgNbdFit | None
    gamma_gamma: GammaGammaFit | None
    problems: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The document ``cdp analytics fit`` prints."""
        out: dict[str, Any] = {
            "until": self.until.isoformat(),
            "unit": self.unit,
            "customers": self.customers,
            "repeat_customers": self.repeat_customers,
            "bgnbd": None if self.bgnbd is None else self.bgnbd.as_json(),
            "gamma_gamma": None if self.gamma_gamma is None else self.gamma_gamma.as_json(),
        }
        out["converged"] = bool(
            self.bgnbd is not None and self.bgnbd.converged
            and self.gamma_gamma is not None and self.gamma_gamma.converged
        )  # fmt: skip
        if self.problems:
            out["problems"] = list(self.problems)
        return out
