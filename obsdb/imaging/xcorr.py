"""Translation between two frames by FFT cross-correlation, without stars.

The fallback of :func:`obsdb.imaging.register.register` when stars cannot
register a frame: both frames are cleaned of what sits still on the detector
(hot pixels, cosmic rays, column and row patterns), flattened and
intensity-compressed so that stars dominate the correlation, and the peak is
located to a fraction of a pixel.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["XCORR_TAPER", "cross_correlation_shift"]

XCORR_TAPER = 16
"""Width (pixels) of the cosine taper at each frame edge, so the edges do not correlate as a feature."""

XCORR_BLOCK = 32
"""Side (pixels) of the blocks whose medians make the smooth background taken out before correlating."""

PEAK_WINDOW = 40
"""Half-size (pixels) of the window around the correlation peak in which its shape is measured."""


def _prepare_for_xcorr(image, mask, taper: int) -> np.ndarray:
    """Clean, flatten and compress an image so that stars dominate its correlation.

    Order matters: sharp single-pixel outliers (hot pixels, cosmic rays) are
    removed before anything spreads them, because fixed hot pixels coincide
    in every frame and would otherwise pin the correlation peak at (0, 0).
    """
    from astropy.stats import mad_std
    from scipy import ndimage

    img = np.array(image, dtype=np.float32, copy=True)
    bad = ~np.isfinite(img)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    step = max(1, int(math.sqrt(img.size / 65536)))
    sample = img[::step, ::step][~bad[::step, ::step]]
    if sample.size == 0:
        return np.zeros_like(img), np.zeros_like(img)
    level = float(np.median(sample))
    img[bad] = level

    med3 = ndimage.median_filter(img, size=3, mode="nearest")
    noise = float(mad_std((img - med3)[::step, ::step])) or 1.0
    excess = img - med3
    # A star of FWHM >= ~1.5 px keeps at least a third of its peak in the 3x3
    # median; a hot pixel or cosmic-ray hit keeps almost none of it.
    sharp = (excess > 5 * noise) & (excess > 0.75 * (img - level))
    sharp = ndimage.binary_dilation(sharp)
    img[sharp] = med3[sharp]
    bad |= sharp

    # smooth background from a coarse grid of block medians
    b = XCORR_BLOCK
    ny, nx = img.shape
    nby, nbx = max(ny // b, 1), max(nx // b, 1)
    blocks = img[: nby * b, : nbx * b].reshape(nby, b, nbx, b) if ny >= b and nx >= b else img[None, :, None, :]
    bg = np.median(blocks, axis=(1, 3)) if blocks.ndim == 4 else np.full((1, 1), level)
    bg = ndimage.median_filter(bg, size=3, mode="nearest")
    bg_full = ndimage.zoom(bg, (ny / bg.shape[0], nx / bg.shape[1]), order=1, mode="nearest", grid_mode=True)
    img -= bg_full[:ny, :nx]
    # A sensor's column and row pattern sits still on the detector and would pin the peak at zero
    # shift: each column's and row's median is taken out (stars barely move a median).
    img -= np.median(img, axis=0)[None, :]
    img -= np.median(img, axis=1)[:, None]
    sigma = float(mad_std(img[::step, ::step])) or 1.0
    # compress: faint stars count, bright ones cannot dominate
    img = np.arcsinh(img / (3 * sigma)).astype(np.float32)
    img[bad] = 0.0
    weight = (~bad).astype(np.float32)

    if taper > 0:
        for axis, n in enumerate(img.shape):
            m = min(taper, n // 4)
            if m < 1:
                continue
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
            win = np.ones(n, dtype=np.float32)
            win[:m] = ramp
            win[n - m:] = ramp[::-1]
            shape = [1, 1]
            shape[axis] = n
            img *= win.reshape(shape)
            weight *= win.reshape(shape)
    return img, weight


def _subpixel(c: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-pixel peak by a 3-point Gaussian (log-parabola) fit per axis."""
    def one(m, c0, p):
        if min(m, c0, p) > 0:
            lm, l0, lp = math.log(m), math.log(c0), math.log(p)
        else:
            lm, l0, lp = m, c0, p
        den = lm - 2 * l0 + lp
        return 0.0 if den >= 0 else float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5))

    ny, nx = c.shape
    fy = one(c[(iy - 1) % ny, ix], c[iy, ix], c[(iy + 1) % ny, ix])
    fx = one(c[iy, (ix - 1) % nx], c[iy, ix], c[iy, (ix + 1) % nx])
    return fx, fy


