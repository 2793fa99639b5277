"""Resampling a frame onto the reference pixel grid, once, with its total transform.

``out(xr, yr) = frame(T^-1(xr, yr))`` where ``T`` is the frame -> reference
:class:`~obsdb.imaging.transform.Transform`.  Pixels that have no data in the
frame (outside it, or whose interpolation footprint touches a NaN of the
input) are set to ``fill`` (NaN by default) and reported in the coverage mask,
so a later stack can ignore them instead of averaging in a sentinel value.
"""

from __future__ import annotations

import math

import numpy as np

from obsdb.imaging.transform import Transform

INTERPOLATIONS = ("spline3", "linear", "nearest", "fourier")
"""Names accepted by :func:`resample`, the default first."""

_ORDER = {"spline3": 3, "linear": 1, "nearest": 0}

WORK_DTYPE = np.float32
"""Precision of the working copy and of the separable spline's coefficients (ndimage filters each line
in double precision and stores the result in this type)."""

# Source coordinates may miss the last pixel centre by rounding when the
# transform is computed from composed shifts; this tolerance keeps such
# pixels covered without admitting real extrapolation.
_EDGE_TOL = 1e-6


def resample(data, transform: Transform, *, interpolation: str = "spline3",
             shape: tuple[int, int] | None = None, fill: float = np.nan):
    """Resample a frame onto the reference grid with one interpolation.

    Parameters
    ----------
    data : array_like, 2-D
        The frame.  NaN marks pixels without data.  Never modified.
    transform : Transform
        Frame pixels -> reference pixels (``aligned(x + dx, y + dy) = frame(x, y)``).
    interpolation : {"spline3", "linear", "nearest", "fourier"}
        ``spline3``: cubic B-spline (flux and centroid preserving to well below
        0.1 % / 0.01 px for sampled stars); ``linear``: bilinear (slightly
        broadens stars); ``nearest``: nearest pixel (identical to
        ``scipy.ndimage.shift(order=0)`` for whole-pixel shifts);
        ``fourier``: phase shift, translations only.
    shape : (int, int), optional
        Output shape ``(ny, nx)`` of the reference grid; the input shape by default.
    fill : float
        Value for output pixels without data.

    Returns
    -------
    aligned : numpy.ndarray of float32
        The resampled frame, ``fill`` where there is no data.
    coverage : numpy.ndarray of bool
        True where ``aligned`` holds data.

    Raises
    ------
    ValueError
        Unknown interpolation, a non-2-D input, or ``fourier`` with rotation/scale.

    Notes
    -----
    An output pixel is covered when its source point lies within the
    frame's outermost pixel centres and, for input NaNs, when no pixel the
    interpolation reads is NaN (4x4 for ``spline3``, 2x2 for ``linear``, the
    nearest for ``nearest``; ``fourier`` masks 6x6 although a phase shift
    reads every pixel).  NaNs are first replaced by the median of nearby good
    pixels, so the spline prefilter does not carry them across the frame.
    ``fourier`` treats the frame as periodic: the step between opposite edges
    rings into covered pixels near the edges, and a filled NaN region leaves a
    faint trace far from it.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; "
                         f"choose one of {', '.join(INTERPOLATIONS)}")
    src = np.asarray(data)
    if src.ndim != 2:
        raise ValueError(f"resample needs a 2-D image, got shape {src.shape}")
    if interpolation == "fourier" and not transform.is_translation:
        raise ValueError("fourier interpolation supports translations only; "
                         "use spline3 for a rotated or scaled transform")
    out_shape = tuple(int(n) for n in (shape if shape is not None else src.shape))
    if len(out_shape) != 2:
        raise ValueError(f"shape must be (ny, nx), got {shape!r}")

    prepared = PreparedFrame(src, transform, shape=out_shape)
    return prepared.resample(interpolation, fill=fill)


class PreparedFrame:
    """A frame made ready for resampling once: NaNs filled, so several interpolations share the work.

    ``resample(data, T, interpolation=i)`` is ``PreparedFrame(data, T).resample(i)``;
    :meth:`values_at` gives the same pixels of that output at a few places only
    (render's linear interpolation around saturated cores), without a
    whole-frame pass.

    Parameters
    ----------
    data : array_like, 2-D
        The frame; NaN marks pixels without data.  Never modified.
    transform : Transform
        Frame pixels -> reference pixels.
    shape : (int, int), optional
        Output shape of the reference grid; the input shape by default.
    """

    def __init__(self, data, transform: Transform, *, shape: tuple[int, int] | None = None):
        src = np.asarray(data)
        self.transform = transform
        self.in_shape = src.shape
        self.out_shape = tuple(int(n) for n in (shape if shape is not None else src.shape))
        # A float32 working copy (the input is never touched): the output is float32, and the spline's
        # coefficients rounded to float32 move a pixel by about 1e-7 of the frame's peak, far below the
        # noise (benchmarks/render_night.py --compare), for half the memory traffic of float64.  It is
        # the middle of a frame padded by _SPLINE_PAD for the separable spline, so that no second
        # frame-sized copy is made for the padding.
        if src.ndim == 2:
            self._padded = np.empty((src.shape[0] + 2 * _SPLINE_PAD, src.shape[1] + 2 * _SPLINE_PAD),
                                    dtype=WORK_DTYPE)
            self.work = self._padded[_SPLINE_PAD:-_SPLINE_PAD, _SPLINE_PAD:-_SPLINE_PAD]
            self.work[...] = src
        else:
            self._padded = None
            self.work = np.array(src, dtype=WORK_DTYPE, copy=True)
        self.bad = ~np.isfinite(self.work)
        self.has_bad = bool(self.bad.any())
        self.all_bad = self.has_bad and bool(self.bad.all())
        self._footprint_masks = {}
        if self.has_bad and not self.all_bad:
            _fill_local_median(self.work, self.bad)

    def resample(self, interpolation: str = "spline3", *, fill: float = np.nan):
        """The whole resampled frame and its coverage, as :func:`resample` returns them.

        Parameters
        ----------
        interpolation : {"spline3", "linear", "nearest", "fourier"}
        fill : float
            Value for output pixels without data.

        Returns
        -------
        aligned : numpy.ndarray of float32
        coverage : numpy.ndarray of bool

        Raises
        ------
        ValueError
            Unknown interpolation, or ``fourier`` with rotation/scale.
        """
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; "
                             f"choose one of {', '.join(INTERPOLATIONS)}")
        if interpolation == "fourier" and not self.transform.is_translation:
            raise ValueError("fourier interpolation supports translations only; "
                             "use spline3 for a rotated or scaled transform")
        out_shape = self.out_shape
        if self.all_bad:
            return (np.full(out_shape, fill, dtype=np.float32),
                    np.zeros(out_shape, dtype=bool))
        coverage = _geometric_coverage(self.in_shape, self.transform, out_shape)
        if interpolation == "fourier":
            aligned = _fourier_shift(self.work, self.transform, out_shape)
        else:
            aligned = _spline_resample(self.work, self.transform, out_shape, _ORDER[interpolation],
                                       padded=self._edge_padded())
        if self.has_bad:
            coverage &= ~_bad_footprint(self.bad, self.transform, out_shape, interpolation)
        aligned[~coverage] = fill
        return aligned, coverage

    def _edge_padded(self) -> np.ndarray | None:
        """The working copy padded with its edge pixels (``np.pad(work, _SPLINE_PAD, mode="edge")``), in place."""
        padded, pad = self._padded, _SPLINE_PAD
        if padded is None:
            return None
        padded[:pad, pad:-pad] = self.work[0]
        padded[-pad:, pad:-pad] = self.work[-1]
        padded[:, :pad] = padded[:, pad:pad + 1]
        padded[:, -pad:] = padded[:, -pad - 1:-pad]
        return padded

    def inside(self, rows, cols) -> np.ndarray:
        """Whether output pixels ``(rows, cols)`` map within the frame's outermost pixel centres."""
        return _inside(*_source_coordinates(self.transform, rows, cols), self.in_shape)

    def values_at(self, rows, cols, interpolation: str = "linear", *, fill: float = np.nan):
        """Pixels ``(rows, cols)`` of :meth:`resample`'s output, computed there only.

        Parameters
        ----------
        rows, cols : array_like of int
            Output pixels (0-based row and column), inside the output grid.
        interpolation : {"linear", "nearest"}
            The interpolation (those that read a bounded neighbourhood).
        fill : float
            Value where there is no data.

        Returns
        -------
        numpy.ndarray of float32
            The values, equal to the whole-frame pass's to float32 rounding.
        """
        from scipy import ndimage

        if interpolation not in ("linear", "nearest"):
            raise ValueError(f"values_at supports linear and nearest, not {interpolation!r}")
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        if self.all_bad:
            return np.full(rows.shape, fill, dtype=np.float32)
        order = _ORDER[interpolation]
        src_rows, src_cols = _source_coordinates(self.transform, rows, cols)
        values = ndimage.map_coordinates(self.work, [src_rows, src_cols], order=order, mode="nearest",
                                         output=np.float32, prefilter=False)
        covered = _inside(src_rows, src_cols, self.in_shape)
        if self.has_bad:
            if interpolation not in self._footprint_masks:
                self._footprint_masks[interpolation] = _footprint_mask(self.bad, interpolation)
            mask, order, threshold = self._footprint_masks[interpolation]
            moved = ndimage.map_coordinates(_as_weights(mask), [src_rows, src_cols], order=order, mode="nearest",
                                            output=np.float32, prefilter=False)
            covered &= ~(moved > threshold)
        values[~covered] = fill
        return values


def _source_coordinates(transform: Transform, rows, cols):
    """Input (row, col) coordinates of output pixels, computed as the whole-frame passes compute them."""
    yr = np.asarray(rows, dtype=np.float64)
    xr = np.asarray(cols, dtype=np.float64)
    if transform.is_translation:
        return yr - transform.dy, xr - transform.dx
    matrix, offset = _inverse_affine(transform)
    return (matrix[0, 0] * yr + matrix[0, 1] * xr + offset[0],
            matrix[1, 0] * yr + matrix[1, 1] * xr + offset[1])


def _inside(src_rows, src_cols, in_shape):
    """True where a source coordinate lies within the input's pixel centres (see _geometric_coverage)."""
    ny, nx = in_shape
    return ((src_rows >= -_EDGE_TOL) & (src_rows <= ny - 1 + _EDGE_TOL)
            & (src_cols >= -_EDGE_TOL) & (src_cols <= nx - 1 + _EDGE_TOL))


def _inverse_affine(transform: Transform):
    """Matrix and offset, in (row, col) order, mapping output to input pixels."""
    minv = np.linalg.inv(transform.matrix())
    c = np.array([transform.cx, transform.cy])
    d = np.array([transform.dx, transform.dy])
    off_xy = c - minv @ (c + d)
    swap = np.array([[0, 1], [1, 0]])
    return swap @ minv @ swap, off_xy[::-1].copy()


def _spline_resample(work, transform, out_shape, order, *, padded=None):
    from scipy import ndimage

    if transform.is_translation and order == 3:
        return _separable_spline3_shift(work, transform, out_shape, padded=padded)
    if transform.is_translation:
        shift = (transform.dy, transform.dx)
        if out_shape == work.shape:
            return ndimage.shift(work, shift, order=order, mode="nearest",
                                 output=np.float32, prefilter=order > 1)
        # A diagonal matrix takes ndimage's shift code path while allowing
        # an output grid of another size.
        return ndimage.affine_transform(work, np.ones(2), offset=(-shift[0], -shift[1]),
                                        output_shape=out_shape, order=order,
                                        mode="nearest", output=np.float32,
                                        prefilter=order > 1)
    matrix, offset = _inverse_affine(transform)
    return ndimage.affine_transform(work, matrix, offset=offset, output_shape=out_shape,
                                    order=order, mode="nearest", output=np.float32,
                                    prefilter=order > 1)


# scipy.ndimage pads the frame by this many edge pixels before its spline prefilter in mode "nearest"
# (scipy.ndimage._interpolation._prepad_for_spline_filter); the same padding gives the same coefficients.
_SPLINE_PAD = 12


def _separable_spline3_shift(work, transform, out_shape, *, padded=None):
    """Cubic B-spline resampling for a translation, one axis at a time.

    The same prefilter and the same tensor-product spline as
    ``ndimage.shift(order=3, mode="nearest")``, but a translation moves
    every row (column) by the same fraction, so the 4 x 4 read per output
    pixel factors into a 4-tap filter along each axis: two passes of 4 taps
    instead of 16 per pixel, three times faster.  The result equals ndimage's
    to float32 rounding (rare 1-ulp differences from the summation order) at
    every covered pixel; uncovered ones (source beyond the frame) are
    arbitrary and left for the caller to fill.
    """
    from scipy import ndimage

    pad = _SPLINE_PAD
    if padded is None:  # else the caller's np.pad(work, pad, mode="edge")
        padded = np.pad(work, pad, mode="edge")
    coefficients = ndimage.spline_filter(padded, 3, output=WORK_DTYPE, mode="nearest")
    del padded
    starts = []
    for axis, shift in ((0, transform.dy), (1, transform.dx)):
        # Output i reads source i - shift = i + base + t, i.e. coefficients base - 1 ... base + 2 from i.
        base = math.floor(-shift)
        t = -shift - base
        weights = np.array([(1 - t) ** 3, 4 - 6 * t ** 2 + 3 * t ** 3, 1 + 3 * t + 3 * t ** 2 - 3 * t ** 3,
                            t ** 3]) / 6.0
        # origin=-1 puts the 4 taps on i - 1 ... i + 2.  In place: ndimage filters through line
        # buffers, and a frame-sized array less is 17 MB and several ms less on 2k frames.
        ndimage.correlate1d(coefficients, weights, axis=axis, mode="nearest", origin=-1, output=coefficients)
        starts.append(base + pad)
    return _shifted_window(coefficients, starts, out_shape)


def _shifted_window(filtered: np.ndarray, starts: list[int], out_shape) -> np.ndarray:
    """``filtered[start_row + i, start_col + j]`` for every output pixel, as float32, by one block copy.

    Output rows and columns whose source falls beyond ``filtered`` are uncovered (the caller fills
    them): they get copies of the nearest filled row or column.  The block copy replaced two
    ``np.take`` gathers that cost 80 ms on a 2k frame.
    """
    (r0, c0), (ny, nx) = starts, filtered.shape
    out = np.empty(out_shape, dtype=np.float32)
    rows = np.clip(np.arange(out_shape[0]) + r0, 0, ny - 1)
    cols = np.clip(np.arange(out_shape[1]) + c0, 0, nx - 1)
    # The output rows (columns) that read their own source row (column): a contiguous range.
    inside_r = np.flatnonzero(rows == np.arange(out_shape[0]) + r0)
    inside_c = np.flatnonzero(cols == np.arange(out_shape[1]) + c0)
    if inside_r.size == 0 or inside_c.size == 0:
        return np.take(np.take(filtered, rows, axis=0), cols, axis=1).astype(np.float32)
    ra, rb, ca, cb = inside_r[0], inside_r[-1] + 1, inside_c[0], inside_c[-1] + 1
    out[ra:rb, ca:cb] = filtered[ra + r0:rb + r0, ca + c0:cb + c0]
    # Beyond the source (uncovered): the nearest values, so that nothing is left uninitialised.
    out[ra:rb, :ca] = filtered[ra + r0:rb + r0, cols[:ca]]
    out[ra:rb, cb:] = filtered[ra + r0:rb + r0, cols[cb:]]
    out[:ra] = out[ra]
    out[rb:] = out[rb - 1]
    return out


def _fourier_shift(work, transform, out_shape):
    from scipy import ndimage

    ny, nx = work.shape
    # In float64: numpy transforms float32 in single precision, whose rounding the sum over the whole
    # frame would spread into every pixel.
    spectrum = np.fft.rfft2(np.asarray(work, dtype=np.float64))
    spectrum = ndimage.fourier_shift(spectrum, (transform.dy, transform.dx), n=nx)
    shifted = np.fft.irfft2(spectrum, s=work.shape)
    # The phase shift is periodic over the input grid, so any output pixel
    # maps onto it modulo the input size; uncovered ones are masked later.
    rows = np.arange(out_shape[0]) % ny
    cols = np.arange(out_shape[1]) % nx
    return shifted[np.ix_(rows, cols)].astype(np.float32)


def _geometric_coverage(in_shape, transform, out_shape):
    """True where the source coordinate lies within the input's pixel centres."""
    ny, nx = in_shape
    yr = np.arange(out_shape[0], dtype=np.float64)
    xr = np.arange(out_shape[1], dtype=np.float64)
    if transform.is_translation:
        # Separable: an outer product of two 1-D tests.
        ys = yr - transform.dy
        xs = xr - transform.dx
        oky = (ys >= -_EDGE_TOL) & (ys <= ny - 1 + _EDGE_TOL)
        okx = (xs >= -_EDGE_TOL) & (xs <= nx - 1 + _EDGE_TOL)
        return oky[:, None] & okx[None, :]
    matrix, offset = _inverse_affine(transform)
    ys = matrix[0, 0] * yr[:, None] + matrix[0, 1] * xr[None, :] + offset[0]
    ok = (ys >= -_EDGE_TOL) & (ys <= ny - 1 + _EDGE_TOL)
    del ys
    xs = matrix[1, 0] * yr[:, None] + matrix[1, 1] * xr[None, :] + offset[1]
    ok &= (xs >= -_EDGE_TOL) & (xs <= nx - 1 + _EDGE_TOL)
    return ok


# Footprints sparser than this fraction of the frame are resampled pixel by pixel around each masked
# pixel; denser ones (a frame with large NaN regions) by one whole-frame pass, which is then cheaper.
_SPARSE_FOOTPRINT = 0.02

# Cubic splines read 4x4 pixels, a Fourier shift in principle all of them;
# growing the mask before a bilinear pass covers the 4x4 case exactly and
# the Fourier ringing where it matters most.
_FOOTPRINT_GROW = {"nearest": 0, "linear": 0, "spline3": 1, "fourier": 2}


def _footprint_mask(bad, interpolation):
    """The mask resampled for a footprint, its interpolation order and the threshold that makes it True."""
    grow = _FOOTPRINT_GROW[interpolation]
    # Kept boolean: finding its set pixels is 20 times faster than in a float copy (resampled_mask).
    mask = grow_mask(bad, grow) if grow else bad
    if interpolation == "nearest":
        return mask, 0, 0.5
    return mask, 1, 1e-6


def _bad_footprint(bad, transform, out_shape, interpolation):
    """Output pixels whose interpolation footprint touches an input NaN."""
    mask, order, threshold = _footprint_mask(bad, interpolation)
    return resampled_mask(mask, transform, shape=out_shape, interpolation="nearest" if order == 0 else "linear",
                          threshold=threshold)


def resampled_mask(mask, transform: Transform, *, shape: tuple[int, int] | None = None,
                   interpolation: str = "linear", threshold: float = 0.5) -> np.ndarray:
    """Where a mask, resampled onto the reference grid, exceeds a threshold.

    Equal to ``_spline_resample(mask, ...) > threshold`` over the whole frame
    (``mode="nearest"`` at the edges), but computed only around the masked
    pixels when they are few: the cost follows their number, not the frame's size.

    Parameters
    ----------
    mask : array_like of bool or float, 2-D
        The mask in frame pixels (non-zero where set).
    transform : Transform
        Frame pixels -> reference pixels.
    shape : (int, int), optional
        Output shape; the input's by default.
    interpolation : {"linear", "nearest"}
        How the mask is resampled.
    threshold : float
        An output pixel is True when the resampled mask exceeds it (> 0).

    Returns
    -------
    numpy.ndarray of bool
        The output mask.  Pixels whose source point lies beyond the frame's
        outermost pixel centres may differ from the whole-frame pass (they are
        never covered, see :func:`resample`).
    """
    from scipy import ndimage

    mask = np.asarray(mask)
    out_shape = tuple(int(n) for n in (shape if shape is not None else mask.shape))
    order = _ORDER[interpolation]
    # The set pixels of a boolean mask are found 20 times faster than those of a float copy (8 ms on a
    # 2k frame), and its uint8 view is read by the interpolation as the 0/1 floats would be.
    masked = np.flatnonzero(mask)
    weights = _as_weights(mask)
    if masked.size > _SPARSE_FOOTPRINT * mask.size or not masked.size:
        return _spline_resample(weights.astype(np.float32, copy=False), transform, out_shape, order) > threshold
    # A bilinear (or nearest) read at a source point touches only input pixels closer than one pixel on
    # each axis, so a masked pixel reaches output pixels within scale * sqrt(2) of its image; the same
    # interpolation evaluated at just those (a few dozen per masked pixel) gives the whole pass's answer.
    flat = _reachable(masked, weights.shape, transform, out_shape)
    rows, cols = np.divmod(flat, out_shape[1])
    src_rows, src_cols = _source_coordinates(transform, rows, cols)
    moved = ndimage.map_coordinates(weights, [src_rows, src_cols], order=order, mode="nearest",
                                    output=np.float32, prefilter=False)
    out = np.zeros(out_shape, dtype=bool)
    out.reshape(-1)[flat[moved > threshold]] = True
    return out


def _as_weights(mask: np.ndarray) -> np.ndarray:
    """A mask as interpolation reads it: a boolean one as its uint8 view (no copy), any other as float32."""
    if mask.dtype == bool:
        return mask.view(np.uint8)
    return mask if mask.dtype == np.float32 else mask.astype(np.float32)


def _reachable(flat_in, in_shape, transform, out_shape):
    """Flat indices of the output pixels that a bilinear read can reach from the given input pixels."""
    ys, xs = np.divmod(flat_in, in_shape[1])
    xo, yo = transform.apply(xs.astype(np.float64), ys.astype(np.float64))
    reach = int(np.ceil(abs(transform.scale) * np.sqrt(2))) + 1
    offsets = np.arange(-reach, reach + 1)
    rows, cols = np.broadcast_arrays(np.rint(yo).astype(np.intp)[:, None, None] + offsets[None, :, None],
                                     np.rint(xo).astype(np.intp)[:, None, None] + offsets[None, None, :])
    rows, cols = rows.ravel(), cols.ravel()
    inside = (rows >= 0) & (rows < out_shape[0]) & (cols >= 0) & (cols < out_shape[1])
    # np.unique's sort of the candidates cost 4 ms a call on a 2k frame with a few thousand masked
    # pixels; marking them on a boolean frame and reading it back gives the same ascending indices.
    reached = np.zeros(out_shape[0] * out_shape[1], dtype=bool)
    reached[rows[inside] * out_shape[1] + cols[inside]] = True
    return np.flatnonzero(reached)


def grow_mask(mask, radius: int) -> np.ndarray:
    """``binary_dilation(mask, iterations=radius)``: the pixels within an L1 distance ``radius`` of a masked one.

    Built from the masked pixels' coordinates when they are few (defects, saturated cores), so the
    cost follows their number rather than the frame's size; a dense mask takes the whole-frame dilation.

    Parameters
    ----------
    mask : array_like of bool, 2-D
    radius : int
        Iterations of the 4-connected dilation (>= 0).

    Returns
    -------
    numpy.ndarray of bool
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    ys, xs = np.divmod(np.flatnonzero(mask), mask.shape[1])  # 2-D nonzero is ten times slower (6 ms, 2k)
    offsets = [(dy, dx) for dy in range(-radius, radius + 1)
               for dx in range(-(radius - abs(dy)), radius - abs(dy) + 1)]
    if ys.size * len(offsets) > mask.size // 8:
        return ndimage.binary_dilation(mask, iterations=radius)
    dy, dx = np.array(offsets).T
    rows, cols = (ys[:, None] + dy[None, :]).ravel(), (xs[:, None] + dx[None, :]).ravel()
    inside = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    grown = np.zeros(mask.shape, dtype=bool)
    grown[rows[inside], cols[inside]] = True
    return grown


def _fill_local_median(work, bad):
    """Replace NaN pixels in place by the median of nearby good pixels.

    A fill close to the surroundings keeps the spline prefilter (an infinite
    recursive filter) from carrying a step far beyond the masked footprint.
    Each masked region (4-connected) gets the median of the good pixels in its
    bounding box grown by :data:`FILL_MARGIN` (doubled until 8 are found).
    The good pixels never change, so the regions can be filled in any order.
    """
    ny, nx = work.shape
    find = _sparse_regions if np.count_nonzero(bad) <= _SPARSE_FILL * bad.size else _labelled_regions
    single_ys, single_xs, regions = find(bad)
    done = _fill_single_pixels(work, bad, single_ys, single_xs)
    # Single pixels with too few good ones around them are left to the loop, which widens the box.
    regions += [((int(y), int(y) + 1, int(x), int(x) + 1), (np.array([y]), np.array([x])))
                for y, x in zip(single_ys[~done], single_xs[~done])]
    good_all = None
    for (ya, yb, xa, xb), (ys, xs) in regions:
        margin = FILL_MARGIN
        while True:
            y0, y1 = max(ya - margin, 0), min(yb + margin, ny)
            x0, x1 = max(xa - margin, 0), min(xb + margin, nx)
            box = work[y0:y1, x0:x1]
            good = box[~bad[y0:y1, x0:x1]]
            if good.size >= 8 or (y0 == 0 and x0 == 0 and y1 == ny and x1 == nx):
                break
            margin *= 2
        if good.size:
            value = float(np.median(good))
        else:
            if good_all is None:
                good_all = float(np.median(work[~bad]))
            value = good_all
        work[ys, xs] = value


_SPARSE_FILL = 0.01
"""Masks with at most this fraction of the pixels set are split into regions from their pixels'
coordinates (:func:`_sparse_regions`, ~1 ms for a few thousand pixels); denser ones by labelling the
whole frame (:func:`_labelled_regions`, 13 ms on a 2k frame whatever the mask)."""


def _labelled_regions(bad):
    """The mask's 4-connected regions, as :func:`_sparse_regions` gives them, by ``ndimage.label``:
    the single pixels' rows and columns, and each larger region as ``((y0, y1, x0, x1), (ys, xs))``
    (its bounding box and its pixels)."""
    from scipy import ndimage

    labels, count = ndimage.label(bad)
    slices = ndimage.find_objects(labels)
    single = np.array([sl[0].stop - sl[0].start == 1 and sl[1].stop - sl[1].start == 1 for sl in slices],
                      dtype=bool)
    ys = np.array([sl[0].start for sl in slices], dtype=np.intp)[single]
    xs = np.array([sl[1].start for sl in slices], dtype=np.intp)[single]
    rest = []
    for index in np.flatnonzero(~single):
        sl = slices[index]
        region = np.nonzero(labels[sl] == index + 1)
        rest.append(((sl[0].start, sl[0].stop, sl[1].start, sl[1].stop),
                     (region[0] + sl[0].start, region[1] + sl[1].start)))
    return ys, xs, rest


def _sparse_regions(bad):
    """The mask's 4-connected regions from its set pixels' coordinates (no pass over the frame): the
    single pixels' rows and columns, and each larger region as ``((y0, y1, x0, x1), (ys, xs))``."""
    from obsdb.imaging.regions import adjacent_pairs, components

    flat = np.flatnonzero(bad)
    n = flat.size
    ys, xs = np.divmod(flat, bad.shape[1])
    i, j = adjacent_pairs(flat, bad.shape)
    linked = np.zeros(n, dtype=bool)
    linked[i] = True
    linked[j] = True
    rest = []
    if linked.any():
        component = components(n, i, j)[linked]
        nodes = np.flatnonzero(linked)
        order = np.argsort(component, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(component[order]) != 0])
        for a, b in zip(starts, np.r_[starts[1:], order.size]):
            members = nodes[order[a:b]]
            ry, rx = ys[members], xs[members]
            rest.append(((int(ry.min()), int(ry.max()) + 1, int(rx.min()), int(rx.max()) + 1), (ry, rx)))
    return ys[~linked], xs[~linked], rest


