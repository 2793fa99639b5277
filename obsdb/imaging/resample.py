"""Resampling a frame onto the reference pixel grid, once, with its total transform.

``out(xr, yr) = frame(T^-1(xr, yr))`` where ``T`` is the frame -> reference
:class:`~obsdb.imaging.transform.Transform`.  Pixels that have no data in the
frame (outside it, or whose interpolation footprint touches a NaN of the
input) are set to ``fill`` (NaN by default) and reported in the coverage mask,
so a later stack can ignore them instead of averaging in a sentinel value.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from obsdb.imaging.transform import Transform

INTERPOLATIONS = ("spline3", "linear", "nearest", "fourier")
"""Names accepted by :func:`resample`, the default first."""

_ORDER = {"spline3": 3, "linear": 1, "nearest": 0}

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

    # float64 working copy: the input is never touched and the spline
    # prefilter keeps its precision.
    work = np.array(src, dtype=np.float64, copy=True)
    bad = ~np.isfinite(work)
    has_bad = bool(bad.any())
    if has_bad:
        if bad.all():
            return (np.full(out_shape, fill, dtype=np.float32),
                    np.zeros(out_shape, dtype=bool))
        _fill_local_median(work, bad)

    coverage = _geometric_coverage(src.shape, transform, out_shape)

    if interpolation == "fourier":
        aligned = _fourier_shift(work, transform, out_shape)
    else:
        aligned = _spline_resample(work, transform, out_shape, _ORDER[interpolation])

    if has_bad:
        coverage &= ~_bad_footprint(bad, transform, out_shape, interpolation)

    aligned[~coverage] = fill
    return aligned, coverage


def _inverse_affine(transform: Transform):
    """Matrix and offset, in (row, col) order, mapping output to input pixels."""
    minv = np.linalg.inv(transform.matrix())
    c = np.array([transform.cx, transform.cy])
    d = np.array([transform.dx, transform.dy])
    off_xy = c - minv @ (c + d)
    swap = np.array([[0, 1], [1, 0]])
    return swap @ minv @ swap, off_xy[::-1].copy()


def _spline_resample(work, transform, out_shape, order):
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


def _fourier_shift(work, transform, out_shape):
    ny, nx = work.shape
    spectrum = np.fft.rfft2(work)
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


def _bad_footprint(bad, transform, out_shape, interpolation):
    """Output pixels whose interpolation footprint touches an input NaN."""
    if interpolation == "nearest":
        mask = bad.astype(np.float32)
        order, threshold = 0, 0.5
    else:
        # Cubic splines read 4x4 pixels, a Fourier shift in principle all of
        # them; growing the mask before a bilinear pass covers the 4x4 case
        # exactly and the Fourier ringing where it matters most.
        grow = {"linear": 0, "spline3": 1, "fourier": 2}[interpolation]
        mask = ndimage.binary_dilation(bad, iterations=grow) if grow else bad
        mask = mask.astype(np.float32)
        order, threshold = 1, 1e-6
    moved = _spline_resample(mask, transform, out_shape, order)
    return moved > threshold


def _fill_local_median(work, bad):
    """Replace NaN pixels in place by the median of nearby good pixels.

    A fill close to the surroundings keeps the spline prefilter (an infinite
    recursive filter) from carrying a step far beyond the masked footprint.
    """
    labels, count = ndimage.label(bad)
    slices = ndimage.find_objects(labels)
    ny, nx = work.shape
    good_all = None
    for index, sl in enumerate(slices, start=1):
        margin = 3
        while True:
            y0, y1 = max(sl[0].start - margin, 0), min(sl[0].stop + margin, ny)
            x0, x1 = max(sl[1].start - margin, 0), min(sl[1].stop + margin, nx)
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
        region = labels[y0:y1, x0:x1] == index
        box[region] = value
