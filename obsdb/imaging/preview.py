"""PNG previews and thumbnails of frames and stacks, and zooms on a few stars.

Grey images, block-averaged down to a bounded size, written atomically.
Frames are shown with a zscale stretch (the sky and faint stars, as ds9
shows them), stacks with an asinh one (faint outskirts and bright cores
both visible, as astronomers show deep images).  Rendering goes through matplotlib's Agg canvas directly, so
nothing here touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import bottleneck as bn
import numpy as np

from obsdb.imaging.fitsio import atomic_write_bytes

NAN_COLOUR = (0.36, 0.40, 0.48)
"""RGB (0-1) for pixels without data: a muted slate, distinct from any grey."""

_BADGE_COLOUR = "#d62728"
_DPI = 100


STRETCHES = ("zscale", "asinh")
"""Stretches :func:`write_preview_png` knows."""

ASINH_SOFTENING = 0.05
"""``a`` of the asinh stretch: linear below ~5 % of the range, logarithmic above (faint nebulosity visible,
bright cores not burnt out)."""

ASINH_TOP_PERCENTILE = 99.8
"""The white point of the asinh stretch, as a percentile of the finite pixels."""


def write_preview_png(path: str | os.PathLike, data, *, max_size: int = 1024,
                      title: str | None = None, badge: str | None = None, stretch: str = "zscale") -> Path:
    """Write a grey PNG of an image, at most ``max_size`` pixels on a side.

    Parameters
    ----------
    path : path-like
        Destination ``.png``; written via a temporary file and a rename.
    data : array_like, 2-D
        The image; NaN (and inf) are shown in :data:`NAN_COLOUR`.
    max_size : int
        Longest side of the PNG in pixels; larger images are block-averaged
        by the smallest integer factor that fits.
    title : str, optional
        Text along the top edge.
    badge : str, optional
        Short text (e.g. ``"cloud"``) in a red box in the top-right corner,
        for frames that were rejected.
    stretch : {"zscale", "asinh"}
        ``zscale``: linear between the zscale limits (single frames);
        ``asinh``: from the zscale black point to the :data:`ASINH_TOP_PERCENTILE`
        percentile through an asinh curve (stacks).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Not a 2-D image, ``max_size`` < 1, or an unknown stretch.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(data, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preview needs a non-empty 2-D image, got shape {image.shape}")
    if max_size < 1:
        raise ValueError(f"max_size must be positive, got {max_size}")
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")
    small = _block_average(image, math.ceil(max(image.shape) / max_size))
    ny, nx = small.shape

    finite = np.isfinite(small)
    rgb = np.empty((ny, nx, 3), dtype=np.float64)
    if finite.any():
        rgb[...] = _grey(small, finite, stretch)[..., None]
    rgb[~finite] = NAN_COLOUR

    fig = Figure(figsize=(nx / _DPI, ny / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    # Row 0 at the bottom, as ds9 and most FITS viewers show it.
    ax.imshow(rgb, origin="lower", interpolation="nearest", aspect="auto")
    fontsize = max(5.0, min(ny, nx) / 22) * 72 / _DPI
    if title:
        ax.text(0.01, 0.99, title, transform=ax.transAxes, ha="left", va="top",
                fontsize=fontsize, color="white",
                bbox=dict(facecolor="black", alpha=0.6, edgecolor="none", pad=2))
    if badge:
        ax.text(0.98, 0.98 if not title else 0.90, badge, transform=ax.transAxes,
                ha="right", va="top", fontsize=fontsize * 1.2, color="white",
                fontweight="bold",
                bbox=dict(facecolor=_BADGE_COLOUR, edgecolor="white", pad=3))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def thumbnail_png(path: str | os.PathLike, data, size: int = 256,
                  badge: str | None = None) -> Path:
    """Write a small preview, at most ``size`` pixels on a side.

    Parameters
    ----------
    path : path-like
        Destination ``.png``.
    data : array_like, 2-D
        The image.
    size : int
        Longest side in pixels.
    badge : str, optional
        Rejection reason drawn in a red corner box.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_preview_png(path, data, max_size=size, badge=badge)


def _grey(image: np.ndarray, finite: np.ndarray, stretch: str) -> np.ndarray:
    """Grey levels in [0, 1] of an image's pixels under a stretch (NaN pixels get any value)."""
    from astropy.visualization import AsinhStretch, ZScaleInterval

    values = image[finite]
    vmin, vmax = ZScaleInterval().get_limits(values)
    if stretch == "asinh":
        vmax = max(float(np.percentile(values, ASINH_TOP_PERCENTILE)), vmax)
    span = vmax - vmin if vmax > vmin else 1.0
    grey = np.clip((np.where(finite, image, vmin) - vmin) / span, 0.0, 1.0)
    if stretch == "asinh":
        grey = AsinhStretch(a=ASINH_SOFTENING)(grey, clip=True)
    return grey


def write_star_zooms_png(path: str | os.PathLike, data, stars, *, half: int = 12, scale: int = 6,
                         labels=None) -> Path:
    """Write a row of enlarged cut-outs around a few stars, to judge the PSF and the tracking.

    Parameters
    ----------
    path : path-like
        Destination ``.png``; written via a temporary file and a rename.
    data : array_like, 2-D
        The frame; not modified.
    stars : sequence of (x, y)
        0-based pixel positions of the stars (x = column, y = row).
    half : int
        Half-size of each cut-out, pixels: each shows ``2 * half + 1`` pixels on a side.
    scale : int
        Screen pixels per image pixel (nearest-neighbour, so pixels stay visible).
    labels : sequence of str, optional
        One caption per star, under its cut-out.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Not a 2-D image, no star, ``half`` or ``scale`` below 1.

    Notes
    -----
    Each cut-out has its own asinh stretch from its median (the local sky)
    to its brightest pixel, so faint and bright stars both show their wings
    and core; a cut-out reaching beyond the frame edge is padded with
    :data:`NAN_COLOUR`.  Row 0 is at the bottom, as in the thumbnails.
    """
    from astropy.visualization import AsinhStretch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(data, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"star zooms need a non-empty 2-D image, got shape {image.shape}")
    stars = [(float(x), float(y)) for x, y in stars]
    if not stars:
        raise ValueError("star zooms need at least one star")
    if half < 1 or scale < 1:
        raise ValueError(f"half and scale must be positive, got {half} and {scale}")
    side = 2 * half + 1
    cell = side * scale
    caption = 34 if labels else 0
    gap = 10
    width, height = len(stars) * cell + (len(stars) + 1) * gap, cell + caption + 2 * gap
    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    ny, nx = image.shape
    for i, (x, y) in enumerate(stars):
        cx, cy = int(round(x)), int(round(y))
        cut = np.full((side, side), np.nan)
        x0, y0 = cx - half, cy - half
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, nx), min(y0 + side, ny)
        if sx0 < sx1 and sy0 < sy1:
            cut[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
        finite = np.isfinite(cut)
        rgb = np.empty((side, side, 3))
        rgb[...] = NAN_COLOUR
        if finite.any():
            low, high = float(np.median(cut[finite])), float(cut[finite].max())
            span = high - low if high > low else 1.0
            grey = AsinhStretch(a=0.1)(np.clip((np.where(finite, cut, low) - low) / span, 0, 1), clip=True)
            rgb[finite] = grey[finite][:, None]
        left = (gap + i * (cell + gap)) / width
        ax = fig.add_axes((left, (gap + caption) / height, cell / width, cell / height))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.imshow(rgb, origin="lower", interpolation="nearest", aspect="auto")
        if labels:
            fig.text(left + cell / width / 2, (gap + caption - 4) / height, str(labels[i]), ha="center",
                     va="top", fontsize=9, color="#1d232b", linespacing=1.2)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _block_average(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks, ignoring NaN; ragged edges padded."""
    if factor <= 1:
        return image
    ny, nx = image.shape
    py, px = -ny % factor, -nx % factor
    if py or px:
        image = np.pad(image, ((0, py), (0, px)), constant_values=np.nan)
    blocks = image.reshape(image.shape[0] // factor, factor, image.shape[1] // factor, factor)
    blocks = np.where(np.isinf(blocks), np.nan, blocks)
    # A block without any data stays NaN and shows as missing.
    return bn.nanmean(blocks.transpose(0, 2, 1, 3).reshape(*blocks.shape[::2], -1), axis=-1)
