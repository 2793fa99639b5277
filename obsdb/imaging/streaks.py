"""Straight streaks across a frame: satellites and aircraft.

A satellite crossing the field during an exposure leaves a straight line of
constant width (the PSF) and roughly constant surface brightness, usually from
one edge of the frame to another.  The detector works in two passes:

1. **Find candidate lines** on a block-averaged copy of the frame (blocks of
   :func:`_bin_factor` pixels, about :data:`HOUGH_SIZE` blocks across): the
   local background (block medians, :data:`BACKGROUND_BOX`) is subtracted,
   compact bright sources (stars, cosmic rays, hot pixels; connected pixels
   above :data:`MASK_SIGMA` that are not long and thin) are masked, and every
   remaining block above :data:`HIT_SIGMA` votes in a Hough transform.  A
   block average keeps a faint line's signal-to-noise: a 3 px wide line at
   1 sigma per pixel is 3 sigma in an 8x8 block.  Each (angle, offset) cell's
   votes are compared with what noise gives on a line of that length.
2. **Verify and measure** each candidate on the full-resolution pixels: a strip
   :data:`STRIP_HALF_WIDTH` px either side of the line is sampled, cut into
   :data:`SEGMENT_LENGTH` px segments (a median per segment and offset: stars
   and cosmic rays take less than half a segment), and the line refined
   (angle and offset: :func:`_refine`) to the one holding the most light.
   The streak must show its excess in most segments over at least
   :data:`MIN_LENGTH_FRACTION` of the frame, measured against the scatter of
   the same statistic on parallel lines beside it (which holds the real noise,
   its correlations and the star confusion of the field), with flat flanks
   either side (an edge or a gradient has one high flank) and continuous
   light along it (:func:`_continuity`: trailed stars in a row leave gaps).

The significance reported is the mean excess on the line's centre over the
background rms of one pixel ("S/N per px").  Lines within
:data:`AXIS_TOLERANCE_DEG` of a detector axis and narrower than
:data:`AXIS_MIN_WIDTH` are hot or bleeding columns and rows, not streaks.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

STREAKS_VERSION = "streaks-1"
"""Identifies the streak detector; stored with each streak."""

HOUGH_SIZE = 256
"""About this many blocks across the longer side of the frame in the Hough pass: a 2048 px frame is
averaged in 8x8 blocks.  Beyond the line's width, larger blocks keep the line's signal-to-noise per
block and cost less."""

BACKGROUND_BOX = 16
"""Background box, in blocks (128 px on a 2048 px frame): wider than any streak, narrower than a
gradient or a cloud."""

MASK_SIGMA = 5.0
"""Blocks above this many sigma form the groups judged compact (stars, cosmic rays) or linear."""

MASK_PEAK_SIGMA = 12.0
"""A compact group is masked when its brightest block reaches this many sigma.  Fainter groups vote
like any block: a streak of 2-3 sigma per pixel breaks, at :data:`MASK_SIGMA`, into short pieces
that must not be masked as stars, and a faint star gives a vote or two at most."""

COMPACT_ELONGATION = 3.0
"""A connected group of bright blocks with an axis ratio below this (or shorter than
:data:`MIN_SEGMENT_BLOCKS`) is a compact source and masked; a longer and thinner one may be a streak."""

MIN_COMPACT_FILL = 0.3
"""A group of bright blocks filling less than this of the ellipse of its moments is not compact
(two streaks crossing make an X)."""

MIN_SEGMENT_BLOCKS = 6
"""Shortest group of bright blocks, along its long axis, that may be part of a streak."""

MASK_GROW = 2
"""Blocks added around each masked compact source (a star's wings stand above :data:`HIT_SIGMA`)."""

HIT_SIGMA = 2.5
"""Blocks above this many sigma vote in the Hough transform."""

HOUGH_STEP_DEG = 0.25
"""Angle step of the Hough transform (a line of 256 blocks moves by one block at its ends at 0.22 deg)."""

HOUGH_SIGMA = 7.0
"""A Hough cell whose votes exceed noise's by this many sigma is a candidate line."""

MAX_CANDIDATES = 8
"""Candidate lines verified per frame, strongest first."""

SUPPRESS_DEG = 3.0
"""Around a candidate, Hough cells within this angle (and :data:`SUPPRESS_BLOCKS`) are not candidates."""

SUPPRESS_BLOCKS = 4
"""Offset, in blocks, around a candidate whose cells are not candidates."""

STRIP_HALF_WIDTH = 32
"""Full-resolution pixels sampled either side of a candidate line in the verification."""

SEGMENT_LENGTH = 32
"""Pixels along the line per segment of the verification."""

SEGMENT_SIGMA = 3.0
"""A segment shows the streak when its excess on the line is above this many sigma of the same
excess measured on parallel lines beside it."""

MEDIAN_SEGMENT_SIGMA = 1.5
"""The median segment along a streak must show it at this many sigma: a row of stars (each less
than half a segment) leaves the median at the background."""

CONTINUITY_PIXELS = 8
"""Run of pixels along the line averaged in the continuity test (:func:`_continuity`)."""

CONTINUITY_LEVEL = 0.4
"""Fraction of a streak's median level that each run of :data:`CONTINUITY_PIXELS` must reach."""

CONTINUITY_FRACTION = 0.85
"""Fraction of the runs along a streak that must reach :data:`CONTINUITY_LEVEL`."""

MIN_ON_FRACTION = 0.6
"""Fraction of the segments along a streak's extent that must show it (a row of stars does not)."""

MAX_GAP_SEGMENTS = 3
"""Segments without signal that a streak may cross (a bright star masked, a fainter stretch)."""

MIN_LENGTH_FRACTION = 0.3
"""Shortest streak, as a fraction of the frame's shorter side: diffraction spikes and bleed trails
are shorter; satellites cross the frame."""

MIN_TOTAL_SIGMA = 10.0
"""Least significance of the whole streak (summed over its extent) in sigma of the parallel lines."""

MIN_LENGTH_PIXELS = 100.0
"""Shortest streak in pixels, whatever the frame's size (a star and its neighbour are not a streak)."""

MAX_WIDTH = 24.0
"""Widest streak measured, px: wider excesses are nebulae, edges or gradients."""

FLANK_FRACTION = 0.25
"""Each flank of the profile (beyond twice the width) must stay below this fraction of its peak."""

AXIS_TOLERANCE_DEG = 0.5
"""Lines this close to a detector row or column are judged as possible column defects."""

AXIS_MIN_WIDTH = 2.0
"""A line along a detector axis narrower than this (px) is a hot or bleeding column or row."""

PIXEL_LIMIT = 1e12
"""Pixels beyond this magnitude are bad, as NaN is (as :data:`obsdb.imaging.stars.PIXEL_LIMIT`)."""

AXIS_EDGE = 2 * STRIP_HALF_WIDTH
"""A line along a detector axis this close (px) to the frame's border is detector structure."""

MASK_MARGIN = 3.0
"""Pixels added to each side of a streak's half width when render masks it."""

REFINE_PASSES = 1
"""Times a candidate line is refined from its own profile before it is measured (the Hough pass
places it within a block and a quarter degree; one fit to the segments' centres corrects that)."""

REFINE_SEARCH_BLOCKS = 1.5
"""How far (in blocks of the Hough pass) the refinement looks for the line's true offset, at its
middle and at its ends."""

MAX_STREAKS = 6
"""Most streaks reported per frame."""


@dataclass
class Streak:
    """One straight streak.

    Attributes
    ----------
    x0, y0, x1, y1 : float
        0-based end points of the centre line: where it meets the frame's edge,
        or where the streak ends inside the frame.
    width : float
        Full width (equivalent width of the cross profile, about the FWHM), px.
    significance : float
        Mean excess on the centre line over the background rms of one pixel.
    total_sigma : float
        Significance of the whole streak against parallel lines beside it.
    angle_deg : float
        Direction of the line, counter-clockwise from +x, in [0, 180).
    length : float
        Distance between the end points, px.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    width: float
    significance: float
    total_sigma: float
    angle_deg: float
    length: float

    def as_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return {k: float(v) for k, v in asdict(self).items()}


# --------------------------------------------------------------------------- helpers


def _bin_factor(shape) -> int:
    """Block size of the Hough pass for a frame of this shape."""
    return max(1, int(round(max(shape) / HOUGH_SIZE)))


def _block_mean(img: np.ndarray, b: int) -> np.ndarray:
    """Mean of each ``b`` x ``b`` block (the last partial row and column of blocks dropped)."""
    ny, nx = img.shape[0] // b * b, img.shape[1] // b * b
    if b == 1:
        return np.asarray(img[:ny, :nx], dtype=np.float32)
    # Rows first (whole contiguous rows added together), then the short runs within each row.
    rows = img[:ny, :nx].reshape(ny // b, b, nx).sum(axis=1, dtype=np.float32)
    return rows.reshape(ny // b, nx // b, b).sum(axis=2) / np.float32(b * b)


def _background_map(binned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smooth background of the block image (block medians, interpolated) and its coarse grid."""
    ny, nx = binned.shape
    box = max(4, min(BACKGROUND_BOX, min(ny, nx) // 4))
    gy, gx = max(1, ny // box), max(1, nx // box)
    core = binned[:gy * box, :gx * box].reshape(gy, box, gx, box).transpose(0, 2, 1, 3).reshape(gy, gx, -1)
    grid = np.nanmedian(core, axis=2) if np.isnan(core).any() else _median_last_axis(core)
    grid = np.where(np.isfinite(grid), grid, np.nanmedian(grid) if np.isfinite(grid).any() else 0.0)
    if min(gy, gx) >= 3:
        # A streak or a large galaxy lifts a box or two: the median of neighbours keeps them out.
        grid = _median_of_neighbours(grid)
    # Grid values sit at box centres; interpolate (and extrapolate flat) onto every block.
    yy = (np.arange(ny) + 0.5) / box - 0.5
    xx = (np.arange(nx) + 0.5) / box - 0.5
    yy = np.clip(yy, 0, gy - 1)
    xx = np.clip(xx, 0, gx - 1)
    # Bilinear interpolation is separable: along y, then along x, each a weighted sum of two
    # gathered neighbours (scipy's map_coordinates at order 1 gives the same values in thirty times
    # the time on this grid).
    full = _interpolate_axis(_interpolate_axis(grid.astype(np.float32).astype(np.float64), yy, 0), xx, 1)
    return full.astype(np.float32), grid


def _median_of_neighbours(grid: np.ndarray) -> np.ndarray:
    """Each cell's median over its 3 x 3 neighbourhood, the edge cells repeated beyond the grid:
    ``ndimage.median_filter(grid, size=3, mode="nearest")`` (an odd count: the middle value itself)."""
    ny, nx = grid.shape
    padded = np.pad(grid, 1, mode="edge")
    around = np.stack([padded[dy:dy + ny, dx:dx + nx] for dy in range(3) for dx in range(3)])
    return np.median(around, axis=0).astype(grid.dtype, copy=False)


def _interpolate_axis(values: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at ``coords`` (knot units, within the knots)."""
    n = values.shape[axis]
    lower = np.minimum(np.floor(coords).astype(np.intp), n - 1)
    upper = np.minimum(lower + 1, n - 1)
    shape = [1, 1]
    shape[axis] = coords.size
    frac = (coords - lower).reshape(shape)
    return np.take(values, lower, axis=axis) * (1.0 - frac) + np.take(values, upper, axis=axis) * frac


def _nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """Median along ``axis`` ignoring NaN (NaN where all are): a sort, several times faster than
    numpy's nanmedian on the small arrays here."""
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    srt = np.sort(a, axis=-1)                      # NaN sort last
    count = np.isfinite(a).sum(axis=-1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    pick_lo = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    pick_hi = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0]
    return np.where(count > 0, 0.5 * (pick_lo + pick_hi), np.nan)


def _robust_sigma(values: np.ndarray) -> float:
    """The Gaussian sigma of the finite values from their MAD; NaN with fewer than 10 of them."""
    from astropy.stats import mad_std

    values = values[np.isfinite(values)]
    if values.size < 10:
        return float("nan")
    return float(mad_std(values))


def _compact_mask(z: np.ndarray) -> np.ndarray:
    """Blocks of compact bright sources (stars, cosmic rays), grown by :data:`MASK_GROW`."""
    from obsdb.imaging.regions import label

    bright = z > MASK_SIGMA
    if not bright.any():
        return bright
    labels, n = label(bright, diagonal=True)
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    npix = np.bincount(lab, minlength=n + 1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(lab, xs, n + 1) / npix
        my = np.bincount(lab, ys, n + 1) / npix
        dx, dy = xs - mx[lab], ys - my[lab]
        cxx = np.bincount(lab, dx * dx, n + 1) / npix + 1.0 / 12
        cyy = np.bincount(lab, dy * dy, n + 1) / npix + 1.0 / 12
        cxy = np.bincount(lab, dx * dy, n + 1) / npix
        half_tr, det = 0.5 * (cxx + cyy), cxx * cyy - cxy * cxy
        disc = np.sqrt(np.maximum(half_tr ** 2 - det, 0))
        l1, l2 = half_tr + disc, np.maximum(half_tr - disc, 1e-6)
        length = np.sqrt(12 * l1)
        elong = np.sqrt(l1 / l2)
        # Pixels over the area of the ellipse of these moments: about 1 for a star, far less for
        # crossing streaks (an X has round moments but is mostly empty).
        fill = npix / (4 * np.pi * np.sqrt(l1 * l2))
    linear = ((length >= MIN_SEGMENT_BLOCKS) & (elong >= COMPACT_ELONGATION)) | (fill < MIN_COMPACT_FILL)
    linear[0] = False
    # Each object's brightest block from its own pixels (ndimage.maximum over every label scanned the
    # whole block image: 3.6 ms a 2k frame, against a few hundred pixels here).
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, lab, z[ys, xs])
    compact = ~linear & (peak >= MASK_PEAK_SIGMA)
    compact[0] = False
    mask = compact[labels]
    return _grow(mask, MASK_GROW)


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` grown by ``steps`` pixels of 4-connectivity (every pixel within that city-block
    distance): scipy's binary_dilation with ``iterations=steps``, as shifted ORs (a seventh of its time)."""
    if steps <= 0:
        return mask
    ny, nx = mask.shape
    padded = np.pad(mask, steps)
    grown = np.zeros_like(mask)
    for dy in range(-steps, steps + 1):
        reach = steps - abs(dy)
        for dx in range(-reach, reach + 1):
            grown |= padded[steps + dy:steps + dy + ny, steps + dx:steps + dx + nx]
    return grown


@functools.lru_cache(maxsize=8)
def _expected_lengths(nx: int, ny: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hough grid of a block image: angles, offsets, and each two-cell line's length (cached per shape)."""
    thetas = np.deg2rad(np.arange(0.0, 180.0, HOUGH_STEP_DEG))
    half_diag = math.hypot(nx, ny) / 2.0
    n_rho = int(math.ceil(2 * half_diag)) + 2
    rhos = np.arange(n_rho - 1) - half_diag + 0.5
    length = (_chord_lengths(thetas, rhos, nx, ny) * 2.0).astype(np.float32)
    # Lines too short to judge: an expected count no vote can reach (their score is very negative).
    length[length < 2 * MIN_SEGMENT_BLOCKS] = 1e9
    length.setflags(write=False)
    return thetas, rhos, length


def _chord_lengths(thetas: np.ndarray, rhos: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Length inside the (centred) block image of each line x cos(t) + y sin(t) = rho."""
    c, s = np.cos(thetas)[:, None], np.sin(thetas)[:, None]
    r = rhos[None, :]
    px, py = r * c, r * s            # the foot of the perpendicular
    dx, dy = -s, c                   # the line's direction
    hx, hy = nx / 2.0, ny / 2.0
    big = 1e9
    with np.errstate(divide="ignore", invalid="ignore"):
        tx1, tx2 = (-hx - px) / dx, (hx - px) / dx
        ty1, ty2 = (-hy - py) / dy, (hy - py) / dy
    tx_lo = np.where(np.abs(dx) < 1e-12, np.where(np.abs(px) <= hx, -big, big), np.minimum(tx1, tx2))
    tx_hi = np.where(np.abs(dx) < 1e-12, np.where(np.abs(px) <= hx, big, -big), np.maximum(tx1, tx2))
    ty_lo = np.where(np.abs(dy) < 1e-12, np.where(np.abs(py) <= hy, -big, big), np.minimum(ty1, ty2))
    ty_hi = np.where(np.abs(dy) < 1e-12, np.where(np.abs(py) <= hy, big, -big), np.maximum(ty1, ty2))
    return np.maximum(np.minimum(tx_hi, ty_hi) - np.maximum(tx_lo, ty_lo), 0.0)


def _hough_candidates(hits: np.ndarray, usable: np.ndarray) -> list[tuple[float, float, float]]:
    """Candidate lines ``(theta, rho, score)`` in centred block coordinates, strongest first."""
    ny, nx = hits.shape
    ys, xs = np.nonzero(hits)
    if xs.size < MIN_SEGMENT_BLOCKS:
        return []
    p = xs.size / max(1, int(usable.sum()))
    if p <= 0 or p >= 0.5:
        return []
    thetas, rhos, length = _expected_lengths(nx, ny)
    n_theta = thetas.size
    half_diag = math.hypot(nx, ny) / 2.0
    n_rho = rhos.size + 1
    xc = (xs - (nx - 1) / 2.0).astype(np.float32)
    yc = (ys - (ny - 1) / 2.0).astype(np.float32)
    cos, sin = np.cos(thetas).astype(np.float32), np.sin(thetas).astype(np.float32)
    acc = np.zeros(n_theta * n_rho, dtype=np.int64)
    # Offsets of each angle's row, with the half diagonal (and the rounding) folded in.
    base = (np.arange(n_theta, dtype=np.float32) * n_rho + np.float32(half_diag + 0.5))[:, None]
    chunk = max(1, 2_000_000 // n_theta)
    for start in range(0, xs.size, chunk):
        rho = cos[:, None] * xc[None, start:start + chunk]
        rho += sin[:, None] * yc[None, start:start + chunk]
        rho += base
        acc += np.bincount(rho.astype(np.intp).ravel(), minlength=acc.size)
    acc = acc.reshape(n_theta, n_rho).astype(np.float32)
    # Two neighbouring offset cells together: a line rarely falls in one.
    votes = acc[:, :-1] + acc[:, 1:]
    expected = np.float32(p) * length
    score = (votes - expected) / np.sqrt(expected * np.float32(1 - p) + np.float32(1.0))
    out = []
    d_theta = int(round(SUPPRESS_DEG / HOUGH_STEP_DEG))
    for _ in range(MAX_CANDIDATES):
        k = int(np.argmax(score))
        i, j = divmod(k, score.shape[1])
        best = float(score[i, j])
        if not best > HOUGH_SIGMA:
            break
        out.append((float(thetas[i]), float(rhos[j]), best))
        rows = np.arange(i - d_theta, i + d_theta + 1) % n_theta
        # Near theta = 0 and 180 deg the same line has the opposite offset.
        for r in rows:
            flip = (r < i - d_theta + n_theta) if i - d_theta < 0 else False
            flip = flip or (i + d_theta >= n_theta and r <= (i + d_theta) % n_theta and r < i)
            jj = (score.shape[1] - 1 - j) if flip else j
            score[r, max(0, jj - SUPPRESS_BLOCKS):jj + SUPPRESS_BLOCKS + 1] = 0.0
    return out


def _frame_chord(theta: float, rho: float, nx: int, ny: int):
    """Point on the line nearest the frame centre, its unit direction, and the t range inside the frame."""
    c, s = math.cos(theta), math.sin(theta)
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    px, py = cx + rho * c, cy + rho * s
    dx, dy = -s, c
    lo, hi = -1e18, 1e18
    for p, d, n in ((px, dx, nx), (py, dy, ny)):
        if abs(d) < 1e-12:
            if not (-0.5 <= p <= n - 0.5):
                return None
            continue
        t1, t2 = (-0.5 - p) / d, (n - 0.5 - p) / d
        lo, hi = max(lo, min(t1, t2)), min(hi, max(t1, t2))
    if hi - lo < 2:
        return None
    return (px, py), (dx, dy), (lo, hi)


def _sample_strip(img, bg_blocks, block, point, direction, t_range, exclude=(), half_width=STRIP_HALF_WIDTH):
    """Samples ``[offset, t]`` of the background-subtracted frame across and along a line (NaN outside,
    and NaN on the streaks ``exclude`` already found: a line crossing one must not borrow its light)."""
    ny, nx = img.shape
    t = np.arange(math.ceil(t_range[0]), math.floor(t_range[1]) + 1, dtype=np.float32)
    d = np.arange(-half_width, half_width + 1, dtype=np.float32)
    px, py = np.float32(point[0]), np.float32(point[1])
    ux, uy = np.float32(direction[0]), np.float32(direction[1])
    # The normal (cos, sin) of the Hough line is (uy, -ux).
    xs = (px + t[None, :] * ux) + d[:, None] * uy
    ys = (py + t[None, :] * uy) - d[:, None] * ux
    ix, iy = np.rint(xs).astype(np.intp), np.rint(ys).astype(np.intp)
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    np.clip(ix, 0, nx - 1, out=ix)
    np.clip(iy, 0, ny - 1, out=iy)
    # The background of each sample: its block's value in the (smooth, interpolated) block map.
    vals = img[iy, ix].astype(np.float32) - bg_blocks[np.minimum(iy // block, bg_blocks.shape[0] - 1),
                                   np.minimum(ix // block, bg_blocks.shape[1] - 1)]
    vals[~inside] = np.nan
    for other in exclude:
        length = max(other.length, 1e-6)
        ox, oy = (other.x1 - other.x0) / length, (other.y1 - other.y0) / length
        across = np.abs((xs - other.x0) * oy - (ys - other.y0) * ox)
        vals[across <= other.width / 2.0 + MASK_MARGIN + 2.0] = np.nan
    return vals, t, d


def _segment_medians(strip: np.ndarray) -> np.ndarray:
    """Median over each :data:`SEGMENT_LENGTH` run along the line: ``[offset, segment]`` (NaN: no data).

    A median, not a mean: a star or a cosmic ray on the line takes less than half of a segment, and a
    row of stars must not read as a streak.
    """
    n_off, n_t = strip.shape
    n_seg = max(1, n_t // SEGMENT_LENGTH)
    cut = strip[:, :n_seg * SEGMENT_LENGTH].reshape(n_off, n_seg, SEGMENT_LENGTH)
    bad = ~np.isfinite(cut)
    count = SEGMENT_LENGTH - bad.sum(axis=2)
    if bad.any():
        # Missing samples alternately very high and very low leave the median of the rest (within one
        # sample): numpy's nanmedian over small axes is many times slower.
        fill = np.where(np.arange(SEGMENT_LENGTH) % 2 == 0, np.float32(3e38), np.float32(-3e38))
        cut = np.where(bad, fill, cut)
    medians = _median_last_axis(cut)
    medians[count < SEGMENT_LENGTH // 2] = np.nan
    return medians


def _median_last_axis(values: np.ndarray) -> np.ndarray:
    """``np.median(values, axis=-1)`` of finite values, the same numbers from one partition at a
    single index (numpy's median partitions at two, which costs twice as much along short rows)."""
    n = values.shape[-1]
    k = n // 2
    part = np.partition(values, k, axis=-1)
    upper = part[..., k]
    if n % 2:
        return upper
    # The lower middle value is the largest left of k; numpy's mean of the two is (a + b) / 2 in the
    # values' own precision, as here.
    return (part[..., :k].max(axis=-1) + upper) / values.dtype.type(2)


def _continuity(core: np.ndarray) -> float:
    """Fraction of the positions along a streak where its light is present (above
    :data:`CONTINUITY_LEVEL` of its median level, over :data:`CONTINUITY_PIXELS` px).

    A satellite's line is continuous; trailed stars that happen to lie along a line leave gaps
    between them, however much light they hold together.
    """
    per_t = np.nanmean(core, axis=0)
    ok = np.isfinite(per_t)
    kernel = np.ones(CONTINUITY_PIXELS)
    total = np.convolve(np.where(ok, per_t, 0.0), kernel, mode="valid")
    count = np.convolve(ok.astype(float), kernel, mode="valid")
    usable = count >= CONTINUITY_PIXELS // 2
    if usable.sum() < CONTINUITY_PIXELS:
        return 0.0
    smooth = total[usable] / count[usable]
    level = float(np.median(smooth))
    if level <= 0:
        return 0.0
    return float(np.mean(smooth > CONTINUITY_LEVEL * level))


def _runs(flags: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs of True (first, last index) allowing gaps of up to ``max_gap`` False."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    runs, start, prev = [], idx[0], idx[0]
    for k in idx[1:]:
        if k - prev - 1 > max_gap:
            runs.append((start, prev))
            start = k
        prev = k
    runs.append((start, prev))
    return runs


def _refine(seg: np.ndarray, t: np.ndarray, search: float) -> tuple[float, float]:
    """The line through the strip that holds the most light: offset ``a t + b`` across the strip.

    A grid search over slopes (the far ends move by up to ``search`` px, in 1 px steps) and offsets
    (``+-search`` px) of the summed segment medians on a 5 px core: robust where a centroid per
    segment is not (a faint streak's segments have no reliable centre of their own).
    """
    n_off, n_seg = seg.shape
    centre = n_off // 2
    filled = np.where(np.isfinite(seg), seg - _nanmedian(seg, axis=0)[None, :], 0.0)
    filled = np.nan_to_num(filled)
    csum = np.concatenate([np.zeros((1, n_seg)), np.cumsum(filled, axis=0)], axis=0)
    core = 2
    # Core sum of rows r-2..r+2 for each possible centre row r (clipped to the strip).
    rows = np.arange(n_off)
    lo, hi = np.clip(rows - core, 0, n_off), np.clip(rows + core + 1, 0, n_off)
    core_sum = csum[hi] - csum[lo]                                   # [row, segment]
    tc = (np.arange(n_seg) + 0.5) * SEGMENT_LENGTH + t[0]
    tmid = float(tc.mean())
    half_span = max(1.0, float(tc[-1] - tmid))
    n_slope = int(math.ceil(search))
    slopes = np.arange(-n_slope, n_slope + 1) / half_span            # end offset steps of 1 px
    n_b = int(math.ceil(search))
    offsets = np.arange(-n_b, n_b + 1)
    shift = np.rint(slopes[:, None] * (tc - tmid)[None, :]).astype(np.int64)      # [slope, segment]
    idx = centre + offsets[None, :, None] + shift[:, None, :]                      # [slope, offset, segment]
    inside = (idx >= 0) & (idx < n_off)
    vals = core_sum[np.clip(idx, 0, n_off - 1), np.arange(n_seg)[None, None, :]]
    # Beyond the strip a segment adds nothing: a line leaving it at one end scores only its part inside.
    score = np.where(inside, vals, 0.0).sum(axis=2)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    a = float(slopes[i])
    return a, float(offsets[j]) - a * tmid


def _verify(img, bg_blocks, block, sigma_px, theta, rho, min_length, exclude=(), search=6.0):
    """Measure a candidate line at full resolution; a :class:`Streak` or None."""
    ny, nx = img.shape
    for attempt in range(REFINE_PASSES + 1):
        chord = _frame_chord(theta, rho, nx, ny)
        if chord is None:
            return None
        point, direction, t_range = chord
        if t_range[1] - t_range[0] < 3 * SEGMENT_LENGTH:
            return None
        # The refinement looks only near the line: a narrower strip serves it.
        refining = attempt < REFINE_PASSES
        half_width = min(STRIP_HALF_WIDTH, int(math.ceil(search)) + 6) if refining else STRIP_HALF_WIDTH
        strip, t, d = _sample_strip(img, bg_blocks, block, point, direction, t_range, exclude, half_width)
        seg = _segment_medians(strip)                       # [offset, segment]
        n_seg = seg.shape[1]
        if n_seg < 3:
            return None
        profile = _nanmedian(seg, axis=1)
        centre = STRIP_HALF_WIDTH
        if attempt == REFINE_PASSES:
            break
        a, b = _refine(seg, t, search)
        # Offset d(t) = a t + b along the normal (uy, -ux): a new line through the fitted points.
        (px, py), (ux, uy) = point, direction
        nxv, nyv = uy, -ux
        x_a, y_a = px + 0 * ux + b * nxv, py + 0 * uy + b * nyv
        x_b, y_b = px + 100 * ux + (100 * a + b) * nxv, py + 100 * uy + (100 * a + b) * nyv
        new_theta = math.atan2(x_b - x_a, -(y_b - y_a))  # the normal of the new direction
        new_theta %= math.pi
        cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
        new_rho = (x_a - cx) * math.cos(new_theta) + (y_a - cy) * math.sin(new_theta)
        theta, rho = new_theta, new_rho

    # Width: the equivalent width of the central peak, over the median flank level.
    flank_level = np.nanmedian(np.concatenate([profile[:10], profile[-10:]]))
    prof = profile - flank_level
    peak = float(np.nanmax(prof[centre - 2:centre + 3]))
    if not np.isfinite(peak) or peak <= 0:
        return None
    # Walk out from the centre while the profile stays above a tenth of the peak.
    lo = centre
    while lo > 0 and prof[lo - 1] > 0.1 * peak:
        lo -= 1
    hi = centre
    while hi < len(prof) - 1 and prof[hi + 1] > 0.1 * peak:
        hi += 1
    width = float(np.nansum(prof[lo:hi + 1]) / peak)
    if not (0.5 <= width <= MAX_WIDTH):
        return None
    half = max(1, int(math.ceil(0.75 * width)))
    left = prof[max(0, centre - 2 * half - 12):max(1, centre - 2 * half - 2)]
    right = prof[centre + 2 * half + 3:centre + 2 * half + 13]
    if left.size == 0 or right.size == 0:
        return None
    if max(abs(np.nanmedian(left)), abs(np.nanmedian(right))) > FLANK_FRACTION * peak:
        return None
    angle = (math.degrees(theta) + 90.0) % 180.0
    axis_off = min(angle % 90.0, 90.0 - angle % 90.0)
    if axis_off < AXIS_TOLERANCE_DEG:
        # Along a row or column: a hot or bleeding column when narrow, a prescan or overscan strip or a
        # vignetted edge when near the frame's border.
        cxp, cyp = point
        edge = min(cxp, nx - 1 - cxp) if abs(direction[0]) < abs(direction[1]) else min(cyp, ny - 1 - cyp)
        if width < AXIS_MIN_WIDTH or edge < AXIS_EDGE:
            return None

    # Per segment: the excess on the core versus the same sum on parallel lines beside it.
    core_rows = slice(centre - half, centre + half + 1)
    ncore = core_rows.stop - core_rows.start
    # Sums, not nansums: a segment without data on one of its rows is no evidence either way.
    excess = np.sum(seg[core_rows], axis=0) - ncore * flank_level
    refs = []
    for start in list(range(0, centre - 2 * half - 2 - ncore, ncore)) + \
            list(range(centre + 2 * half + 3, len(prof) - ncore + 1, ncore)):
        refs.append(np.sum(seg[start:start + ncore], axis=0) - ncore * flank_level)
    if not refs:
        return None
    refs = np.array(refs)
    noise = _robust_sigma((refs - _nanmedian(refs, axis=0)[None, :]).ravel())
    if not np.isfinite(noise) or noise <= 0:
        return None
    valid = np.isfinite(seg[centre])
    snr = np.where(valid, excess / noise, np.nan)
    snr0 = np.nan_to_num(snr)
    # Three segments together: a faint streak's single segments fall below the threshold by chance.
    snr3 = np.convolve(snr0, np.ones(3), mode="same") / math.sqrt(3)
    on = (snr0 > SEGMENT_SIGMA) | (snr3 > SEGMENT_SIGMA)
    best = None
    for first, last in _runs(on, MAX_GAP_SEGMENTS):
        # The three-segment sum reaches a segment beyond each end: trim ends that show nothing alone.
        while first < last and snr0[first] < 0.5 * SEGMENT_SIGMA:
            first += 1
        while last > first and snr0[last] < 0.5 * SEGMENT_SIGMA:
            last -= 1
        span = last - first + 1
        n_on = int(on[first:last + 1].sum())
        if span * SEGMENT_LENGTH < min_length or n_on < MIN_ON_FRACTION * span:
            continue
        # A row of stars has its excess in a few segments: the median segment must show the streak too.
        if np.nanmedian(snr[first:last + 1]) < MEDIAN_SEGMENT_SIGMA:
            continue
        total = float(np.nansum(snr[first:last + 1]) / math.sqrt(span))
        if total < MIN_TOTAL_SIGMA or (best is not None and total <= best[2]):
            continue
        if _continuity(strip[core_rows, first * SEGMENT_LENGTH:(last + 1) * SEGMENT_LENGTH] - flank_level) \
                < CONTINUITY_FRACTION:
            continue
        best = (first, last, total)
    if best is None:
        return None
    first, last, total = best
    t_lo = t[0] + first * SEGMENT_LENGTH
    t_hi = t[0] + (last + 1) * SEGMENT_LENGTH - 1
    # A streak that reaches the first or last segment runs to the frame's edge.
    if first == 0:
        t_lo = t_range[0]
    if last == n_seg - 1:
        t_hi = t_range[1]
    (px, py), (ux, uy) = point, direction
    ends = [(px + tt * ux, py + tt * uy) for tt in (t_lo, t_hi)]
    # Left end first (the lower one of a vertical streak): the same streak always reads the same way.
    (x0, y0), (x1, y1) = sorted((min(max(float(x), 0.0), nx - 1.0), min(max(float(y), 0.0), ny - 1.0))
                                for x, y in ends)
    per_px = float(np.nanmedian(seg[centre - 1:centre + 2, first:last + 1]) - flank_level) / sigma_px
    return Streak(x0=x0, y0=y0, x1=x1, y1=y1, width=width, significance=per_px, total_sigma=total,
                  angle_deg=angle, length=math.hypot(x1 - x0, y1 - y0))


# --------------------------------------------------------------------------- public


def find_streaks(data, background=None, rms=None, stars=None, *, cfa_scale: float = 1.0) -> list[Streak]:
    """Find straight streaks (satellites, aircraft) across a frame.

    Parameters
    ----------
    data : numpy.ndarray
        2-D frame; not modified.  NaN pixels are ignored.
    background : float, optional
        Unused beyond a sanity fallback: the detector measures its own local
        background (a gradient or a cloud varies across the frame).
    rms : float, optional
        Background noise of one pixel, ADU, for the reported per-pixel
        significance; measured from the frame when not given.
    stars : numpy.ndarray, optional
        Star list (:data:`obsdb.imaging.stars.STAR_DTYPE`) in the pixels of
        ``data``; its saturated stars are masked in the Hough pass (their
        halos and spikes are not streaks).
    cfa_scale : float
        Multiply the returned coordinates and widths by this (2 when ``data``
        is a colour sensor's superpixel image).

    Returns
    -------
    list of Streak
        Strongest first; empty when the frame shows none.
    """
    img = np.asarray(data)
    if img.ndim != 2 or min(img.shape) < 32:
        return []
    if img.dtype.kind not in "fiu":
        img = img.astype(np.float32)
    # Integer frames stay as they are (no frame-sized float copy): the block sums are float32, and the
    # verification reads a few hundred thousand samples.
    finite = None
    ny, nx = img.shape
    b = _bin_factor(img.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        binned = _block_mean(img, b)
    # A NaN anywhere in a block makes its mean NaN (and a wild value, inf): the block image tells
    # whether the frame has any.
    if not (np.isfinite(binned).all() and float(np.abs(binned).max()) < PIXEL_LIMIT):
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(img) & (np.abs(img) < PIXEL_LIMIT)
        if finite.mean() < 0.5:
            return []
        fill = float(np.median(img[finite])) if background is None or not np.isfinite(background) else background
        img = np.where(finite, img, np.float32(fill))
        binned = _block_mean(img, b)
    bg, _ = _background_map(binned)
    resid = binned - bg
    sigma_b = _robust_sigma(resid[::2, ::2].ravel())
    if not np.isfinite(sigma_b) or sigma_b <= 0:
        return []
    z = resid / sigma_b
    mask = _compact_mask(z)
    if finite is not None:
        # Blocks that were mostly NaN carry the fill value: neither hits nor noise.
        good_frac = _block_mean(finite.astype(np.float32), b)
        mask |= good_frac < 0.9
    if stars is not None and len(stars) and "saturated" in stars.dtype.names:
        sat = stars[stars["saturated"]]
        if len(sat):
            spots = np.zeros_like(mask)
            iy = np.clip((np.asarray(sat["y"]) / b).astype(int), 0, mask.shape[0] - 1)
            ix = np.clip((np.asarray(sat["x"]) / b).astype(int), 0, mask.shape[1] - 1)
            spots[iy, ix] = True
            mask |= _grow(spots, MASK_GROW + 2)
    hits = (z > HIT_SIGMA) & ~mask
    candidates = _hough_candidates(hits, ~mask)
    if not candidates:
        return []
    if rms is not None and np.isfinite(rms) and rms > 0:
        sigma_px = float(rms)
    else:
        sigma_px = _robust_sigma(img[::8, ::8].ravel())
        if not np.isfinite(sigma_px) or sigma_px <= 0:
            sigma_px = sigma_b * b
    min_length = max(MIN_LENGTH_FRACTION * min(ny, nx), MIN_LENGTH_PIXELS)
    found: list[Streak] = []
    for theta, rho_blocks, _score in candidates:
        if any(_near(theta, rho_blocks * b, other, nx, ny) for other in found):
            continue
        # Block coordinates (centred) to pixels: the block image's centre is the frame's (up to the crop).
        cxb, cyb = (binned.shape[1] - 1) / 2.0, (binned.shape[0] - 1) / 2.0
        xb = cxb + rho_blocks * math.cos(theta)
        yb = cyb + rho_blocks * math.sin(theta)
        xf, yf = (xb + 0.5) * b - 0.5, (yb + 0.5) * b - 0.5
        rho = (xf - (nx - 1) / 2.0) * math.cos(theta) + (yf - (ny - 1) / 2.0) * math.sin(theta)
        with warnings.catch_warnings():
            # Segments off the frame or on a streak already found are NaN: their empty medians are expected.
            warnings.simplefilter("ignore", RuntimeWarning)
            streak = _verify(img, bg, b, sigma_px, theta, rho, min_length,
                             exclude=found, search=REFINE_SEARCH_BLOCKS * b + 2.0)
        if streak is None:
            continue
        if any(_same_line(streak, other) or _same_line(other, streak) for other in found):
            continue
        found.append(streak)
        if len(found) >= MAX_STREAKS:
            break
    found.sort(key=lambda s: -s.total_sigma)
    if cfa_scale != 1.0:
        found = [Streak(x0=s.x0 * cfa_scale, y0=s.y0 * cfa_scale, x1=s.x1 * cfa_scale, y1=s.y1 * cfa_scale,
                        width=s.width * cfa_scale, significance=s.significance, total_sigma=s.total_sigma,
                        angle_deg=s.angle_deg, length=s.length * cfa_scale) for s in found]
    return found


def _near(theta: float, rho: float, streak: Streak, nx: int, ny: int) -> bool:
    """Whether the line (theta, rho about the frame centre) is a Hough sidelobe of a streak found:
    within :data:`SUPPRESS_DEG` of its direction and passing near its middle."""
    angle = (math.degrees(theta) + 90.0) % 180.0
    diff = abs(angle - streak.angle_deg) % 180.0
    if min(diff, 180.0 - diff) > 2 * SUPPRESS_DEG:
        return False
    mx, my = (streak.x0 + streak.x1) / 2 - (nx - 1) / 2.0, (streak.y0 + streak.y1) / 2 - (ny - 1) / 2.0
    return abs(mx * math.cos(theta) + my * math.sin(theta) - rho) < streak.width + 4 * SEGMENT_LENGTH


def _same_line(a: Streak, b: Streak) -> bool:
    diff = abs(a.angle_deg - b.angle_deg) % 180.0
    if min(diff, 180.0 - diff) > 2.0:
        return False
    # Distance of b's mid point from a's line.
    mx, my = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
    ux, uy = a.x1 - a.x0, a.y1 - a.y0
    n = math.hypot(ux, uy) or 1.0
    return abs((mx - a.x0) * uy - (my - a.y0) * ux) / n < max(a.width, b.width, 4.0)


def mask_half_width(width: float, significance: float | None = None, margin: float = MASK_MARGIN) -> float:
    """Half width of the band masked around a streak's centre line, px.

    Half the measured width plus ``margin``, and the margin again per decade of the streak's
    per-pixel signal-to-noise beyond 1: a bright streak's PSF wings stand above the noise further out.
    """
    decades = math.log10(significance) if significance is not None and significance > 1 else 0.0
    return width / 2.0 + margin * (1.0 + decades)


def streak_mask(shape, streaks, *, margin: float = MASK_MARGIN) -> np.ndarray:
    """Pixels near each streak's centre line (:func:`mask_half_width`), between its end points.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the frame.
    streaks : iterable
        Objects or dicts with ``x0, y0, x1, y1, width`` (and optionally ``significance``).
    margin : float
        Pixels added either side (:data:`MASK_MARGIN`): the PSF wings beyond the measured width.

    Returns
    -------
    numpy.ndarray of bool
        True where a streak is.
    """
    ny, nx = shape
    mask = np.zeros((ny, nx), dtype=bool)
    for s in streaks:
        get = (lambda k: s.get(k)) if isinstance(s, dict) else (lambda k: getattr(s, k, None))
        x0, y0, x1, y1, width = (float(get(k)) for k in ("x0", "y0", "x1", "y1", "width"))
        half = mask_half_width(width, get("significance"), margin)
        length = math.hypot(x1 - x0, y1 - y0)
        if length < 1e-6:
            continue
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        # Row by row: the band crosses each row in one run of columns (or is empty there), so a long
        # diagonal costs a few pixels per row, not its whole bounding box.
        ylo, yhi = int(max(0, math.floor(min(y0, y1) - half))), int(min(ny, math.ceil(max(y0, y1) + half) + 1))
        if ylo >= yhi:
            continue
        yy = np.arange(ylo, yhi)[:, None]
        xlo = int(max(0, math.floor(min(x0, x1) - half)))
        xhi = int(min(nx, math.ceil(max(x0, x1) + half) + 1))
        if xlo >= xhi:
            continue
        if abs(uy) > 1e-9 and (xhi - xlo) * (yhi - ylo) > 4_000_000:
            # Large boxes: per row, the columns where the line passes (plus the band's extent across).
            xc = x0 + (yy[:, 0] - y0) * ux / uy
            spread = half / max(abs(uy), 1e-9) + 1
            cols = np.arange(int(2 * spread) + 3) - int(spread) - 1
            xs = np.rint(xc)[:, None].astype(np.int64) + cols[None, :]
            rows = np.broadcast_to(yy, xs.shape)
            keep = (xs >= 0) & (xs < nx)
            rx, ry = xs - x0, rows - y0
            along = rx * ux + ry * uy
            across = np.abs(rx * uy - ry * ux)
            hit = keep & (across <= half) & (along >= -half) & (along <= length + half)
            mask[rows[hit], xs[hit]] = True
            continue
        xx = np.arange(xlo, xhi)[None, :]
        rx, ry = xx - x0, yy - y0
        along = rx * ux + ry * uy
        across = np.abs(rx * uy - ry * ux)
        mask[ylo:yhi, xlo:xhi] |= (across <= half) & (along >= -half) & (along <= length + half)
    return mask
