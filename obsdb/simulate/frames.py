"""One frame's pixels: the geometry from sky to frame, stars (pixel-integrated Gaussians), trails,
streaks, noise and cosmic rays (see :mod:`obsdb.simulate` for the geometry)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from obsdb.imaging.transform import Transform
from obsdb.simulate.model import (
    Detector,
    FrameSpec,
    REFERENCE_EXPTIME,
    SkyField,
    _EXACT_POISSON_BELOW,
    _centre,
    _rng,
    _shape,
)
from obsdb.simulate.plan import _draw_conditions, _draw_pointing


def _rotation(deg):
    t = math.radians(deg)
    return math.cos(t), math.sin(t)


def _sky_to_frame(xs, ys, offset, rotation_deg, centre):
    cx, cy = centre
    c, s = _rotation(rotation_deg)
    u = np.asarray(xs, dtype=float) - cx - offset[0]
    v = np.asarray(ys, dtype=float) - cy - offset[1]
    return cx + c * u + s * v, cy - s * u + c * v


def _frame_transform(offset, rotation_deg, ref_offset, ref_rotation_deg, centre) -> Transform:
    """Frame pixels -> reference pixels, as ``T_ref^-1 . T_frame`` about the frame centre."""
    c, s = _rotation(ref_rotation_deg)
    ox, oy = offset[0] - ref_offset[0], offset[1] - ref_offset[1]
    # R(-t_ref) applied to the offset difference.
    dx, dy = c * ox + s * oy, -s * ox + c * oy
    return Transform(float(dx), float(dy), float(rotation_deg - ref_rotation_deg), 1.0,
                     float(centre[0]), float(centre[1]))


# --------------------------------------------------------------------------- rendering


def _render_stars(shape, x, y, flux, fwhm_x, fwhm_y, trail_length=0.0, trail_angle_deg=0.0,
                  chunk=512):
    """Sum of pixel-integrated (trailed) Gaussians, exact up to truncation at ~7 sigma."""
    from scipy.special import erf

    ny, nx = shape
    image = np.zeros(ny * nx)
    sx, sy = fwhm_x / 2.3548200450309493, fwhm_y / 2.3548200450309493
    half = int(math.ceil(7.0 * max(sx, sy) + trail_length / 2.0)) + 1
    keep = (x > -half) & (x < nx - 1 + half) & (y > -half) & (y < ny - 1 + half) & (flux > 0)
    x, y, flux = x[keep], y[keep], flux[keep]
    if not len(x):
        return image.reshape(shape)
    if trail_length > 0:
        # Points spaced <= sigma apart: the ripple of such a sum is ~exp(-2 pi^2) of the
        # profile, far below noise; symmetric spacing keeps the centroid on the midpoint.
        n_sub = int(math.ceil(trail_length / min(1.0, sx, sy))) + 1
        t = np.linspace(-trail_length / 2.0, trail_length / 2.0, n_sub)
        ct, st = _rotation(trail_angle_deg)
        tx, ty = t * ct, t * st
    else:
        n_sub = 1
        tx = ty = np.zeros(1)
    k = 2 * half + 1
    steps = np.arange(k)
    edges = np.arange(k + 1) - 0.5
    idx_parts, w_parts = [], []
    for lo in range(0, len(x), chunk):
        xc, yc, fc = x[lo:lo + chunk], y[lo:lo + chunk], flux[lo:lo + chunk]
        ix0 = np.rint(xc).astype(np.int64) - half
        iy0 = np.rint(yc).astype(np.int64) - half
        # Sub-star positions relative to each stamp's first pixel, shape (n, n_sub).
        px = (xc - ix0)[:, None] + tx[None, :]
        py = (yc - iy0)[:, None] + ty[None, :]
        gx = np.diff(erf((edges[None, None, :] - px[:, :, None]) / (math.sqrt(2) * sx)), axis=-1)
        gy = np.diff(erf((edges[None, None, :] - py[:, :, None]) / (math.sqrt(2) * sy)), axis=-1)
        # Separable PSF: each sub-star is outer(gy, gx); summing them is one matmul per star.
        stamps = np.matmul(gy.transpose(0, 2, 1), gx) * (0.25 * fc / n_sub)[:, None, None]
        xx = ix0[:, None] + steps[None, :]
        yy = iy0[:, None] + steps[None, :]
        inside = ((yy >= 0) & (yy < ny))[:, :, None] & ((xx >= 0) & (xx < nx))[:, None, :]
        flat = yy[:, :, None] * nx + xx[:, None, :]
        idx_parts.append(flat[inside])
        w_parts.append(stamps[inside])
    image += np.bincount(np.concatenate(idx_parts), weights=np.concatenate(w_parts),
                         minlength=ny * nx)
    return image.reshape(shape)


def render_streak(shape, x0: float, y0: float, x1: float, y1: float, width: float,
                  brightness: float) -> np.ndarray:
    """A satellite streak: a straight line with a Gaussian cross profile, between two end points.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    x0, y0, x1, y1 : float
        0-based end points of the centre line (may lie outside the frame).
    width : float
        FWHM of the cross profile, px.
    brightness : float
        ADU per pixel on the centre line (the profile's peak); the ends fall off
        over one ``width`` (a satellite's image is the PSF swept along the line).

    Returns
    -------
    numpy.ndarray
        The streak alone (float64), to add to a frame before its noise.
    """
    from scipy.special import erf

    ny, nx = shape
    length = math.hypot(x1 - x0, y1 - y0)
    sigma = width / 2.3548200450309493
    yy, xx = np.mgrid[0:ny, 0:nx]
    if length < 1e-9:
        return np.zeros(shape)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    rx, ry = xx - x0, yy - y0
    across = rx * uy - ry * ux
    along = rx * ux + ry * uy
    # Beyond the end points the swept PSF falls off as the PSF does: half an erf step at each end.
    ends = 0.5 * (erf(along / (math.sqrt(2) * sigma)) - erf((along - length) / (math.sqrt(2) * sigma)))
    return brightness * np.exp(-0.5 * (across / sigma) ** 2) * ends


def _add_noise(model, rng, gain, read_noise, pedestal=0.0):
    """Shot noise (exact Poisson where counts are low, Gaussian elsewhere) plus read noise.

    ``pedestal`` is an electronic offset (bias level): it carries no shot noise.
    """
    model = model - pedestal
    electrons = np.clip(model, 0, None) * gain
    sigma = np.sqrt(electrons + read_noise ** 2)
    noisy = electrons + sigma * rng.standard_normal(model.shape, dtype=np.float32)
    low = electrons < _EXACT_POISSON_BELOW
    if low.any():
        noisy[low] = rng.poisson(electrons[low]) + read_noise * rng.standard_normal(int(low.sum()))
    return noisy / gain + pedestal


def _cosmic_rays(shape, n, rng):
    """1-3 pixel sharp hits; returns flat indices, values and the hit centres."""
    ny, nx = shape
    cx = rng.integers(0, nx, n)
    cy = rng.integers(0, ny, n)
    idx, val = [], []
    for x, y in zip(cx, cy):
        energy = rng.uniform(800.0, 20000.0)
        npix = int(rng.integers(1, 4))
        pts = [(x, y)]
        for _ in range(npix - 1):
            ddx, ddy = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1)][int(rng.integers(5))]
            pts.append((pts[-1][0] + ddx, pts[-1][1] + ddy))
        for j, (px, py) in enumerate(pts):
            if 0 <= px < nx and 0 <= py < ny:
                idx.append(py * nx + px)
                val.append(energy * (1.0 if j == 0 else rng.uniform(0.2, 0.7)))
    return (np.array(idx, dtype=np.int64), np.array(val, dtype=float),
            [[int(x), int(y)] for x, y in zip(cx, cy)])


def simulate_frame(spec: FrameSpec, sky: SkyField | None, *, rng, size, detector: Detector,
                   reference_offset=(0.0, 0.0), reference_rotation_deg: float = 0.0,
                   n_cosmic_rays: int | None = None, noise: bool = True,
                   ellipticity: float | None = None) -> tuple[np.ndarray, dict]:
    """Render one frame and its truth.

    Parameters
    ----------
    spec : FrameSpec
        What to render; ``None`` fields are drawn from ``rng`` (defaults of a night).
        The spec is not modified.
    sky : SkyField or None
        The stars (ignored for bias, dark and flat frames).
    rng : numpy.random.Generator or int
        Randomness of this frame (noise, cosmic rays, PSF ellipticity, missing fields).
    size : int or tuple of int
        ``(ny, nx)`` of the frame.
    detector : Detector
        Hot pixels, gain, read noise, saturation.
    reference_offset, reference_rotation_deg
        Pointing of the reference frame, for the truth shift ``dx, dy``.
    n_cosmic_rays : int, optional
        Number of cosmic-ray hits; default Poisson with mean 4 per 512x512 per 30 s.
    noise : bool
        False gives the noise-free model (still with hot pixels and cosmic rays
        unless those are set to zero).
    ellipticity : float, optional
        Axis ratio of the PSF (>= 1); default 1-1.08 for light frames.

    Returns
    -------
    data : numpy.ndarray
        float32 image in ADU, clipped at ``detector.saturate``.
    truth : dict
        Per-frame truth (see :class:`NightTruth`), with ``file`` left ``None``.
    """
    rng = _rng(rng)
    shape = _shape(size)
    ny, nx = shape
    centre = _centre(shape)
    spec = dataclasses.replace(spec)
    if spec.offset is None or spec.rotation_deg is None:
        _draw_pointing([spec], rng, max_group_offset=0.0, max_rotation_deg=0.0)
    _draw_conditions([spec], rng)
    scale = spec.exptime / REFERENCE_EXPTIME
    if ellipticity is None:
        ellipticity = 1.0 + rng.uniform(0.0, 0.08) if spec.is_light else 1.0
    # Elongate along x or y at random, keeping the geometric-mean FWHM.
    if rng.random() < 0.5:
        fwhm_x, fwhm_y = spec.fwhm * math.sqrt(ellipticity), spec.fwhm / math.sqrt(ellipticity)
    else:
        fwhm_x, fwhm_y = spec.fwhm / math.sqrt(ellipticity), spec.fwhm * math.sqrt(ellipticity)

    gradient = (0.0, 0.0)
    if spec.image_type == "Light Frame":
        frac = rng.uniform(0.1, 0.3) if spec.kind == "cloud" else rng.uniform(0.0, 0.03)
        a = rng.uniform(0, 2 * math.pi)
        g = frac * spec.background / max(nx, ny)
        gradient = (g * math.cos(a), g * math.sin(a))
        xs, ys = _sky_to_frame(sky.x, sky.y, spec.offset, spec.rotation_deg, centre)
        flux = sky.flux * spec.transparency * scale
        model = _render_stars(shape, xs, ys, flux, fwhm_x, fwhm_y,
                              spec.trail_length, spec.trail_angle_deg)
        model += spec.background
        for streak in spec.streaks or ():
            model += render_streak(shape, streak["x0"], streak["y0"], streak["x1"], streak["y1"],
                                   streak["width"], streak["brightness"])
        if gradient != (0.0, 0.0):
            model += (gradient[0] * (np.arange(nx) - centre[0]))[None, :]
            model += (gradient[1] * (np.arange(ny) - centre[1]))[:, None]
        hot_scale = scale
        pedestal = 0.0
    elif spec.image_type == "Flat Field":
        yy, xx = np.mgrid[0:ny, 0:nx]
        r2 = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (0.5 * max(nx, ny)) ** 2
        model = 25000.0 * (1.0 - 0.15 * r2) + detector.bias_level
        hot_scale = scale
        pedestal = detector.bias_level
    else:
        model = np.full(shape, detector.bias_level, dtype=float)
        hot_scale = scale if spec.image_type == "Dark Frame" else 0.0
        pedestal = detector.bias_level
        if spec.image_type == "Dark Frame":
            model += 0.02 * spec.exptime

    if hot_scale:
        np.add.at(model, (detector.hot_y, detector.hot_x), detector.hot_value * hot_scale)
    if noise:
        model = _add_noise(model, rng, detector.gain, detector.read_noise, pedestal)
    if n_cosmic_rays is None:
        n_cosmic_rays = int(rng.poisson(4.0 * nx * ny / 512**2 * max(spec.exptime, 1.0) / REFERENCE_EXPTIME))
    cr_idx, cr_val, cr_pos = _cosmic_rays(shape, n_cosmic_rays, rng)
    if len(cr_idx):
        flat = model.reshape(-1)
        np.add.at(flat, cr_idx, cr_val)
    data = np.clip(model, None, detector.saturate).astype(np.float32)

    transform = _frame_transform(spec.offset, spec.rotation_deg, reference_offset,
                                 reference_rotation_deg, centre)
    truth = {
        "number": int(spec.number),
        "file": None,
        "band": spec.band,
        "group": int(spec.group),
        "kind": spec.kind,
        "image_type": spec.image_type,
        "dx": transform.dx,
        "dy": transform.dy,
        "rotation_deg": float(spec.rotation_deg),
        "offset": [float(spec.offset[0]), float(spec.offset[1])],
        "fwhm": float(spec.fwhm),
        "fwhm_x": float(fwhm_x),
        "fwhm_y": float(fwhm_y),
        "ellipticity": float(ellipticity),
        "background": float(spec.background),
        "background_gradient": [float(gradient[0]), float(gradient[1])],
        "transparency": float(spec.transparency),
        "trail_length": float(spec.trail_length),
        "trail_angle_deg": float(spec.trail_angle_deg),
        "streaks": [{k: float(v) for k, v in streak.items()} for streak in (spec.streaks or ())
                    if spec.image_type == "Light Frame"],
        "exptime": float(spec.exptime),
        "n_cosmic_rays": int(n_cosmic_rays),
        "cosmic_rays": cr_pos,
    }
    return data, truth
