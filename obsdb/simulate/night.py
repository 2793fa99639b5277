"""A whole night written to FITS files with its ``truth.json``: :func:`simulate_night`."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from obsdb.simulate.frames import simulate_frame
from obsdb.simulate.model import NIGHT_START, Detector, FrameSpec, SkyField, _centre, _shape, make_detector, make_sky
from obsdb.simulate.plan import _draw_conditions, _draw_pointing, plan_night
from obsdb.simulate.truth import NightTruth


def _airmass(hours_since_start: float) -> float:
    # The field culminates ~2 h into the night at 65 deg altitude and sinks ~12 deg an hour.
    alt = max(15.0, 65.0 - 12.0 * abs(hours_since_start - 2.0))
    return 1.0 / math.sin(math.radians(alt))


def _header(spec: FrameSpec, truth: dict, detector: Detector, object_name: str, date_obs: str,
            airmass: float, ccd_temp: float):
    from astropy.io import fits

    h = fits.Header()
    h["DATE-OBS"] = (date_obs, "UTC start of exposure (ISO-8601)")
    h["EXPTIME"] = (float(spec.exptime), "[s] Duration of exposure")
    h["EXPOSURE"] = (float(spec.exptime), "[s] Duration of exposure")
    h["SET-TEMP"] = (-20.0, "CCD temperature setpoint in C")
    h["CCD-TEMP"] = (round(ccd_temp, 3), "CCD temperature at start of exposure in C")
    h["XPIXSZ"] = (9.0, "Pixel width in microns (after binning)")
    h["YPIXSZ"] = (9.0, "Pixel height in microns (after binning)")
    h["XBINNING"] = (1, "Binning level along the X-axis")
    h["YBINNING"] = (1, "Binning level along the Y-axis")
    h["FILTER"] = (spec.band, "Filter name")
    h["IMAGETYP"] = (spec.image_type, "Type of image")
    h["OBJECT"] = (object_name if spec.is_light else "", "Target object name")
    h["TELESCOP"] = ("Simulated 0.6m f/8", "Telescope name")
    h["INSTRUME"] = ("SimCam KAF-1001E", "Detector instrument name")
    h["OBSERVER"] = ("obsdb", "Observer name")
    h["GAIN"] = (detector.gain, "[e-/ADU] Detector gain")
    h["RDNOISE"] = (detector.read_noise, "[e-] Read noise")
    h["SATURATE"] = (detector.saturate, "[ADU] Saturation level")
    h["AIRMASS"] = (round(airmass, 4), "Airmass at start of exposure")
    if spec.is_light:
        h["FOCPOS"] = (_focuser_position(spec), "Focuser position, steps")
    h["SWCREATE"] = ("obsdb.simulate", "Name of software")
    return h


FOCUSER_BEST = 5000
"""Focuser position (steps) of the simulated camera in focus; a ``defocus`` frame is
:data:`FOCUSER_DEFOCUS_STEPS` away: the focuser moved, as it does in a real defocus."""

FOCUSER_DEFOCUS_STEPS = 300


def _focuser_position(spec: FrameSpec) -> int:
    return FOCUSER_BEST + (FOCUSER_DEFOCUS_STEPS if spec.kind == "defocus" else 0)


def simulate_night(outdir, specs: list[FrameSpec] | None = None, *, seed=0, size=512,
                   n_stars: int | None = None, object_name: str = "NGC3293",
                   n_hot_pixels: int | None = None, n_cosmic_rays: int | None = None,
                   dtype: str = "float32", noise: bool = True, night_start: str = NIGHT_START,
                   bayer: str | None = None, progress=None, extra_stars=None, **plan_kwargs) -> NightTruth:
    """Simulate a night and write it to ``outdir``.

    Parameters
    ----------
    outdir : path-like
        Output folder (created).
    specs : list of FrameSpec, optional
        The frames in time order; default :func:`plan_night` with ``seed`` and
        ``plan_kwargs``.  ``None`` fields are drawn from the night's
        distributions; the list is not modified.
    seed : int
        Seed of everything (plan, sky, detector, conditions, noise).
    size : int or tuple of int
        ``(ny, nx)`` of every frame.
    n_stars : int, optional
        Number of stars in a frame-sized area; default scales with area,
        about 300 for 512x512 and 2000 for 2048x2048.
    object_name : str
        OBJECT header and file name prefix.
    n_hot_pixels : int, optional
        Hot pixels of the detector; default about 20 per 512x512.
    n_cosmic_rays : int, optional
        Cosmic rays per frame; default Poisson, mean 4 per 512x512 per 30 s.
    dtype : {"float32", "uint16"}
        Stored data type; ``uint16`` is written with BZERO=32768.
    night_start : str
        ISO UTC DATE-OBS of the first frame (default :data:`NIGHT_START`); another
        date makes another night of the same field.
    noise : bool
        False writes noise-free frames (for exact geometry tests; set
        ``n_hot_pixels=0`` and ``n_cosmic_rays=0`` too for clean frames).
    bayer : str, optional
        Simulate a colour sensor with this 2x2 pattern (``RGGB``, ``BGGR``, ``GRBG``,
        ``GBRG``): every pixel scaled by its channel's sensitivity
        (:data:`obsdb.imaging.bayer.RESPONSE`), BAYERPAT in the header.
    progress : callable, optional
        ``progress(done, total, file_name)`` after each frame is written.
    extra_stars : list of (x, y, flux), optional
        Stars placed by hand, in sky pixels (the grid of a frame at offset 0), added to
        the drawn field: a star a plan's box or reference-star position must find.
    **plan_kwargs
        Passed to :func:`plan_night` (``max_group_offset`` and
        ``max_rotation_deg`` also apply to missing pointings of given specs).

    Returns
    -------
    NightTruth
        Also written as ``outdir/truth.json``.  Files are
        ``outdir/{object_name}_{band}_{number:04d}.fits``.

    Notes
    -----
    ``simulate_night(d, seed=s, **kw)`` and
    ``simulate_night(d, plan_night(seed=s, **kw), seed=s)`` give the same night,
    so a planned night can be edited (say one frame made cloudy) and rendered
    with everything else unchanged.  Set an edited frame's drawn fields back to
    ``None`` (e.g. ``background``) to have them drawn for its new kind.

    Examples
    --------
    >>> truth = simulate_night(tmp_path, seed=1, size=256, n_frames=6)  # doctest: +SKIP
    >>> truth.shift(1004)                        # (x_ref - x_frame, y_ref - y_frame)  # doctest: +SKIP
    """
    if dtype not in ("float32", "uint16"):
        raise ValueError(f"dtype must be 'float32' or 'uint16', not {dtype!r}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    shape = _shape(size)
    plan_ss, sky_ss, det_ss, cond_ss, frames_ss = np.random.SeedSequence(seed).spawn(5)
    specs = _night_specs(specs, seed, plan_kwargs, pointing_rng=np.random.default_rng(plan_ss),
                         conditions_rng=np.random.default_rng(cond_ss))
    lights = [s for s in specs if s.is_light]
    ref = lights[0] if lights else specs[0]
    sky = _night_sky(specs, shape, n_stars, extra_stars, np.random.default_rng(sky_ss))
    detector = make_detector(seed=np.random.default_rng(det_ss), size=shape, n_hot_pixels=n_hot_pixels)

    frames = _write_frames(outdir, specs, sky, detector, ref, shape, rngs=frames_ss.spawn(len(specs)),
                           start=datetime.fromisoformat(night_start), object_name=object_name, dtype=dtype,
                           bayer=bayer, noise=noise, n_cosmic_rays=n_cosmic_rays, progress=progress)
    night = NightTruth(
        reference=int(ref.number), frames=frames,
        hot_pixels=[[int(x), int(y)] for x, y in zip(detector.hot_x, detector.hot_y)],
        size=list(shape), seed=seed if isinstance(seed, (int, type(None))) else None,
        stars={"x": sky.x.tolist(), "y": sky.y.tolist(), "flux": sky.flux.tolist()},
        detector={"gain": detector.gain, "read_noise": detector.read_noise,
                  "saturate": detector.saturate},
        object_name=object_name)
    night.save(outdir / "truth.json")
    return night


def _night_specs(specs, seed, plan_kwargs: dict, *, pointing_rng, conditions_rng) -> list[FrameSpec]:
    """The night's frames, every drawn field filled in: :func:`plan_night`'s plan, or a copy of ``specs``
    with missing pointings drawn.  Raises ValueError for no frames or a repeated number."""
    if specs is None:
        # The same plan as plan_night(seed=seed): a caller can plan, edit a spec, and re-simulate.
        specs = plan_night(seed=seed, **plan_kwargs)
    else:
        unknown = set(plan_kwargs) - {"max_group_offset", "max_rotation_deg"}
        if unknown:
            raise TypeError(f"with explicit specs, unexpected arguments: {sorted(unknown)}")
        specs = [dataclasses.replace(s) for s in specs]
        _draw_pointing(specs, pointing_rng, max_group_offset=plan_kwargs.get("max_group_offset", 150.0),
                       max_rotation_deg=plan_kwargs.get("max_rotation_deg", 0.0))
    if not specs:
        raise ValueError("no frames to simulate")
    numbers = [s.number for s in specs]
    if len(set(numbers)) != len(numbers):
        raise ValueError("frame numbers must be unique")
    _draw_conditions(specs, conditions_rng)
    return specs


def _night_sky(specs: list[FrameSpec], shape, n_stars: int | None, extra_stars, rng) -> SkyField:
    """A sky that covers every frame at every pointing, rotated corners included, plus ``extra_stars``."""
    ny, nx = shape
    reach = max(math.hypot(*s.offset) for s in specs)
    rot = max(abs(s.rotation_deg) for s in specs)
    corner = math.hypot(nx, ny) / 2.0
    rot_pad = corner * 2 * math.sin(math.radians(min(rot, 90.0)) / 2) if rot else 0.0
    trail = max(s.trail_length for s in specs)
    fwhm = max(s.fwhm for s in specs)
    # A fixed margin (enough for default trails and defocus) keeps the sky, and so every
    # other frame, unchanged when one frame's kind is edited.
    pad = int(math.ceil(reach + rot_pad + max(64.0, trail / 2 + 3 * fwhm + 16)))
    extent = (ny + 2 * pad, nx + 2 * pad)
    if n_stars is None:
        n_stars = _default_n_stars(shape)
    n_sky = int(round(n_stars * extent[0] * extent[1] / (ny * nx)))
    sky = make_sky(seed=rng, n_stars=n_sky, extent=extent, center=_centre(shape))
    if extra_stars:
        xs, ys, fluxes = (np.array(v, dtype=float) for v in zip(*extra_stars))
        sky = dataclasses.replace(sky, x=np.concatenate([sky.x, xs]), y=np.concatenate([sky.y, ys]),
                                  flux=np.concatenate([sky.flux, fluxes]))
    return sky


def _write_frames(outdir: Path, specs, sky, detector, ref, shape, *, rngs, start, object_name, dtype, bayer, noise,
                  n_cosmic_rays, progress) -> list[dict]:
    """Simulate and write every frame in time order (exposures 10-30 s apart); each frame's truth."""
    t = 0.0
    frames = []
    for spec, rng in zip(specs, (np.random.default_rng(s) for s in rngs)):
        data, truth = simulate_frame(spec, sky, rng=rng, size=shape, detector=detector,
                                     reference_offset=ref.offset,
                                     reference_rotation_deg=ref.rotation_deg,
                                     n_cosmic_rays=n_cosmic_rays, noise=noise)
        date_obs = (start + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        airmass = _airmass(t / 3600.0)
        header = _header(spec, truth, detector, object_name, date_obs, airmass,
                         -20.0 + rng.normal(0, 0.05))
        t += spec.exptime + rng.uniform(10.0, 30.0)
        name = f"{object_name}_{spec.band}_{spec.number:04d}.fits"
        _write_frame(outdir / name, data, header, dtype=dtype, bayer=bayer)
        truth.update(file=name, date_obs=date_obs, airmass=airmass)
        frames.append(truth)
        if progress is not None:
            progress(len(frames), len(specs), name)
    return frames


def _write_frame(path: Path, data: np.ndarray, header, *, dtype: str, bayer: str | None) -> None:
    """Write one frame: through a colour filter mosaic when ``bayer`` names one, as uint16 (BZERO 32768)
    or float32."""
    from astropy.io import fits

    from obsdb.imaging.fitsio import atomic_write_fits

    if bayer is not None:
        # A one-shot colour camera: each pixel sees the sky through its filter of the 2x2 pattern.
        from obsdb.imaging.bayer import mosaic_response

        data = data * mosaic_response(data.shape, bayer)
        header["BAYERPAT"] = (bayer, "Bayer colour filter pattern")
    if dtype == "uint16":
        hdu = fits.PrimaryHDU(np.clip(np.rint(data), 0, 65535).astype(np.uint16), header=header)
    else:
        hdu = fits.PrimaryHDU(data, header=header)
    atomic_write_fits(path, [hdu])


def _default_n_stars(shape) -> int:
    # ~300 in 512^2 and ~2000 in 2048^2: density falls slowly with area (n ~ area^0.68).
    area = shape[0] * shape[1]
    return max(1, int(round(300.0 * (area / 512**2) ** 0.684)))
