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

from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES

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


def section_syntax_ok(text: str) -> bool:
    """Whether ``text`` is written as a FITS section ``[x0:x1,y0:y1]`` (its fit to a frame is checked
    where the frame is known, by :func:`parse_section`)."""
    return bool(_SECTION.match(str(text)))


SECTION_CARDS = {"biassec": ("BIASSEC",), "trimsec": ("TRIMSEC", "DATASEC")}
"""The header cards each configured section stands in for: a frame's own cards always win."""


def with_sections(header, sections: dict | None):
    """``header`` with ``sections`` (``biassec``, ``trimsec``: from obsdb.toml, or as a master recorded
    them) filled in where the header gives none of the cards they stand for (:data:`SECTION_CARDS`);
    a copy when anything is added, else ``header`` itself.

    Examples
    --------
    >>> with_sections({"TRIMSEC": "[1:10,1:10]"}, {"biassec": "[11:12,1:10]", "trimsec": "[2:9,1:10]"})
    {'TRIMSEC': '[1:10,1:10]', 'BIASSEC': '[11:12,1:10]'}
    """
    if not sections:
        return header
    added = {}
    for key, cards in SECTION_CARDS.items():
        value = sections.get(key)
        if value and not any(header is not None and header.get(card) for card in cards):
            added[cards[0]] = value
    if not added:
        return header
    header = header.copy() if header is not None else {}
    for card, value in added.items():
        header[card] = value
    return header


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
            rows: int = COMBINE_ROWS, per_input: list | None = None) -> tuple[np.ndarray, int]:
    """The sigma-clipped median of a stack, pixel by pixel, a band of rows at a time.

    Each pixel's values across the frames are clipped at ``sigma`` scatters from the median of the
    values kept (iterated, as astropy's ``sigma_clip`` and ccdproc's ``Combiner.sigma_clipping`` with
    a median centre), then their median is taken.  The scatter differs from ccdproc's default std:
    see :data:`CLIP_STDFUNC`.

    Parameters
    ----------
    frames : sequence of 2-D arrays of one shape
        The inputs (arrays, or memory maps: only ``rows`` rows of each are read at a time).

    per_input : list, optional
        When given, it is filled with the number of pixel values the clipping rejected in each input,
        in the order of ``frames`` (an input with many is unlike the others: a light leak, a
        satellite in a flat).

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
    counts = np.zeros(len(frames), dtype=np.int64)
    for start in range(0, shape[0], rows):
        stack = np.stack([np.asarray(f[start:start + rows], dtype=np.float32) for f in frames])
        if len(frames) < 3:
            out[start:start + rows] = np.median(stack, axis=0)   # nothing to clip against
            continue
        out[start:start + rows], clipped = _clipped_median(stack, sigma, maxiters)
        counts += clipped.reshape(len(frames), -1).sum(axis=1)
    if per_input is not None:
        per_input[:] = [int(c) for c in counts]
    return out, int(counts.sum())


def _clip_scatter(stack: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Each pixel's robust scatter across the frames (1.4826 x MAD about ``center``, its median), never
    below the median over the pixels of their plain standard deviation (:data:`CLIP_STDFUNC`)."""
    import bottleneck as bn

    # astropy's mad_std would do, but re-medians the cube: the median is already at hand here, and
    # bottleneck's is about three times numpy's on a stack of 20 frames.
    robust = 1.4826 * bn.median(np.abs(stack - center), axis=0)
    floor = float(np.median(np.std(stack, axis=0)))
    return np.maximum(robust, floor)


