"""Calibration arithmetic on arrays and headers: overscan, trim, combine, and the keys a master is
matched by.  Pure functions (no catalog, no files).

The steps follow ccdproc's (``subtract_overscan``, ``trim_image``, ``combine`` with sigma clipping)
written with numpy and astropy, so that obsdb does not depend on ccdproc: FITS sections are 1-based,
inclusive and x first (``[x0:x1,y0:y1]``); the overscan is reduced to one value per read-out line by
its median, as ``subtract_overscan(median=True)`` does without a model.
"""

from __future__ import annotations

import re

import numpy as np

MASTER_VERSION = "masters-1"
"""Version of the master builder (overscan, trim, combine, normalisation): stored with each master."""

CLIP_SIGMA = 3.0
"""Sigma-clipping threshold of the combine, each side, in robust standard deviations (1.4826 x MAD)
about the median."""

CLIP_STDFUNC = "mad_std, floored at the band's typical std"
"""The scatter the clipping measures in (see :func:`_clip_scatter`).  Not ccdproc's default (the
plain standard deviation of each pixel's values): with n frames no value can lie more than
(n - 1) / sqrt(n) standard deviations from the mean, 2.04 for 6 frames, so a 3-sigma clip with the
plain std never rejects anything in the small sets a night gives (6 bias, 4 flats).  The MAD is not
inflated by the outlier it is meant to find, but of 6 integer ADU values it is often 0, which would
clip every value off the median: it is floored at the median over the band's pixels of their plain
std (the set's typical noise, which one outlier pixel cannot move)."""

CLIP_ITERS = 5
"""Iterations of the sigma clipping at most."""

COMBINE_ROWS = 256
"""Rows combined at once: the stack held in memory is ``n_frames x COMBINE_ROWS x width`` float32
(20 frames of 2048 columns: 40 MiB), whatever the frame height."""

TEMPERATURE_KEYS = ("CCD-TEMP", "CCD_TEMP", "CCDTEMP", "DETTEMP", "DET-TEMP", "TEMPERAT")
"""Header cards that give the detector temperature, C, in order of preference."""

READOUT_KEYS = ("READOUTM", "READMODE", "CAMMODE", "NUMAMP", "GAIN", "OFFSET", "RDSPEED")
"""Header cards a master and a light must share exactly (with the binning): read-out mode, gain and
offset settings.  Measured values (EGAIN, RDNOISE) are not here: they vary in the last digits."""

_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


