"""Registration's tail probabilities agree with scipy's, so that no stored p-value or decision moves."""

import numpy as np
import pytest
from scipy.special import fdtrc, pdtrc

from obsdb.imaging.tails import f_tail, poisson_tail


def _agree(found, expected, rel):
    if expected < 1e-290:        # scipy underflows to 0 (or a subnormal) where these do too
        return found < 1e-280
    return abs(found - expected) <= rel * expected


def test_poisson_tail_is_scipys():
    counts = list(range(1, 60)) + [100, 200, 400, 900, 1100]
    means = [1e-6, 1e-3, 0.003, 0.1, 0.5, 1, 2, 3.3, 5, 10, 30, 59.5, 100, 399, 400, 401, 745, 1000, 1200]
    for k in counts:
        for lam in means:
            found, expected = poisson_tail(k, lam), float(pdtrc(k - 1, lam))
            assert _agree(found, expected, 1e-11), (k, lam, found, expected)
    assert poisson_tail(0, 3.0) == 1.0 and poisson_tail(5, 0.0) == 0.0


@pytest.mark.parametrize("d1", [1, 2, 3])
def test_f_tail_is_scipys(d1):
    for d2 in list(range(1, 40)) + [50, 99, 100, 301, 797, 1000, 5000]:
        for f in np.r_[0.0, np.logspace(-8, 5, 60)]:
            found, expected = f_tail(d1, d2, float(f)), float(fdtrc(d1, d2, f))
            assert _agree(found, expected, 1e-10), (d1, d2, f, found, expected)


def test_f_tail_of_a_large_statistic_keeps_its_precision():
    """A clear rotation gives p ~ 1e-40: computed from the tail itself, not as one minus the body."""
    expected = float(fdtrc(1, 200, 300.0))
    assert 0 < expected < 1e-30 and f_tail(1, 200, 300.0) == pytest.approx(expected, rel=1e-10)