FILL_MARGIN = 3
"""Pixels around a masked region whose good pixels' median fills it (:func:`_fill_local_median`)."""


def _fill_single_pixels(work, bad, ys, xs) -> np.ndarray:
    """Fill the one-pixel regions ``(ys, xs)`` of :func:`_fill_local_median` at once; which were filled.

    Hot pixels and cosmic-ray hits masked before resampling are mostly single pixels, hundreds of
    them per frame: one loop step each cost 0.1 ms (40-100 ms a 2k frame).  Each gets the median of
    the good pixels of its (2 * margin + 1)^2 box cut to the frame, as the loop gives it; a pixel
    with fewer than 8 good pixels there is left to the loop (which widens the box).
    """
    import bottleneck as bn

    done = np.zeros(len(ys), dtype=bool)
    if not len(ys):
        return done
    which = np.arange(len(ys))
    offsets = np.arange(-FILL_MARGIN, FILL_MARGIN + 1)
    ny, nx = work.shape
    rows = ys[:, None, None] + offsets[None, :, None]
    cols = xs[:, None, None] + offsets[None, None, :]
    inside = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    rows, cols = np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1)
    good = inside & ~bad[rows, cols]
    values = np.where(good, work[rows, cols], np.nan).reshape(len(which), -1)
    enough = good.reshape(len(which), -1).sum(axis=1) >= 8
    medians = bn.nanmedian(values[enough], axis=1)
    work[ys[enough], xs[enough]] = medians
    done[which[enough]] = True
    return done
