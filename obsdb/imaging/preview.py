"""PNG previews and thumbnails of frames and stacks.

Grey zscale images, block-averaged down to a bounded size, written
atomically.  Rendering goes through matplotlib's Agg canvas directly, so
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


def write_preview_png(path: str | os.PathLike, data, *, max_size: int = 1024,
                      title: str | None = None, badge: str | None = None) -> Path:
    """Write a zscale grey PNG of an image, at most ``max_size`` pixels on a side.

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

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Not a 2-D image, or ``max_size`` < 1.
    """
    from astropy.visualization import ZScaleInterval
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(data, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preview needs a non-empty 2-D image, got shape {image.shape}")
    if max_size < 1:
        raise ValueError(f"max_size must be positive, got {max_size}")
    small = _block_average(image, math.ceil(max(image.shape) / max_size))
    ny, nx = small.shape

    finite = np.isfinite(small)
    rgb = np.empty((ny, nx, 3), dtype=np.float64)
    if finite.any():
        vmin, vmax = ZScaleInterval().get_limits(small[finite])
        span = vmax - vmin if vmax > vmin else 1.0
        grey = np.clip((small - vmin) / span, 0.0, 1.0)
        rgb[...] = grey[..., None]
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
