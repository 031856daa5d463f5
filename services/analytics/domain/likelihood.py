"""Maximum-likelihood search shared by the value models: positive parameters, searched in logs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

Floats = NDArray[np.float64]
# A fit whose parameters leave this range ran off to a boundary of the model (too little data, or
# data the model does not describe): its predictions are not used.
SANE = (1e-6, 1e6)


@dataclass(frozen=True, slots=True)
class Search:
    params: tuple[float, ...]
    log_likelihood: float
    converged: bool
    evaluations: int
    message: str


P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class ModelFit(Generic[P]):
    """A fitted model: its parameters (a dataclass) and how the search went."""

    params: P
    log_likelihood: float
    converged: bool
    evaluations: int
    message: str
    customers: int

    @classmethod
    def of(cls, params: P, search: Search, customers: int) -> ModelFit[P]:
        return cls(
            params, search.log_likelihood, search.converged, search.evaluations, search.message, customers
        )

    def as_json(self) -> dict[str, Any]:
        """The parameters by name, then the search's outcome."""
        return {
            **asdict(self.params),  # type: ignore[call-overload]
            "log_likelihood": self.log_likelihood, "converged": self.converged,
            "evaluations": self.evaluations, "message": self.message, "customers": self.customers,
        }  # fmt: skip


def maximise(log_likelihood: Callable[[Floats], float], start: Floats) -> Search:
    """L-BFGS-B on the log parameters; Nelder-Mead from there when it does not converge."""
    evaluations = 0

    def negative(log_params: Floats) -> float:
        nonlocal evaluations
        evaluations += 1
        value = -log_likelihood(np.exp(log_params))
        return value if np.isfinite(value) else 1e300

    best = optimize.minimize(negative, start, method="L-BFGS-B")
    if not best.success:
        fallback = optimize.minimize(negative, best.x, method="Nelder-Mead",
                                     options={"xatol": 1e-8, "fatol": 1e-8, "maxfev": 4000})  # fmt: skip
        if fallback.fun <= best.fun:
            best = fallback
    params = tuple(float(v) for v in np.exp(best.x))
    sane = all(SANE[0] <= p <= SANE[1] for p in params)
    message = str(best.message) if sane else f"{best.message}; parameters out of range {SANE}: {params}"
    return Search(
        params, -float(best.fun), bool(best.success) and sane and best.fun < 1e300, evaluations, message
    )
