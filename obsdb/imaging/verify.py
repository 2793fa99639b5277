"""Verification of a transform, independent of how it was found.

A transform is believed when the frame's stars, mapped into the reference,
land on reference stars more often than chance allows: at the reference's
star density the coincidences of a wrong transform are Poisson with a known
mean, so the chance of as many as were seen is a Poisson tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from obsdb.imaging.starlist import as_xy, usable_stars
from obsdb.imaging.tails import poisson_tail
from obsdb.imaging.transform import Transform

__all__ = ["VERIFY_MAX_CHANCE", "VERIFY_MIN_MATCHES", "VERIFY_RADIUS", "Verification", "poisson_tail",
           "verify_transform"]

VERIFY_RADIUS = 2.0
"""Pixels within which a mapped frame star counts as landing on a reference star."""

VERIFY_MIN_MATCHES = 4
"""Fewest coincidences that verify a transform, however sparse the field."""

VERIFY_MAX_CHANCE = 1e-6
"""Largest probability that the coincidences a verified transform shows arose by chance."""


@dataclass(frozen=True, kw_only=True)
class Verification:
    """Whether the frame's stars, mapped by a transform, land on the reference's.

    Attributes
    ----------
    ok : bool
        The coincidences are too many to be chance (see :func:`verify_transform`).
    n_inside : int
        Frame stars that the transform maps inside the reference frame.
    n_reference : int
        Reference stars.
    n_matched : int
        One-to-one coincidences within ``radius``.
    expected : float
        Coincidences expected by chance at the reference's star density.
    p_chance : float
        Poisson probability of at least ``n_matched`` coincidences by chance.
    radius : float
        Coincidence radius, pixels.
    """

    ok: bool
    n_inside: int
    n_reference: int
    n_matched: int
    expected: float
    p_chance: float
    radius: float

    def describe(self) -> str:
        """``"12 of 40 frame stars on reference stars within 2 px (0.003 expected by chance)"``."""
        return (f"{self.n_matched} of {self.n_inside} frame stars on reference stars within "
                f"{self.radius:g} px ({self.expected:.2g} expected by chance)")


def _one_to_one(mapped: np.ndarray, rxy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Closest-first one-to-one pairs ``(i_mapped, j_reference)`` within ``radius``."""
    if len(mapped) == 0 or len(rxy) == 0:
        return np.empty(0, int), np.empty(0, int)
    from obsdb.imaging.neighbours import pairs_within

    i, j = pairs_within(mapped, rxy, radius)
    d = np.hypot(mapped[i, 0] - rxy[j, 0], mapped[i, 1] - rxy[j, 1])
    order = np.lexsort((j, i, d))
    i, j = i[order], j[order]
    used_i, used_j, keep = set(), set(), []
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
        if a not in used_i and b not in used_j:
            used_i.add(a)
            used_j.add(b)
            keep.append(k)
    return i[keep], j[keep]


def verify_transform(frame_stars, reference_stars, transform: Transform, shape, *,
                     radius: float = VERIFY_RADIUS) -> Verification:
    """Check a transform independently of how it was found: do the frame's stars land on the reference's?

    The frame's usable stars (single hot pixels left out: they sit still on
    the detector) are mapped into the reference; those landing inside it
    should fall on reference stars.  By chance, each lands within ``radius``
    of one with probability ``n_reference * pi * radius**2 / area``, so the
    coincidences of a wrong transform are Poisson with a known mean.  The
    transform is verified when at least :data:`VERIFY_MIN_MATCHES` coincide
    and the chance of that many is below :data:`VERIFY_MAX_CHANCE`: a
    threshold set by the star density, which a random transform does not
    reach (a test throws random transforms at real star lists).

    Parameters
    ----------
    frame_stars, reference_stars : array_like
        Star lists (structured with ``x``, ``y``; ``flux`` and ``peak`` to drop hot pixels).
    transform : Transform
        Frame to reference.
    shape : (ny, nx)
        The reference's shape.
    radius : float
        Coincidence radius, pixels.

    Returns
    -------
    Verification
    """
    fxy = as_xy(usable_stars(frame_stars))
    rxy = as_xy(usable_stars(reference_stars))
    ny, nx = shape
    mapped = transform.map_xy(fxy) if len(fxy) else np.empty((0, 2))
    inside = ((mapped[:, 0] >= -0.5) & (mapped[:, 0] <= nx - 0.5)
              & (mapped[:, 1] >= -0.5) & (mapped[:, 1] <= ny - 0.5)) if len(mapped) else np.zeros(0, bool)
    mapped = mapped[inside]
    i, _ = _one_to_one(mapped, rxy, radius)
    per_star = min(1.0, len(rxy) * math.pi * radius ** 2 / float(nx * ny))
    expected = len(mapped) * per_star
    p = poisson_tail(len(i), expected)
    ok = len(i) >= VERIFY_MIN_MATCHES and p <= VERIFY_MAX_CHANCE
    return Verification(ok=bool(ok), n_inside=int(len(mapped)), n_reference=int(len(rxy)), n_matched=int(len(i)),
                        expected=float(expected), p_chance=float(p), radius=float(radius))
