"""The BG/NBD model of repeat buying (Fader, Hardie and Lee 2005, "Counting your customers the easy
way"), fitted by maximum likelihood.

A customer is summarised by ``x`` (repeat purchases: purchase periods after the first), ``t_x`` (time
of the last purchase after the first) and ``T`` (time from the first purchase to the end of the
observation), in one time unit. While alive, a customer buys as a Poisson process with rate
``lambda ~ Gamma(r, alpha)``; after each purchase the customer drops out with probability
``p ~ Beta(a, b)``.

Pure numerics (numpy and scipy), no I/O: the warehouse reduces millions of customers to the distinct
``(x, t_x, T)`` triples with their counts, and the fit runs on those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from services.analytics.domain.likelihood import ModelFit, maximise

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float


BgNbdFit = ModelFit[BgNbd]


def log_likelihood_terms(params: BgNbd, x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike) -> Floats:
    """Each customer's log-likelihood (equation 6 of the paper, in logs)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x_ = np.asarray(x, dtype=np.float64)
    tx = np.asarray(t_x, dtype=np.float64)
    tt = np.asarray(big_t, dtype=np.float64)
    common = (
        special.gammaln(r + x_) - special.gammaln(r) + r * np.log(alpha)
        + special.gammaln(a + b) + special.gammaln(b + x_) - special.gammaln(b) - special.gammaln(a + b + x_)
    )  # fmt: skip
    alive = -(r + x_) * np.log(alpha + tt)
    repeat = x_ > 0
    dropped = np.full_like(x_, -np.inf)
    dropped[repeat] = np.log(a) - np.log(b + x_[repeat] - 1) - (r + x_[repeat]) * np.log(alpha + tx[repeat])
    result: Floats = common + np.logaddexp(alive, dropped)
    return result


def fit(x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike, weights: ArrayLike | None = None) -> BgNbdFit:
    """Maximum-likelihood parameters for customers ``(x, t_x, T)``; ``weights`` counts how many
    customers share each triple."""
    x_ = np.asarray(x, dtype=np.float64)
    tx = np.asarray(t_x, dtype=np.float64)
    tt = np.asarray(big_t, dtype=np.float64)
    w = np.ones_like(x_) if weights is None else np.asarray(weights, dtype=np.float64)
    customers = int(w.sum())
    if customers == 0 or not np.any(x_ > 0):
        raise ValueError("the BG/NBD model needs customers with repeat purchases")
    scale = float(np.average(tt, weights=w)) or 1.0

    def log_likelihood(params: Floats) -> float:
        return float(np.dot(w, log_likelihood_terms(BgNbd(*params), x_, tx, tt)))

    search = maximise(log_likelihood, np.log(np.array([1.0, scale, 1.0, 1.0])))
    return ModelFit.of(BgNbd(*search.params), search, customers)


def p_alive(params: BgNbd, x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike) -> Floats:
    """P(alive | x, t_x, T) (equation 11); 1 for customers without repeat purchases, who had no
    chance to drop out in this model."""
    x_ = np.asarray(x, dtype=np.float64)
    tx = np.asarray(t_x, dtype=np.float64)
    tt = np.asarray(big_t, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        odds = (params.a / (params.b + x_ - 1)) * ((params.alpha + tt) / (params.alpha + tx)) ** (
            params.r + x_
        )
        result: Floats = np.where(x_ > 0, 1.0 / (1.0 + odds), 1.0)
    return result


def expected_purchases(params: BgNbd, t: float, x: ArrayLike, t_x: ArrayLike, big_t: ArrayLike) -> Floats:
    """E[Y(t) | x, t_x, T]: expected purchases in the next ``t`` units (equation 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x_ = np.asarray(x, dtype=np.float64)
    tx = np.asarray(t_x, dtype=np.float64)
    tt = np.asarray(big_t, dtype=np.float64)
    z = t / (alpha + tt + t)
    hyp = special.hyp2f1(r + x_, b + x_, a + b + x_ - 1, z)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        numerator = (a + b + x_ - 1) / (a - 1) * (1 - ((alpha + tt) / (alpha + tt + t)) ** (r + x_) * hyp)
        odds = np.where(x_ > 0, (a / (b + x_ - 1)) * ((alpha + tt) / (alpha + tx)) ** (r + x_), 0.0)
        result: Floats = numerator / (1 + odds)
    return result