def _clipped_median(stack: np.ndarray, sigma: float, maxiters: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of each pixel's values after clipping those beyond ``sigma`` scatters from the median
    of the values kept, iterated until nothing changes (the scatter is measured once, on all values:
    an iterated MAD of 4 values shrinks towards nothing).  Returns the medians and the mask of the
    clipped values (the stack's shape).

    The medians are bottleneck's (a selection per pixel across the frames: 2-3x numpy's partition
    along the stack's first axis, the same values), and after a clip only the pixels that lost a
    value get a new one: the result is the same as the median of every pixel's kept values."""
    import bottleneck as bn

    if np.isnan(stack).any():
        stack = np.where(np.isnan(stack), bn.nanmedian(stack, axis=0), stack)  # a NaN input pixel
    plain = bn.median(stack, axis=0)
    limit = sigma * _clip_scatter(stack, plain)
    center = plain
    bad = np.zeros(stack.shape, bool)
    for _ in range(maxiters):
        now = np.abs(stack - center) > limit
        if np.array_equal(now, bad):
            break
        bad = now
        # Only pixels with a value clipped have another median than the plain one (a few per cent).
        touched = bad.any(axis=0)
        center = plain.copy()
        center[touched] = bn.nanmedian(np.where(bad[:, touched], np.float32(np.nan), stack[:, touched]), axis=0)
    # Where every value was clipped (impossible for a symmetric clip about a median), the plain median.
    if np.isnan(center).any():
        center = np.where(np.isnan(center), plain, center)
    return center.astype(np.float32), bad


UNLIKE_SIGMA = 6.0
"""A pixel of a raw calibration frame is unlike the previous master when it lies this many of the
expected scatters from it (BANZAI's check of a new bias, dark or flat)."""

UNLIKE_FRACTION = 0.05
"""A raw calibration frame with more than this fraction of its pixels unlike the previous master is
rejected (BANZAI's limit): a light leak, a read-out pattern, a changed dust ring field."""


def pixel_noise(data: np.ndarray) -> float:
    """The pixel-to-pixel noise of an image: the robust scatter of the differences of neighbouring
    columns over sqrt(2).  Unlike :func:`robust_noise`, a gradient, vignetting or a bias pattern
    across the frame does not enter it."""
    values = np.asarray(data, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] < 2:
        return robust_noise(values)
    return robust_noise(np.diff(values, axis=1)) / float(np.sqrt(2.0))


def unlike_master(frame: np.ndarray, master: np.ndarray, *, master_noise: float = 0.0,
                  sigma: float = UNLIKE_SIGMA) -> dict:
    """How much of a prepared calibration frame is unlike a previous master (BANZAI's check).

    The median difference is removed first (a level drift between nights is the set's level check's
    business); a pixel is unlike when the rest lies more than ``sigma`` expected scatters from the
    master, the scatter being the frame's pixel noise (:func:`pixel_noise`) and the master's noise
    added in quadrature.

    Parameters
    ----------
    frame, master : 2-D arrays of one shape
        The frame prepared as its master's members were (overscan, trim, bias and dark subtracted,
        a flat normalised), and the master.
    master_noise : float
        The master's own noise per pixel.

    Returns
    -------
    dict
        ``fraction`` of the finite pixels that are unlike, ``scatter`` (the expected scatter used),
        ``sigma`` and ``pixels`` (how many were compared).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> master = np.zeros((100, 100), np.float32)
    >>> frame = rng.normal(0, 5, master.shape).astype(np.float32)
    >>> unlike_master(frame, master)["fraction"] < 0.001
    True
    >>> frame[:10] += 100                         # a read-out pattern over a tenth of the rows
    >>> round(unlike_master(frame, master)["fraction"], 2)
    0.1
    """
    frame = np.asarray(frame, dtype=np.float32)
    master = np.asarray(master, dtype=np.float32)
    if frame.shape != master.shape:
        raise ValueError(f"frame {frame.shape} and master {master.shape} differ in shape")
    difference = frame - master
    finite = np.isfinite(difference)
    pixels = int(np.count_nonzero(finite))
    if not pixels:
        return {"fraction": float("nan"), "scatter": float("nan"), "sigma": sigma, "pixels": 0}
    difference = difference[finite]
    difference -= np.float32(np.median(difference))
    scatter = float(np.hypot(pixel_noise(frame), master_noise or 0.0))
    unlike = int(np.count_nonzero(np.abs(difference) > sigma * scatter)) if scatter > 0 else 0
    return {"fraction": unlike / pixels, "scatter": scatter, "sigma": sigma, "pixels": pixels}


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


class PreparedMasters:
    """A light's masters folded for speed: ``offset`` = bias + dark x scale, ``gain`` = 1 / flat (NaN
    where the flat is below :data:`FLAT_FLOOR`).  Made once per set of masters
    (:func:`prepare_masters`); each light then costs three passes over its pixels
    (:func:`apply_prepared`)."""

    __slots__ = ("offset", "gain", "shape")

    def __init__(self, offset, gain, shape):
        self.offset, self.gain, self.shape = offset, gain, shape


def prepare_masters(*, bias: np.ndarray | None = None, dark: np.ndarray | None = None, dark_scale: float = 1.0,
                    flat: np.ndarray | None = None) -> PreparedMasters:
    """Fold master bias, dark (times ``dark_scale``) and flat into :class:`PreparedMasters`.

    Raises
    ------
    ValueError
        Masters of different shapes; a dark scaled by anything but 1 without a bias (the dark holds
        the bias offset too, and scaling it would scale the offset).
    """
    shapes = {name: np.shape(m) for name, m in (("bias", bias), ("dark", dark), ("flat", flat)) if m is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError("masters of different shapes: " + ", ".join(f"{k} {v}" for k, v in shapes.items()))
    if dark is not None and bias is None and abs(float(dark_scale) - 1.0) > 1e-6:
        raise ValueError(f"dark scaled by {dark_scale:g} without a bias: the dark's offset would be scaled too")
    offset = None
    if bias is not None:
        offset = np.array(bias, dtype=np.float32, copy=True)
    if dark is not None:
        scaled = np.asarray(dark, dtype=np.float32) * np.float32(dark_scale)
        offset = scaled if offset is None else np.add(offset, scaled, out=offset)
    gain = None
    if flat is not None:
        flat = np.asarray(flat, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(flat >= FLAT_FLOOR, np.float32(1.0) / flat, np.float32(np.nan)).astype(np.float32)
    for array in (offset, gain):
        if array is not None:
            array.setflags(write=False)
    return PreparedMasters(offset, gain, next(iter(shapes.values()), None))


def _overscan_levels(raw: np.ndarray, biassec: tuple[slice, slice]) -> tuple[int, np.ndarray]:
    """The overscan level of every read-out line of the frame, as :func:`subtract_overscan` takes
    it: ``(axis, levels)``, axis 0 when there is one value per row (lines outside the overscan's own
    take its overall median)."""
    region = raw[biassec]
    if region.shape[0] >= region.shape[1]:
        per_line = np.median(region, axis=1)
        levels = np.full(raw.shape[0], np.median(per_line))
        levels[np.arange(raw.shape[0])[biassec[0]]] = per_line
        return 0, levels.astype(np.float32)
    per_line = np.median(region, axis=0)
    levels = np.full(raw.shape[1], np.median(per_line))
    levels[np.arange(raw.shape[1])[biassec[1]]] = per_line
    return 1, levels.astype(np.float32)


def apply_prepared(raw: np.ndarray, header, prepared: PreparedMasters, *, saturation: float | None = None,
                   keep_geometry: bool = False) -> np.ndarray:
    """A raw light calibrated with :class:`PreparedMasters` (see :func:`apply_calibration`): three
    passes over the pixels (overscan-subtract into float32, less the offset, times the gain)."""
    shape = np.shape(raw)
    try:
        biassec = parse_section(header.get("BIASSEC") if header is not None else None, shape)
    except ValueError as exc:
        raise ValueError(f"BIASSEC: {exc}") from None
    trim_card = "TRIMSEC" if header is not None and header.get("TRIMSEC") else "DATASEC"
    try:
        trimsec = parse_section(header.get(trim_card) if header is not None else None, shape)
    except ValueError as exc:
        raise ValueError(f"{trim_card}: {exc}") from None
    trimsec = trimsec or (slice(0, shape[0]), slice(0, shape[1]))
    source = raw[trimsec]
    if prepared.shape is not None and source.shape != prepared.shape:
        raise ValueError(f"masters are {prepared.shape}, the light {source.shape} after trim")
    if keep_geometry:
        full = np.full(shape, np.nan, dtype=np.float32)
        out = full[trimsec]                       # a view: the calibration is written into the frame
    else:
        full = out = np.empty(source.shape, dtype=np.float32)
    if biassec is not None:
        axis, levels = _overscan_levels(raw, biassec)
        level = levels[trimsec[0]][:, None] if axis == 0 else levels[trimsec[1]][None, :]
        np.subtract(source, level, out=out, dtype=np.float32, casting="unsafe")
    else:
        np.copyto(out, source, casting="unsafe")
    if prepared.offset is not None:
        np.subtract(out, prepared.offset, out=out)
    if prepared.gain is not None:
        np.multiply(out, prepared.gain, out=out)
    if saturation is not None:
        hit = source >= saturation
        if hit.any():
            out[hit] = np.fmax(out[hit], np.float32(saturation))
    return full


def apply_calibration(raw: np.ndarray, header, *, bias: np.ndarray | None = None,
                      dark: np.ndarray | None = None, dark_scale: float = 1.0,
                      flat: np.ndarray | None = None, saturation: float | None = None,
                      keep_geometry: bool = False) -> np.ndarray:
    """A raw light calibrated in memory: overscan and trim (from its header), less the master bias,
    less the master dark times ``dark_scale``, divided by the master flat.

    The steps and their order are ccdproc's ``subtract_overscan`` (median per line), ``trim_image``,
    ``subtract_bias``, ``subtract_dark`` (``exposure_time`` scaling) and ``flat_correct``; bias and
    scaled dark are subtracted as one sum and the flat applied as its reciprocal
    (:func:`prepare_masters`), which differs from ccdproc's sequence by float32 rounding only.

    Parameters
    ----------
    raw : numpy.ndarray
        The light as read.
    header : mapping
        Its header (BIASSEC, TRIMSEC / DATASEC).
    bias, dark, flat : numpy.ndarray, optional
        Masters of the trimmed shape (the flat normalised to a median of 1).
    dark_scale : float
        Light exposure over the dark's.  Anything but 1 needs ``bias``: a dark holds the bias offset
        too, and scaling it would scale the offset.
    saturation : float, optional
        Raw saturation level: pixels at or above it in the raw stay at least at this level after
        calibration, so that saturated stars are still flagged as such.
    keep_geometry : bool
        Return the raw frame's shape, NaN outside the trim section (overscan): star positions, the
        alignment's transforms and the header's WCS stay valid.  Otherwise the trimmed image.

    Returns
    -------
    numpy.ndarray
        float32; NaN where the flat is below :data:`FLAT_FLOOR`.

    Raises
    ------
    ValueError
        A master whose shape differs from the light's after trim, naming both shapes; a scaled dark
        without a bias; a header section that is not usable.
    """
    prepared = prepare_masters(bias=bias, dark=dark, dark_scale=dark_scale, flat=flat)
    return apply_prepared(raw, header, prepared, saturation=saturation, keep_geometry=keep_geometry)


MASTER_CACHE_SIZE = 6
"""Masters kept in memory per process (bias, dark and flat of two bands: a night's usual set)."""

_MASTER_CACHE: dict[tuple[str, str], np.ndarray] = {}


def load_master(path: str, sha256: str) -> np.ndarray:
    """A master's pixels, read once per process (cached by path and digest) and checked against the
    SHA-256 the catalog recorded.

    Raises
    ------
    ValueError
        When the file cannot be read or its SHA-256 differs, naming the file.
    """
    key = (str(path), str(sha256))
    cached = _MASTER_CACHE.get(key)
    if cached is not None:
        return cached
    from obsdb.imaging.fitsio import FitsReadError, read_fits_image

    try:
        image = read_fits_image(path, hash_mode="inline")
    except FitsReadError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if image.sha256 != sha256:
        raise ValueError(f"{path}: master changed since it was written (SHA-256 differs); run obsdb calibrate")
    data = np.asarray(image.data, dtype=np.float32)
    data.setflags(write=False)              # shared by every light of the process
    while len(_MASTER_CACHE) >= MASTER_CACHE_SIZE:
        _MASTER_CACHE.pop(next(iter(_MASTER_CACHE)))
    _MASTER_CACHE[key] = data
    return data


_PREPARED_CACHE: dict[tuple, PreparedMasters] = {}


def master_sections(rows) -> dict:
    """The overscan and trim sections the masters of a light's calibration rows were built with (the
    first master that recorded one: ``sections`` in each row), for a light whose header lacks them."""
    found: dict = {}
    for row in rows:
        for key, value in (row.get("sections") or {}).items():
            if value and not found.get(key):
                found[key] = value
    return found


def calibrate_with(raw: np.ndarray, header, rows, *, saturation: float | None = None,
                   keep_geometry: bool = True) -> np.ndarray:
    """A raw light calibrated with the masters of its calibration rows (:func:`load_master` each,
    folded once per process by :func:`prepare_masters`, then :func:`apply_prepared`).

    Parameters
    ----------
    rows : list of dict
        The light's calibration rows that name a master: ``kind``, ``master``, ``path``, ``sha256``,
        ``scale``, ``sections`` (as :meth:`obsdb.catalog.masters.MasterStore.light_calibrations` gives
        them).  A light whose header gives no BIASSEC or TRIMSEC/DATASEC takes its masters' sections.

    Raises
    ------
    ValueError
        A master missing, changed or of another shape (one line naming it).
    """
    used = {row["kind"]: row for row in rows if row.get("master") is not None}
    header = with_sections(header, master_sections(rows))
    scale = float(used["dark"].get("scale") or 1.0) if "dark" in used else 1.0
    key = tuple((kind, used[kind]["path"], used[kind]["sha256"]) for kind in sorted(used)) + (scale,)
    prepared = _PREPARED_CACHE.get(key)
    if prepared is None:
        masters = {kind: load_master(row["path"], row["sha256"]) for kind, row in used.items()}
        try:
            prepared = prepare_masters(bias=masters.get("bias"), dark=masters.get("dark"), dark_scale=scale,
                                       flat=masters.get("flat"))
        except ValueError as exc:
            raise ValueError(f"masters {', '.join(str(r['master']) for r in used.values())}: {exc}") from None
        while len(_PREPARED_CACHE) >= MASTER_CACHE_SIZE:
            _PREPARED_CACHE.pop(next(iter(_PREPARED_CACHE)))
        _PREPARED_CACHE[key] = prepared
    return apply_prepared(raw, header, prepared, saturation=saturation, keep_geometry=keep_geometry)


CALIBRATION_CARDS = {"bias": "OBSDBIDB", "dark": "OBSDBIDD", "flat": "OBSDBIDF"}
"""Header cards naming the catalog id of the master bias, dark and flat a light was calibrated with
(after BANZAI's L1IDBIAS / L1IDDARK / L1IDFLAT, which name the master's file)."""


def add_calibration_cards(header, rows) -> None:
    """Name the masters a light was calibrated with in ``header`` (an astropy Header, in place).

    Cards :data:`CALIBRATION_CARDS` (catalog id, or ``'none'``), ``OBSDBDSC`` (the dark's exposure
    scale) and ``OBSDBCAL`` (T/F); per master two HISTORY lines: ``obsdb: flat master 3:
    FILE`` and ``sha256 HEX``.
    """
    used = {row["kind"]: row for row in rows if row.get("master") is not None}
    header["OBSDBCAL"] = (bool(used), "calibrated by obsdb (masters below)")
    for kind, card in CALIBRATION_CARDS.items():
        row = used.get(kind)
        header[card] = (row["master"] if row else "none", f"obsdb master {kind} (catalog id)")
    if "dark" in used:
        header["OBSDBDSC"] = (float(used["dark"].get("scale") or 1.0), "dark scale (light / dark exposure)")
    for kind in CALIBRATION_IMAGE_TYPES:
        row = used.get(kind)
        if row:
            name = str(row["path"]).rsplit("/", 1)[-1]
            header.add_history(f"obsdb: {kind} master {row['master']}: {name}"[:72])
            header.add_history(f"sha256 {row['sha256']}")


def large_scale_rms(data: np.ndarray, *, blocks: int = 8) -> float:
    """Relative large-scale structure of a sky: the rms of the medians of ``blocks`` x ``blocks``
    tiles (stars and cosmic rays weigh nothing in a median) over their median."""
    height, width = np.shape(data)
    h, w = height // blocks, width // blocks
    tiles = [np.nanmedian(data[i * h:(i + 1) * h, j * w:(j + 1) * w]) for i in range(blocks) for j in range(blocks)]
    tiles = np.asarray(tiles, dtype=float)
    return float(np.std(tiles) / np.median(tiles))
