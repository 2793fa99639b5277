"""The answer key of a simulated night: :class:`NightTruth`, written as ``truth.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from obsdb.imaging.transform import Transform
from obsdb.simulate.frames import _frame_transform, _sky_to_frame
from obsdb.simulate.model import REFERENCE_EXPTIME, _centre


@dataclass
class NightTruth:
    """What was simulated: the answer key for a night.

    Attributes
    ----------
    reference : int
        Number of the truth reference frame (the first light frame of the night).
    frames : list of dict
        Per-frame truth: number, file, band, group, kind, image_type, dx, dy
        (shift onto the reference, ``x_reference - x_frame``), rotation_deg,
        offset, fwhm, fwhm_x, fwhm_y, ellipticity, background (ADU at the
        frame centre), background_gradient (ADU/px in x and y), transparency,
        trail_length, trail_angle_deg, streaks (satellite streaks: x0, y0,
        x1, y1, width, brightness), exptime, n_cosmic_rays, cosmic_rays,
        date_obs, airmass.
    hot_pixels : list of [x, y]
        Hot pixel positions, the same in every frame.
    size : list of int
        ``[ny, nx]``.
    seed : int or None
        Seed of the night.
    stars : dict
        ``{"x": [...], "y": [...], "flux": [...]}`` in sky pixels, flux in ADU
        for a clear 30 s exposure.
    detector : dict
        gain, read_noise, saturate.
    object_name : str
    directory : str or None
        Folder of the files (set when saved or loaded; not stored).
    """

    reference: int
    frames: list
    hot_pixels: list
    size: list
    seed: object = None
    stars: dict = field(default_factory=lambda: {"x": [], "y": [], "flux": []})
    detector: dict = field(default_factory=dict)
    object_name: str = "NGC3293"
    directory: str | None = None

    def __post_init__(self):
        self._by_number = {int(f["number"]): f for f in self.frames}

    @property
    def numbers(self) -> list[int]:
        """Frame numbers in time order."""
        return [int(f["number"]) for f in self.frames]

    def frame(self, number: int) -> dict:
        """The truth dict of one frame (KeyError if unknown)."""
        try:
            return self._by_number[int(number)]
        except KeyError:
            raise KeyError(f"no frame {number} in this night") from None

    def path(self, number: int) -> Path:
        """Path of a frame's file (relative to :attr:`directory` when known)."""
        name = self.frame(number)["file"]
        return Path(self.directory) / name if self.directory else Path(name)

    def _centre(self):
        return _centre(tuple(self.size))

    def transform(self, number: int, reference: int | None = None) -> Transform:
        """Truth transform from frame pixels to reference pixels.

        Parameters
        ----------
        number : int
            Frame number.
        reference : int, optional
            Reference frame number; default :attr:`reference`.

        Returns
        -------
        Transform
            Centred on the frame centre ``((nx-1)/2, (ny-1)/2)``.
        """
        f = self.frame(number)
        r = self.frame(self.reference if reference is None else reference)
        return _frame_transform(f["offset"], f["rotation_deg"], r["offset"], r["rotation_deg"],
                                self._centre())

    def shift(self, number: int, reference: int | None = None) -> tuple[float, float]:
        """Truth shift ``(dx, dy)`` moving the frame onto the reference (``x_ref - x_frame``)."""
        t = self.transform(number, reference)
        return t.dx, t.dy

    def map_to_reference(self, number: int, x, y, reference: int | None = None):
        """Map frame pixel positions to reference pixel positions.

        Returns
        -------
        xr, yr : numpy.ndarray
        """
        return self.transform(number, reference).apply(x, y)

    def sky_positions_in_frame(self, number: int, margin: float = 0.0):
        """True star centres in a frame.

        Parameters
        ----------
        number : int
            Frame number.
        margin : float
            Keep stars at least this far inside the frame edges (may be negative).

        Returns
        -------
        x, y, flux : numpy.ndarray
            0-based pixel centres (trail midpoints for trailed frames) and the
            total counts of each star in that frame before noise and saturation.
        """
        f = self.frame(number)
        ny, nx = self.size
        sx = np.asarray(self.stars["x"], dtype=float)
        sy = np.asarray(self.stars["y"], dtype=float)
        sf = np.asarray(self.stars["flux"], dtype=float)
        x, y = _sky_to_frame(sx, sy, f["offset"], f["rotation_deg"], self._centre())
        inside = ((x >= -0.5 + margin) & (x <= nx - 0.5 - margin)
                  & (y >= -0.5 + margin) & (y <= ny - 0.5 - margin))
        flux = sf * f["transparency"] * f["exptime"] / REFERENCE_EXPTIME
        if f.get("image_type", "Light Frame") != "Light Frame":
            flux = flux * 0.0
        return x[inside], y[inside], flux[inside]

    def to_dict(self) -> dict:
        """JSON-ready content."""
        return {
            "reference": self.reference,
            "size": list(self.size),
            "seed": self.seed,
            "object_name": self.object_name,
            "detector": self.detector,
            "hot_pixels": self.hot_pixels,
            "frames": self.frames,
            "stars": self.stars,
        }

    def save(self, path) -> Path:
        """Write the truth as JSON (atomically) and return the path."""
        from obsdb.imaging.fitsio import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=1).encode())
        self.directory = str(path.parent)
        return path

    @classmethod
    def load(cls, path) -> "NightTruth":
        """Read a truth JSON written by :meth:`save` (or a folder holding ``truth.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "truth.json"
        d = json.loads(path.read_text())
        return cls(reference=d["reference"], frames=d["frames"], hot_pixels=d["hot_pixels"],
                   size=d["size"], seed=d.get("seed"), stars=d.get("stars", {}),
                   detector=d.get("detector", {}), object_name=d.get("object_name", ""),
                   directory=str(path.parent))
