"""The Gamma-Gamma model of spend per purchase (Fader, Hardie and Lee 2005, "RFM and CLV: using
iso-value curves for customer base analysis"; Colombo and Jiang 1999), fitted by maximum likelihood.

A customer with ``x`` repeat purchases of average value ``m_x`` spends per purchase amounts
``z ~ Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)`` across customers. Only customers with at least one
repeat purchase of positive value inform the fit. Pure numerics, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from services.analytics.domain.likelihood import ModelFit, maximise

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    gamma: float

    def population_mean(self) -> float:
        """Expected spend per purchase of a customer about whom nothing is known (needs q > 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")


GammaGammaFit = ModelFit[GammaGamma]


def log_likelihood_terms(params: GammaGamma, x: ArrayLike, m_x: ArrayLike) -> Floats:
    """Each customer's log-likelihood of their average spend ``m_x`` over ``x`` purchases."""
    p, q, g = params.p, params.q, params.gamma
    x_ = np.asarray(x, dtype=np.float64)
    m = np.asarray(m_x, dtype=np.float64)
    px = p * x_
    result: Floats = (
        special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q)
        + q * np.log(g) + (px - 1) * np.log(m) + px * np.log(x_) - (px + q) * np.log(g + x_ * m)
    )  # fmt: skip
    return result


def fit(x: ArrayLike, m_x: ArrayLike, weights: ArrayLike | None = None) -> GammaGammaFit:
    """Maximum-likelihood parameters over customers with ``x > 0`` and ``m_x > 0``."""
    x_ = np.asarray(x, dtype=np.float64)
    m = np.asarray(m_x, dtype=np.float64)
    w = np.ones_like(x_) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = (x_ > 0) & (m > 0)
    x_, m, w = x_[usable], m[usable], w[usable]
    customers = int(w.sum())
    if customers < 2:
        raise ValueError("the Gamma-Gamma model needs customers with repeat purchases of positive value")

    def log_likelihood(params: Floats) -> float:
        return float(np.dot(w, log_likelihood_terms(GammaGamma(*params), x_, m)))

    mean = float(np.average(m, weights=w))
    search = maximise(log_likelihood, np.log(np.array([1.0, 2.0, mean])))
    return ModelFit.of(GammaGamma(*search.params), search, customers)


def expected_spend(params: GammaGamma, x: ArrayLike, m_x: ArrayLike) -> Floats:
    """E[Z | x, m_x]: a customer's expected spend per purchase, their own average shrunk towards
    the population mean; the population mean for customers without repeat purchases."""
    p, q, g = params.p, params.q, params.gamma
    x_ = np.asarray(x, dtype=np.float64)
    m = np.nan_to_num(np.asarray(m_x, dtype=np.float64))
    result: Floats = np.where(x_ > 0, p * (g + x_ * m) / (p * x_ + q - 1), params.population_mean())
    return result
