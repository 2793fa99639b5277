"""PNG previews and thumbnails of frames and stacks, and zooms on a few stars.

Grey images, block-averaged down to a bounded size, written atomically.
Frames are shown with a zscale stretch (the sky and faint stars, as ds9
shows them), stacks with an asinh one (faint outskirts and bright cores
both visible, as astronomers show deep images).  Pictures are drawn with Pillow (a matplotlib figure per
picture cost more than the pixels), so nothing here touches pyplot's global state or needs a display.
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
    from PIL import Image

    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")
    small = _reduced(data, max_size)
    ny, nx = small.shape

    finite = np.isfinite(small)
    rgb = np.empty((ny, nx, 3), dtype=np.uint8)
    if finite.any():
        # Truncated, as matplotlib turned [0, 1] into bytes when it drew these.
        rgb[...] = (_grey(small, finite, stretch) * 255).astype(np.uint8)[..., None]
    rgb[~finite] = (np.array(NAN_COLOUR) * 255).astype(np.uint8)
    # Row 0 at the bottom, as ds9 and most FITS viewers show it.  Drawn with Pillow: a matplotlib
    # figure per thumbnail cost more than reading the frame.
    picture = Image.fromarray(np.ascontiguousarray(rgb[::-1]))
    if title:
        _draw_title(picture, title)
    if badge:
        _draw_badge(picture, badge, below_title=bool(title))
    buffer = io.BytesIO()
    picture.save(buffer, format="png", compress_level=STACK_PNG_COMPRESSION)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _draw_title(picture, title: str) -> None:
    """The title in white in a black box at 60 % opacity, its corner 1 % of the size in from the top left."""
    from PIL import Image, ImageDraw

    nx, ny = picture.size
    # A font of min(ny, nx) / 22 px (5 at least), with a 2 pt margin.
    font = _title_font(max(5.0, min(ny, nx) / 22))
    pad = 2 * _DPI / 72
    x0, y0 = 0.01 * nx, 0.01 * ny
    left, _, right, _ = ImageDraw.Draw(picture).textbbox((x0, y0), title, font=font)
    ascent, descent = font.getmetrics()
    overlay = Image.new("L", picture.size, 0)
    # The box spans the font's whole line (ascent + descent), as matplotlib's does, whatever the glyphs.
    ImageDraw.Draw(overlay).rectangle((round(left - pad), round(y0 - pad), round(right + pad),
                                       round(y0 + ascent + descent + pad)),
                                      fill=round(255 * _TITLE_BOX_ALPHA))
    picture.paste(Image.new("RGB", picture.size, (0, 0, 0)), mask=overlay)
    ImageDraw.Draw(picture).text((x0, y0), title, font=font, fill=(255, 255, 255))


def _draw_badge(picture, badge: str, *, below_title: bool) -> None:
    """A rejection reason in bold white on a red box with a white edge, in the top-right corner."""
    from PIL import ImageDraw

    nx, ny = picture.size
    font = _title_font(1.2 * max(5.0, min(ny, nx) / 22), bold=True)
    pad = 3 * _DPI / 72
    right, top = 0.98 * nx, (0.10 if below_title else 0.02) * ny
    draw = ImageDraw.Draw(picture)
    left, _, text_right, _ = draw.textbbox((right, top + pad), badge, font=font, anchor="ra")
    ascent, descent = font.getmetrics()
    draw.rectangle((round(left - 2 * pad), round(top), round(text_right), round(top + ascent + descent + 2 * pad)),
                   fill=_BADGE_COLOUR, outline=(255, 255, 255))
    draw.text((right - pad, top + pad), badge, font=font, fill=(255, 255, 255), anchor="ra")


STACK_PNG_COMPRESSION = 1
"""zlib level of stack previews: noisy 1024 x 1024 images take ~6x longer at Pillow's default (6) and come
out larger, not smaller."""

_TITLE_BOX_ALPHA = 0.6


def write_stack_preview_png(path: str | os.PathLike, data, *, max_size: int = 1024,
                            title: str | None = None) -> Path:
    """Write a stack's grey PNG preview (zscale), as :func:`write_preview_png` draws it, without matplotlib's figures.

    Same pixels as :func:`write_preview_png` (same block average, stretch and
    :data:`NAN_COLOUR`, row 0 at the bottom) and the title in a translucent
    black box in the top-left corner, drawn with Pillow.  Running
    matplotlib's figure machinery once per stack took longer than the median
    stack itself.  The zscale limits are :func:`obsdb.imaging.stretch.zscale_limits`, as
    :func:`write_preview_png` uses them.

    Parameters
    ----------
    path : path-like
        Destination ``.png``; written via a temporary file and a rename.
    data : array_like, 2-D
        The stack; NaN (and inf) are shown in :data:`NAN_COLOUR`.
    max_size : int
        Longest side of the PNG in pixels (block-averaged by the smallest integer factor that fits).
    title : str, optional
        Text along the top edge.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Not a 2-D image or ``max_size`` < 1.
    """
    from PIL import Image

    from obsdb.imaging.stretch import zscale_limits

    small = _reduced(data, max_size)
    ny, nx = small.shape
    finite = np.isfinite(small)
    rgb = np.empty((ny, nx, 3), dtype=np.uint8)
    if finite.any():
        # Truncated, as matplotlib turns [0, 1] into bytes.
        vmin, vmax = zscale_limits(small[finite])
        span = vmax - vmin if vmax > vmin else 1.0
        grey = np.clip((np.where(finite, small, vmin) - vmin) / span, 0.0, 1.0)
        rgb[...] = (grey * 255).astype(np.uint8)[..., None]
    rgb[~finite] = (np.array(NAN_COLOUR) * 255).astype(np.uint8)
    # Row 0 at the bottom, as ds9 and most FITS viewers show it.
    picture = Image.fromarray(np.ascontiguousarray(rgb[::-1]))
    if title:
        _draw_title(picture, title)
    buffer = io.BytesIO()
    picture.save(buffer, format="png", compress_level=STACK_PNG_COMPRESSION)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _title_font(size_px: float, *, bold: bool = False):
    """DejaVu Sans (matplotlib's default face, found without importing matplotlib) at a pixel size."""
    from importlib.util import find_spec

    from PIL import ImageFont

    spec = find_spec("matplotlib")
    if spec is not None and spec.origin:
        face = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / f"DejaVuSans{'-Bold' if bold else ''}.ttf"
        if face.is_file():
            return ImageFont.truetype(str(face), size=max(1, round(size_px)))
    return ImageFont.load_default(size=max(1, round(size_px)))


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
    return _grey_with(image, finite, image[finite], stretch)


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
    from PIL import Image, ImageDraw

    from obsdb.imaging.stretch import asinh_stretch

    image = np.asarray(data)
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
    # Drawn with Pillow: a matplotlib figure per frame took ~90 ms of the report's time (1.8 s of the
    # demo's), for a few nearest-neighbour enlargements and captions.
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    font = _title_font(ZOOM_CAPTION_PX) if labels else None
    nan_rgb = (np.array(NAN_COLOUR) * 255).astype(np.uint8)
    ny, nx = image.shape
    for i, (x, y) in enumerate(stars):
        cx, cy = int(round(x)), int(round(y))
        cut = np.full((side, side), np.nan)
        x0, y0 = cx - half, cy - half
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, nx), min(y0 + side, ny)
        if sx0 < sx1 and sy0 < sy1:
            cut[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
        finite = np.isfinite(cut)
        rgb = np.empty((side, side, 3), dtype=np.uint8)
        rgb[...] = nan_rgb
        if finite.any():
            low, high = float(np.median(cut[finite])), float(cut[finite].max())
            span = high - low if high > low else 1.0
            grey = asinh_stretch(np.clip((np.where(finite, cut, low) - low) / span, 0, 1), 0.1)
            rgb[finite] = (grey[finite] * 255).astype(np.uint8)[:, None]
        # Row 0 at the bottom; each image pixel a scale x scale block, so pixels stay visible.
        block = np.repeat(np.repeat(rgb[::-1], scale, axis=0), scale, axis=1)
        left = gap + i * (cell + gap)
        picture.paste(Image.fromarray(np.ascontiguousarray(block)), (left, gap))
        draw.rectangle((left - 1, gap - 1, left + cell, gap + cell), outline=(0, 0, 0))
        if labels:
            draw.multiline_text((left + cell / 2, gap + cell + 4), str(labels[i]), font=font, fill=(0x1d, 0x23, 0x2b),
                                anchor="ma", align="center", spacing=ZOOM_CAPTION_PX * 0.2)
    buffer = io.BytesIO()
    picture.save(buffer, format="png", compress_level=STACK_PNG_COMPRESSION)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


ZOOM_CAPTION_PX = 12.5
"""Caption size of the star zooms, px (9 pt at 100 dpi, as the matplotlib figures had them)."""


def _reduced(data, max_size: int) -> np.ndarray:
    """A 2-D image as float64, block-averaged to at most ``max_size`` pixels on a side (checked first)."""
    image = np.asarray(data, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preview needs a non-empty 2-D image, got shape {image.shape}")
    if max_size < 1:
        raise ValueError(f"max_size must be positive, got {max_size}")
    return _block_average(image, math.ceil(max(image.shape) / max_size))


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


def aligned_preview(data, transform, reference_shape: tuple[int, int], *, max_size: int = 1024) -> np.ndarray:
    """A frame on its reference's preview grid: the pixels a blink shows against the reference's preview.

    The frame is block-averaged by the factor the reference's own preview uses
    (:func:`write_preview_png` with the same ``max_size``), then resampled
    (bilinear) with the frame -> reference transform expressed on that coarser
    grid, so preview pixel ``(i, j)`` of both covers the same sky.

    Parameters
    ----------
    data : array_like, 2-D
        The frame (NaN: no data); not modified.
    transform : obsdb.imaging.transform.Transform
        Frame pixels -> reference pixels (full resolution), as render applies it.
    reference_shape : (int, int)
        The reference frame's ``(ny, nx)``.
    max_size : int
        The longest side of the reference's preview.

    Returns
    -------
    numpy.ndarray of float32
        ``ceil(ny / f) x ceil(nx / f)`` pixels (``f`` the reference preview's block factor), NaN where
        the frame has no data; give it to :func:`write_preview_png` with the same ``max_size``.

    Raises
    ------
    ValueError
        Not a 2-D image, an empty reference shape or ``max_size`` < 1.
    """
    from obsdb.imaging.resample import resample
    from obsdb.imaging.transform import Transform

    ny, nx = (int(n) for n in reference_shape)
    if ny < 1 or nx < 1:
        raise ValueError(f"reference shape must be positive, got {reference_shape!r}")
    if max_size < 1:
        raise ValueError(f"max_size must be positive, got {max_size}")
    image = np.asarray(data, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preview needs a non-empty 2-D image, got shape {image.shape}")
    factor = math.ceil(max(ny, nx) / max_size)
    small = _block_average(image, factor)
    # Block k covers pixels k*f .. k*f + f - 1: full-resolution x is f * u + (f - 1) / 2 on the block grid,
    # so the same mapping there has translation / f about the centre moved the same way.
    half = (factor - 1) / 2.0
    coarse = Transform(transform.dx / factor, transform.dy / factor, transform.rotation_deg, transform.scale,
                       (transform.cx - half) / factor, (transform.cy - half) / factor)
    aligned, _ = resample(small, coarse, interpolation="linear",
                          shape=(math.ceil(ny / factor), math.ceil(nx / factor)))
    return aligned


CROP_MAX_SIDE = 4096
"""The largest 1:1 crop served (pixels on a side): a window of a very wide screen, not a whole mosaic."""


def crop_window(data, x: float, y: float, width: int, height: int, transform=None) -> np.ndarray:
    """Full-resolution pixels of a ``width`` x ``height`` window centred on ``(x, y)``.

    Parameters
    ----------
    data : array_like, 2-D
        The frame; not modified.
    x, y : float
        The window's centre, 0-based pixels (x = column); on the reference's grid when ``transform``
        is given.
    width, height : int
        The window's size, 1 to :data:`CROP_MAX_SIDE`.
    transform : obsdb.imaging.transform.Transform, optional
        Frame -> reference: the window is then cut from the frame resampled (bilinear) onto the
        reference's grid, at the reference's place, computed for the window's pixels only.

    Returns
    -------
    numpy.ndarray of float64
        ``height`` x ``width``, row 0 the window's lowest row; NaN beyond the frame.

    Raises
    ------
    ValueError
        Not a 2-D image, or a size out of range.
    """
    from scipy import ndimage

    image = np.asarray(data)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"crop needs a non-empty 2-D image, got shape {image.shape}")
    width, height = int(width), int(height)
    if not (1 <= width <= CROP_MAX_SIDE and 1 <= height <= CROP_MAX_SIDE):
        raise ValueError(f"crop size must be 1 to {CROP_MAX_SIDE} pixels a side, got {width} x {height}")
    ny, nx = image.shape
    x0, y0 = int(round(x)) - width // 2, int(round(y)) - height // 2
    out = np.full((height, width), np.nan)
    if transform is None:
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + width, nx), min(y0 + height, ny)
        if sx0 < sx1 and sy0 < sy1:
            out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
        return out
    rows, cols = np.mgrid[y0:y0 + height, x0:x0 + width]
    src_x, src_y = transform.inverse_apply(cols, rows)
    inside = (src_x >= 0) & (src_x <= nx - 1) & (src_y >= 0) & (src_y <= ny - 1)
    if not inside.any():
        return out
    # Only the part of the frame the window reads (plus the interpolation's neighbour) is converted.
    bx0, bx1 = int(math.floor(src_x[inside].min())), int(math.ceil(src_x[inside].max())) + 1
    by0, by1 = int(math.floor(src_y[inside].min())), int(math.ceil(src_y[inside].max())) + 1
    part = np.asarray(image[by0:by1, bx0:bx1], dtype=np.float64)
    out[inside] = ndimage.map_coordinates(part, [src_y[inside] - by0, src_x[inside] - bx0], order=1,
                                          mode="nearest", prefilter=False)
    return out


def crop_png_bytes(data, x: float, y: float, width: int, height: int, *, transform=None,
                   stretch: str = "zscale") -> bytes:
    """A 1:1 crop as grey PNG bytes, stretched as the frame's whole preview is (limits from the whole frame).

    Parameters
    ----------
    data, x, y, width, height, transform
        As :func:`crop_window`.
    stretch : {"zscale", "asinh"}
        As :func:`write_preview_png`; the limits come from the whole frame, so the crop's grey levels match
        the large preview's.

    Returns
    -------
    bytes
        The PNG (8-bit grey, or RGB when pixels without data show in :data:`NAN_COLOUR`), row 0 at the bottom.

    Raises
    ------
    ValueError
        As :func:`crop_window`, or an unknown stretch.
    """
    from PIL import Image

    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")
    window = crop_window(data, x, y, width, height, transform)
    image = np.asarray(data)
    # A sample of the whole frame sets the stretch, as _grey's limits would on the preview.
    step = max(1, int(math.sqrt(image.size / 250_000)))
    sample = np.asarray(image[::step, ::step], dtype=np.float64)
    finite_sample = np.isfinite(sample)
    finite = np.isfinite(window)
    grey = np.zeros(window.shape)
    if finite_sample.any():
        grey = _grey_with(window, finite, sample[finite_sample], stretch)
    levels = (grey * 255).astype(np.uint8)
    if finite.all():
        picture = Image.fromarray(np.ascontiguousarray(levels[::-1]), mode="L")
    else:
        rgb = np.repeat(levels[..., None], 3, axis=2)
        rgb[~finite] = (np.array(NAN_COLOUR) * 255).astype(np.uint8)
        picture = Image.fromarray(np.ascontiguousarray(rgb[::-1]), mode="RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _grey_with(image: np.ndarray, finite: np.ndarray, values: np.ndarray, stretch: str) -> np.ndarray:
    """:func:`_grey` with the stretch's limits taken from ``values`` (finite) rather than the image itself."""
    from obsdb.imaging.stretch import asinh_stretch, zscale_limits

    vmin, vmax = zscale_limits(values)
    if stretch == "asinh":
        vmax = max(float(np.percentile(values, ASINH_TOP_PERCENTILE)), vmax)
    span = vmax - vmin if vmax > vmin else 1.0
    grey = np.clip((np.where(finite, image, vmin) - vmin) / span, 0.0, 1.0)
    if stretch == "asinh":
        grey = asinh_stretch(grey, ASINH_SOFTENING)
    return grey
