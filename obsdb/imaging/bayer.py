"""Colour (Bayer) sensors: which frames are mosaics, a grey image to measure them on, and demosaicing.

A one-shot colour camera puts a 2x2 filter pattern over its pixels (``RGGB``
and its three shifts).  Measured as a grey image, every star is modulated by
that checkerboard: centroids and shapes are biased and a cubic spline carries
the checkerboard into every output.  Stars are therefore found and measured
on the 2x2 *superpixel* image (each superpixel the sum of one R, two G and
one B pixel: a full-colour sample at half the resolution), and positions are
mapped back to full resolution; outputs are demosaiced (bilinear) before they
are resampled.
"""

from __future__ import annotations

import numpy as np

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
"""The 2x2 patterns, read left to right, top (first row of the array) to bottom."""

RESPONSE = {"R": 0.55, "G": 1.0, "B": 0.75}
"""Relative channel sensitivities the simulator gives a colour sensor (a sky lit evenly)."""


def cfa_pattern(header) -> str | None:
    """The frame's Bayer pattern from BAYERPAT (or COLORTYP, BAYER), or None for a grey sensor.

    Parameters
    ----------
    header : mapping
        The frame's header (astropy Header or a dict).

    Raises
    ------
    ValueError
        For a value that names no 2x2 pattern.
    """
    for key in ("BAYERPAT", "COLORTYP", "BAYER"):
        value = header.get(key) if hasattr(header, "get") else None
        if value is None or value is False:
            continue
        text = str(value).strip().upper()
        if text in ("", "NONE", "MONO", "GREY", "GRAY", "F", "FALSE"):
            return None
        if text in PATTERNS:
            return text
        raise ValueError(f"{key} = {value!r}: not a Bayer pattern (expected one of {', '.join(PATTERNS)})")
    return None


def cfa_pattern_or_none(header) -> str | None:
    """:func:`cfa_pattern`, with a value that names no pattern taken as grey (the header keeps it)."""
    try:
        return cfa_pattern(header)
    except ValueError:
        return None


def superpixels(data) -> np.ndarray:
    """The 2x2 superpixel image (half the size; an odd last row or column is dropped)."""
    img = np.asarray(data, dtype=np.float32)
    ny, nx = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    img = img[:ny, :nx]
    return img[0::2, 0::2] + img[0::2, 1::2] + img[1::2, 0::2] + img[1::2, 1::2]


def stars_to_full_resolution(stars: np.ndarray) -> np.ndarray:
    """Star positions and sizes measured on :func:`superpixels`, in full-resolution pixels.

    Superpixel ``(X, Y)`` covers full-resolution pixels ``2X .. 2X+1``: its
    centre is at ``2X + 0.5``.  Lengths (FWHM, HFD, axes) double; fluxes stay.
    """
    out = np.array(stars, copy=True)
    for name in ("x", "y"):
        out[name] = 2.0 * out[name] + 0.5
    for name in ("a", "b", "fwhm", "hfd"):
        if name in out.dtype.names:
            out[name] = 2.0 * out[name]
    return out


def channel_masks(shape, pattern: str) -> dict[str, np.ndarray]:
    """Boolean masks of the R, G and B pixels of a mosaic of ``shape``."""
    ny, nx = shape
    masks = {c: np.zeros(shape, dtype=bool) for c in "RGB"}
    for index, channel in enumerate(pattern):
        dy, dx = divmod(index, 2)
        masks[channel][dy::2, dx::2] = True
    return masks


def demosaic(data, pattern: str) -> dict[str, np.ndarray]:
    """Bilinear demosaicing: full-resolution R, G and B planes (float32).

    Each plane keeps its measured pixels and fills the others with the mean
    of the nearest pixels of that colour (normalised convolution, so edges
    and NaN pixels are handled alike).
    """
    from scipy import ndimage

    img = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(img)
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32)
    planes = {}
    for channel, mask in channel_masks(img.shape, pattern).items():
        have = mask & finite
        values = ndimage.convolve(np.where(have, img, 0.0).astype(np.float32), kernel, mode="mirror")
        weights = ndimage.convolve(have.astype(np.float32), kernel, mode="mirror")
        with np.errstate(invalid="ignore", divide="ignore"):
            plane = np.where(weights > 0, values / weights, np.nan).astype(np.float32)
        plane[have] = img[have]
        planes[channel] = plane
    return planes


def luminance(data, pattern: str) -> np.ndarray:
    """A grey full-resolution image of a mosaic: the mean of its demosaiced R, G and B planes."""
    planes = demosaic(data, pattern)
    return ((planes["R"] + planes["G"] + planes["B"]) / np.float32(3.0)).astype(np.float32)


def mosaic_response(shape, pattern: str) -> np.ndarray:
    """The per-pixel sensitivity of a colour sensor (:data:`RESPONSE`), for the simulator."""
    response = np.zeros(shape, dtype=np.float32)
    for channel, mask in channel_masks(shape, pattern).items():
        response[mask] = RESPONSE[channel]
    return response
