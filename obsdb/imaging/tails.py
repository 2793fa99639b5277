"""Tail probabilities of the Poisson and F distributions, for registration's tests of chance.

Registration asks two questions of chance: could this many stars coincide by accident (a Poisson
tail, :func:`poisson_tail`), and does a rotation improve a fit more than noise would (an F test,
:func:`f_tail`).  scipy's ``pdtrc`` and ``fdtrc`` answer both, but importing ``scipy.special`` took
0.15 s of every ``obsdb align``, which otherwise needs nothing from scipy.  These are the standard
series and continued fraction (the incomplete gamma's series; the incomplete beta's continued
fraction, evaluated by Lentz's method), which is how scipy's Cephes routines compute them too;
``tests/imaging/test_tails.py`` requires them to agree with scipy's to 1e-11 relative over the
ranges registration uses and far beyond.
"""

from __future__ import annotations

import math

_TINY = 1e-300
"""Stands in for a zero denominator in the continued fraction (Lentz's method)."""

_EPS = 1e-16
"""A series or fraction stops when its next step changes it by less than this, relatively."""

_MAX_STEPS = 100_000
"""Bound on the continued fraction's steps (it converges in about sqrt(a + b) of them)."""


def poisson_tail(k: int, lam: float) -> float:
    """P(N >= k) for N ~ Poisson(``lam``).

    Parameters
    ----------
    k : int
        Count.
    lam : float
        Mean; 0 or less gives 0 for any ``k >= 1``.

    Returns
    -------
    float
        The tail probability (1 for ``k <= 0``).
    """
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    log_lam = math.log(lam)
    if lam < k:
        # The tail itself: its first term, P(N = k), times 1 + lam / (k + 1) + lam^2 / ((k + 1)(k + 2)) ...
        term = total = 1.0
        n = k
        while term > total * _EPS:
            n += 1
            term *= lam / n
            total += term
        return math.exp(k * log_lam - lam - math.lgamma(k + 1)) * total
    # The tail holds most of the probability: one minus the k terms below it, each from its logarithm
    # (exp(-lam) alone underflows beyond lam = 745).
    below = math.fsum(math.exp(i * log_lam - lam - math.lgamma(i + 1)) for i in range(k))
    return max(0.0, 1.0 - below)


def f_tail(d1: float, d2: float, f: float) -> float:
    """P(F > ``f``) for F ~ F(``d1``, ``d2``): the p-value of an F test.

    Parameters
    ----------
    d1, d2 : float
        Degrees of freedom of the numerator and the denominator, both positive.
    f : float
        The statistic; 0 or less gives 1.

    Returns
    -------
    float
        The upper tail probability.
    """
    if f <= 0:
        return 1.0
    # P(F > f) = I_x(d2 / 2, d1 / 2) at x = d2 / (d2 + d1 f); 1 - x is written out, not subtracted, so
    # that a large f (a tiny x's complement near 1) keeps its precision.
    x = d2 / (d2 + d1 * f)
    y = d1 * f / (d2 + d1 * f)
    return _regularized_beta(0.5 * d2, 0.5 * d1, x, y)


def _regularized_beta(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b), with ``y = 1 - x`` given exactly."""
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_front = a * math.log(x) + b * math.log(y) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    # The fraction converges quickly on the side of the distribution's mean nearer x; the other
    # side is the complement by I_x(a, b) = 1 - I_(1-x)(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The incomplete beta's continued fraction at ``x``, by Lentz's method."""

    def guarded(value: float) -> float:
        return value if abs(value) >= _TINY else _TINY

    c = 1.0
    d = 1.0 / guarded(1.0 - (a + b) * x / (a + 1.0))
    result = d
    for m in range(1, _MAX_STEPS):
        # Two steps of the fraction per m: its even term, then its odd term.
        even = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 / guarded(1.0 + even * d)
        c = guarded(1.0 + even / c)
        result *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 / guarded(1.0 + odd * d)
        c = guarded(1.0 + odd / c)
        step = d * c
        result *= step
        if abs(step - 1.0) < _EPS:
            break
    return result