def cross_correlation_shift(frame, reference, *, mask=None, max_shift=None,
                            reference_mask=None, smooth_sigma: float = 1.0,
                            highpass_scale: float = 24.0, min_overlap: float = 0.2) -> tuple[float, float, float]:
    """Translation between two frames by FFT cross-correlation, without stars.

    Both frames are cleaned of sharp single-pixel outliers (hot pixels and
    cosmic rays) and of known bad pixels first, flattened (smooth background
    removed), intensity-compressed, edge-tapered and zero-padded; the
    correlation is band-passed (smoothing on the PSF scale, removing scales
    above ``highpass_scale``) and its peak located to sub-pixel precision.

    Parameters
    ----------
    frame, reference : numpy.ndarray
        2-D images of the same shape.
    mask : numpy.ndarray of bool, optional
        Known bad pixels of the detector (True = bad), applied to both
        frames unless ``reference_mask`` is given.
    max_shift : float, optional
        Largest shift searched, per axis; half the smaller dimension by
        default.  The frames are zero-padded by this much, so shifts up to
        it do not wrap around.
    reference_mask : numpy.ndarray of bool, optional
        Bad pixels of the reference if they differ from ``mask``.
    smooth_sigma : float
        Gaussian smoothing (pixels) applied to each image in the Fourier
        domain: a matched filter for faint stars.
    highpass_scale : float
        Structures larger than about this (pixels) are suppressed.
    min_overlap : float
        Shifts where the frames overlap by less than this fraction are not
        searched.

    Returns
    -------
    dx, dy : float
        Shift with the project's sign convention, ``x_reference - x_frame``.
    quality : float
        Peak significance: height of the overlap-normalised correlation
        peak above the median of the searched plane, in units of its robust
        standard deviation.  Pure noise gives about 4-6; star fields give
        tens to hundreds.  NaN shifts and quality 0 when no shift leaves
        enough overlap.
    """
    from astropy.stats import mad_std
    from scipy import fft as sfft

    frame = np.asarray(frame)
    reference = np.asarray(reference)
    if frame.shape != reference.shape or frame.ndim != 2:
        raise ValueError("frame and reference must be 2-D arrays of the same shape")
    ny, nx = frame.shape
    if max_shift is None:
        max_shift = min(ny, nx) // 2
    max_shift = int(min(max(1, math.ceil(max_shift)), max(ny, nx) - 2))
    taper = XCORR_TAPER
    a, wa = _prepare_for_xcorr(frame, mask, taper)
    b, wb = _prepare_for_xcorr(reference, mask if reference_mask is None else reference_mask, taper)

    shape = (sfft.next_fast_len(ny + max_shift + 1, real=True), sfft.next_fast_len(nx + max_shift + 1, real=True))
    fa = sfft.rfft2(a, s=shape, workers=-1)
    fb = sfft.rfft2(b, s=shape, workers=-1)
    ky = sfft.fftfreq(shape[0])[:, None]
    kx = sfft.rfftfreq(shape[1])[None, :]
    k2 = (2 * np.pi) ** 2 * (kx ** 2 + ky ** 2)
    filt = np.exp(-k2 * smooth_sigma ** 2) * (1.0 - np.exp(-k2 * highpass_scale ** 2 / 2))
    # c(s) = sum_x ref(x + s) frame(x): peaks at s = x_ref - x_frame
    corr = sfft.irfft2(fb * np.conj(fa) * filt, s=shape, workers=-1)
    # Pixels overlapping at each shift: the noise of c(s) grows as its
    # square root, so c / sqrt(overlap) has one noise level everywhere and
    # large shifts with a sliver of overlap cannot win by chance.
    overlap = sfft.irfft2(sfft.rfft2(wb, s=shape, workers=-1) * np.conj(sfft.rfft2(wa, s=shape, workers=-1)),
                          s=shape, workers=-1)

    sy = min(max_shift, shape[0] // 2 - 1)
    sx = min(max_shift, shape[1] // 2 - 1)

    def centred(arr):
        # shift (0, 0) to index (sy, sx); index (i, j) is shift (i - sy, j - sx)
        return np.roll(arr, (sy, sx), axis=(0, 1))[: 2 * sy + 1, : 2 * sx + 1]

    corr = centred(corr)
    overlap = centred(overlap)
    enough = overlap >= min_overlap * min(wa.sum(), wb.sum())
    if not enough.any():
        return float("nan"), float("nan"), 0.0
    norm = np.where(enough, corr / np.sqrt(np.maximum(overlap, 1e-9)), -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(norm)), norm.shape)
    sample = norm[enough]
    step = max(1, int(sample.size // 250000))
    sample = sample[::step]
    med = float(np.median(sample))
    sd = float(mad_std(sample)) or float(np.std(sample)) or 1.0
    quality = float((norm[iy, ix] - med) / sd)
    fx, fy = _peak_position(corr, iy, ix)
    return float(fx - sx), float(fy - sy), quality


def _peak_position(corr: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-pixel position (x, y) of the correlation peak near ``(iy, ix)``.

    A compact peak gets a 3-point Gaussian fit per axis.  A trailed frame
    against an untrailed reference gives a ridge, flat along the trail,
    whose maximum wanders with the noise; its centre is then the weighted
    centroid of the part above half the peak.
    """
    from scipy import ndimage

    ny, nx = corr.shape
    h = PEAK_WINDOW
    y0, y1 = max(iy - h, 0), min(iy + h + 1, ny)
    x0, x1 = max(ix - h, 0), min(ix + h + 1, nx)
    win = corr[y0:y1, x0:x1]
    base = float(np.median(win))
    top = float(corr[iy, ix])
    above = win > base + 0.5 * (top - base)
    lab, _ = ndimage.label(above)
    comp = lab == lab[iy - y0, ix - x0]
    w = np.where(comp, win - (base + 0.5 * (top - base)), 0.0)
    yy, xx = np.nonzero(comp)
    ww = w[yy, xx]
    if not ww.sum() > 0:  # a flat surface (a flat field, pure noise): no peak to centre on
        return float(ix), float(iy)
    mx = (ww * xx).sum() / ww.sum()
    my = (ww * yy).sum() / ww.sum()
    cxx = (ww * (xx - mx) ** 2).sum() / ww.sum()
    cyy = (ww * (yy - my) ** 2).sum() / ww.sum()
    cxy = (ww * (xx - mx) * (yy - my)).sum() / ww.sum()
    ev = np.linalg.eigvalsh(np.array([[cxx, cxy], [cxy, cyy]]))
    if ev[1] > 2.0 and ev[1] > 2.0 * max(ev[0], 1e-6):
        return float(x0 + mx), float(y0 + my)
    # compact: the raw maximum may sit next to the normalised one
    j0, j1 = max(iy - 1, 0), min(iy + 2, ny)
    i0, i1 = max(ix - 1, 0), min(ix + 2, nx)
    dy, dx = np.unravel_index(int(np.argmax(corr[j0:j1, i0:i1])), (j1 - j0, i1 - i0))
    iy, ix = j0 + dy, i0 + dx
    if 0 < iy < ny - 1 and 0 < ix < nx - 1:
        fx, fy = _subpixel(corr, iy, ix)
    else:
        fx = fy = 0.0
    return float(ix + fx), float(iy + fy)
