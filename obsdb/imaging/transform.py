"""The geometric transform between a frame and the reference frame.

Convention (DESIGN.md): a shift ``(dx, dy)`` moves a frame's content onto the
reference, ``aligned(x + dx, y + dy) = frame(x, y)``, so for the same star
``dx = x_reference - x_frame``.  With rotation and scale the mapping is taken
about a centre ``(cx, cy)`` (normally the frame centre)::

    x_ref = cx + scale * ( cos(t) * (x - cx) - sin(t) * (y - cy)) + dx
    y_ref = cy + scale * ( sin(t) * (x - cx) + cos(t) * (y - cy)) + dy

where ``t`` is ``rotation_deg`` in radians, counter-clockwise in the (x, y)
pixel plane.  With ``rotation_deg = 0`` and ``scale = 1`` this is the plain
shift of the convention.  Pixel coordinates are 0-based.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Transform:
    """Similarity transform from frame pixels to reference pixels.

    Parameters
    ----------
    dx, dy : float
        Translation in pixels, ``x_reference - x_frame`` at the centre.
    rotation_deg : float
        Rotation in degrees, counter-clockwise in the pixel plane.
    scale : float
        Scale factor (1 for the same plate scale).
    cx, cy : float
        Centre of rotation and scale, in 0-based pixels.
    """

    dx: float
    dy: float
    rotation_deg: float = 0.0
    scale: float = 1.0
    cx: float = 0.0
    cy: float = 0.0

    @property
    def is_translation(self) -> bool:
        """True when the transform is a pure shift."""
        return self.rotation_deg == 0.0 and self.scale == 1.0

    def matrix(self) -> np.ndarray:
        """The 2x2 linear part acting on ``(x - cx, y - cy)``."""
        t = math.radians(self.rotation_deg)
        c, s = math.cos(t) * self.scale, math.sin(t) * self.scale
        return np.array([[c, -s], [s, c]])

    def apply(self, x, y):
        """Map frame coordinates to reference coordinates.

        Parameters
        ----------
        x, y : array_like
            0-based pixel coordinates in the frame.

        Returns
        -------
        xr, yr : numpy.ndarray
            The same points in reference pixel coordinates.
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        m = self.matrix()
        u, v = x - self.cx, y - self.cy
        return (self.cx + m[0, 0] * u + m[0, 1] * v + self.dx,
                self.cy + m[1, 0] * u + m[1, 1] * v + self.dy)

    def map_xy(self, xy) -> np.ndarray:
        """Map an (n, 2) array of frame positions to an (n, 2) array of reference positions."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        xr, yr = self.apply(xy[:, 0], xy[:, 1])
        return np.column_stack([xr, yr])

    @classmethod
    def from_complex(cls, a: complex, zm: complex, vm: complex, cx: float, cy: float) -> "Transform":
        """The transform about ``(cx, cy)`` written in complex form as ``v = a (z - zm) + vm``.

        ``z = x + iy`` is a frame position and ``v`` a reference position; ``a`` is
        ``scale * exp(i rotation)``, the form least-squares similarity fits produce.
        """
        c = cx + 1j * cy
        t = vm - c - a * (zm - c)
        return cls(float(t.real), float(t.imag), math.degrees(math.atan2(a.imag, a.real)), float(abs(a)),
                   float(cx), float(cy))

    def inverse_apply(self, xr, yr):
        """Map reference coordinates back to frame coordinates."""
        xr = np.asarray(xr, dtype=float)
        yr = np.asarray(yr, dtype=float)
        minv = np.linalg.inv(self.matrix())
        u, v = xr - self.cx - self.dx, yr - self.cy - self.dy
        return (self.cx + minv[0, 0] * u + minv[0, 1] * v,
                self.cy + minv[1, 0] * u + minv[1, 1] * v)

    def compose(self, other: "Transform") -> "Transform":
        """The transform ``other`` applied after ``self`` (same centre required)."""
        if (self.cx, self.cy) != (other.cx, other.cy):
            raise ValueError("transforms with different centres cannot be composed")
        m = other.matrix() @ self.matrix()
        t = other.matrix() @ np.array([self.dx, self.dy]) + np.array([other.dx, other.dy])
        return Transform(float(t[0]), float(t[1]),
                         math.degrees(math.atan2(m[1, 0], m[0, 0])),
                         float(math.hypot(m[0, 0], m[1, 0])), self.cx, self.cy)