def parse_section(text: str | None, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """A FITS section ``[x0:x1,y0:y1]`` (1-based, inclusive) as numpy ``(rows, columns)`` slices.

    Parameters
    ----------
    text : str or None
        The card's value, e.g. ``'[18:1382,1:1370]'``.
    shape : (int, int)
        The image's (height, width): the section must lie within it.

    Returns
    -------
    (slice, slice) or None
        None when ``text`` is empty.

    Raises
    ------
    ValueError
        When the text is not a section, or the section is reversed or outside the image.
    """
    if text is None or not str(text).strip():
        return None
    match = _SECTION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a FITS section [x0:x1,y0:y1]")
    x0, x1, y0, y1 = (int(v) for v in match.groups())
    height, width = shape
    if not (1 <= x0 <= x1 <= width and 1 <= y0 <= y1 <= height):
        raise ValueError(f"section {text} lies outside the {width}x{height} image (or is reversed)")
    return slice(y0 - 1, y1), slice(x0 - 1, x1)


def subtract_overscan(data: np.ndarray, biassec: tuple[slice, slice]) -> np.ndarray:
    """``data`` less its overscan: one median per read-out line, as ccdproc's
    ``subtract_overscan(median=True, model=None)``.

    The overscan region's long axis runs along the read-out lines' direction across: columns of
    overscan (taller than wide) give one value per row, rows of overscan one per column.

    Returns
    -------
    numpy.ndarray
        float32, the same shape as ``data``.
    """
    data = np.asarray(data, dtype=np.float32)
    region = data[biassec]
    if region.shape[0] >= region.shape[1]:
        level = np.median(region, axis=1)                 # one per row
        rows = np.arange(data.shape[0])[biassec[0]]
        out = data.copy()
        out[rows, :] -= level[:, None]
        # Rows outside the overscan's own rows (rare) take its overall median.
        if len(rows) != data.shape[0]:
            mask = np.ones(data.shape[0], bool)
            mask[rows] = False
            out[mask, :] -= np.median(level)
        return out
    level = np.median(region, axis=0)                     # one per column
    columns = np.arange(data.shape[1])[biassec[1]]
    out = data.copy()
    out[:, columns] -= level[None, :]
    if len(columns) != data.shape[1]:
        mask = np.ones(data.shape[1], bool)
        mask[columns] = False
        out[:, mask] -= np.median(level)
    return out


def trim(data: np.ndarray, trimsec: tuple[slice, slice] | None) -> np.ndarray:
    """The ``trimsec`` part of ``data`` (all of it when None), as ccdproc's ``trim_image``."""
    return data if trimsec is None else data[trimsec]


def overscan_and_trim(data: np.ndarray, header) -> tuple[np.ndarray, dict]:
    """Overscan-subtract (BIASSEC) and trim (TRIMSEC, else DATASEC) a raw frame from its header cards.

    Returns
    -------
    (numpy.ndarray, dict)
        The float32 image, and what was done: ``biassec``, ``trimsec`` (the cards' text or None) and
        ``overscan`` (median overscan level subtracted, ADU, or None).

    Raises
    ------
    ValueError
        A card that is not a usable section, naming it.
    """
    shape = np.shape(data)
    info: dict = {"biassec": None, "trimsec": None, "overscan": None}
    out = np.asarray(data, dtype=np.float32)
    bias_text = header.get("BIASSEC") if header is not None else None
    try:
        biassec = parse_section(bias_text, shape)
    except ValueError as exc:
        raise ValueError(f"BIASSEC: {exc}") from None
    if biassec is not None:
        info["overscan"] = float(np.median(out[biassec]))
        out = subtract_overscan(out, biassec)
        info["biassec"] = str(bias_text).strip()
    trim_card = "TRIMSEC" if header is not None and header.get("TRIMSEC") else "DATASEC"
    trim_text = header.get(trim_card) if header is not None else None
    try:
        trimsec = parse_section(trim_text, shape)
    except ValueError as exc:
        raise ValueError(f"{trim_card}: {exc}") from None
    if trimsec is not None:
        out = trim(out, trimsec)
        info["trimsec"] = str(trim_text).strip()
    return out, info


def combine(frames, *, sigma: float = CLIP_SIGMA, maxiters: int = CLIP_ITERS,
            rows: int = COMBINE_ROWS) -> tuple[np.ndarray, int]:
    """The sigma-clipped median of a stack, pixel by pixel, a band of rows at a time.

    Each pixel's values across the frames are clipped at ``sigma`` scatters from the median of the
    values kept (iterated, as astropy's ``sigma_clip`` and ccdproc's ``Combiner.sigma_clipping`` with
    a median centre), then their median is taken.  The scatter differs from ccdproc's default std:
    see :data:`CLIP_STDFUNC`.

    Parameters
    ----------
    frames : sequence of 2-D arrays of one shape
        The inputs (arrays, or memory maps: only ``rows`` rows of each are read at a time).

    Returns
    -------
    (numpy.ndarray, int)
        The float32 master and the number of pixel values the clipping rejected.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("nothing to combine")
    shape = np.shape(frames[0])
    if any(np.shape(f) != shape for f in frames):
        raise ValueError(f"frames of different shapes: {sorted({np.shape(f) for f in frames})}")
    out = np.empty(shape, dtype=np.float32)
    rejected = 0
    for start in range(0, shape[0], rows):
        stack = np.stack([np.asarray(f[start:start + rows], dtype=np.float32) for f in frames])
        if len(frames) < 3:
            out[start:start + rows] = np.median(stack, axis=0)   # nothing to clip against
            continue
        out[start:start + rows], clipped = _clipped_median(stack, sigma, maxiters)
        rejected += clipped
    return out, rejected


def _clip_scatter(stack: np.ndarray) -> np.ndarray:
    """Each pixel's robust scatter across the frames (1.4826 x MAD), never below the median over the
    pixels of their plain standard deviation (:data:`CLIP_STDFUNC`)."""
    from astropy.stats import mad_std

    robust = mad_std(stack, axis=0)
    floor = float(np.median(np.std(stack, axis=0)))
    return np.maximum(robust, floor)


def _nanmedian0(stack: np.ndarray) -> np.ndarray:
    """``np.nanmedian(stack, axis=0)`` for a few frames, by one sort (NaN sort last): numpy's own
    takes a slow path for NaN-holding stacks.  NaN where a pixel has no value."""
    ordered = np.sort(stack, axis=0)
    count = np.count_nonzero(~np.isnan(stack), axis=0)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0)[None], axis=0)[0]
    median = (low + high) / 2
    return np.where(count > 0, median, np.nan)


def _clipped_median(stack: np.ndarray, sigma: float, maxiters: int) -> tuple[np.ndarray, int]:
    """Median of each pixel's values after clipping those beyond ``sigma`` scatters from the median
    of the values kept, iterated until nothing changes (the scatter is measured once, on all values:
    an iterated MAD of 4 values shrinks towards nothing)."""
    if np.isnan(stack).any():
        stack = np.where(np.isnan(stack), _nanmedian0(stack), stack)  # a NaN input pixel
    limit = sigma * _clip_scatter(stack)
    center = np.median(stack, axis=0)
    bad = np.zeros(stack.shape, bool)
    for _ in range(maxiters):
        now = np.abs(stack - center) > limit
        if np.array_equal(now, bad):
            break
        bad = now
        center = _nanmedian0(np.where(bad, np.nan, stack))
    # Where every value was clipped (impossible for a symmetric clip about a median), the plain median.
    center = np.where(np.isnan(center), np.median(stack, axis=0), center)
    return center.astype(np.float32), int(np.count_nonzero(bad))


def robust_noise(data: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the finite pixels (a Gaussian's sigma)."""
    from astropy.stats import mad_std

    values = np.asarray(data, dtype=np.float32)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan")
    return float(mad_std(values))


def ccd_temperature(header) -> float | None:
    """The detector temperature from the first of :data:`TEMPERATURE_KEYS` that holds a number, C."""
    for key in TEMPERATURE_KEYS:
        value = (header or {}).get(key)
        try:
            if value is not None and str(value).strip() != "":
                number = float(value)
                if np.isfinite(number):
                    return number
        except (TypeError, ValueError):
            continue
    return None


def readout_key(header, binning: tuple[int | None, int | None] = (None, None)) -> str:
    """The read-out settings a master and a light must share: binning and :data:`READOUT_KEYS`.

    E.g. ``'bin=3x3|CAMMODE=Single|NUMAMP=1'``; cards absent from the header are left out (so a camera
    that writes none of them is keyed by its binning alone).
    """
    bx, by = binning
    parts = [f"bin={bx or 1}x{by or 1}"]
    for key in READOUT_KEYS:
        value = (header or {}).get(key)
        if value is not None and str(value).strip() != "":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            parts.append(f"{key}={str(value).strip()}")
    return "|".join(parts)


FLAT_FLOOR = 0.05
"""Flat values below this (dead or fully vignetted pixels) give NaN rather than a huge quotient."""


def apply_calibration(raw: np.ndarray, header, *, bias: np.ndarray | None = None,
                      dark: np.ndarray | None = None, dark_scale: float = 1.0,
                      flat: np.ndarray | None = None) -> np.ndarray:
    """A raw light calibrated in memory: overscan and trim (from its header), less the master bias,
    less the master dark times ``dark_scale``, divided by the master flat.

    Returns
    -------
    numpy.ndarray
        float32; NaN where the flat is below :data:`FLAT_FLOOR`.

    Raises
    ------
    ValueError
        A master whose shape differs from the light's after trim, naming both shapes.
    """
    data, _ = overscan_and_trim(raw, header)
    for name, master in (("bias", bias), ("dark", dark), ("flat", flat)):
        if master is not None and np.shape(master) != data.shape:
            raise ValueError(f"master {name} is {np.shape(master)}, the light {data.shape} after trim")
    if bias is not None:
        data = data - np.asarray(bias, dtype=np.float32)
    if dark is not None:
        data = data - np.asarray(dark, dtype=np.float32) * np.float32(dark_scale)
    if flat is not None:
        flat = np.asarray(flat, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            data = np.where(flat >= FLAT_FLOOR, data / flat, np.nan).astype(np.float32)
    return data


def large_scale_rms(data: np.ndarray, *, blocks: int = 8) -> float:
    """Relative large-scale structure of a sky: the rms of the medians of ``blocks`` x ``blocks``
    tiles (stars and cosmic rays weigh nothing in a median) over their median."""
    height, width = np.shape(data)
    h, w = height // blocks, width // blocks
    tiles = [np.nanmedian(data[i * h:(i + 1) * h, j * w:(j + 1) * w]) for i in range(blocks) for j in range(blocks)]
    tiles = np.asarray(tiles, dtype=float)
    return float(np.std(tiles) / np.median(tiles))
