"""A simulated *raw* night: bias, dark, flat and light frames with overscan, and the truth they hide.

What `obsdb calibrate` has to undo, with known answers (`obsdb simulate --raw` writes it):

* a bias level with structure (a fixed column pattern and a slope along the rows, beyond the
  overscan) and read noise; each frame's level drifts by a few ADU and along its rows, which the
  overscan columns (BIASSEC) record;
* dark current that doubles every :data:`DARK_DOUBLING_C` degrees, with hot pixels;
* a vignetted flat with dust donuts (rings of shadow, as out-of-focus dust gives);
* the sets: bias frames, darks of the lights' exposure at the lights' temperature plus one
  **mis-temperatured** dark (its current 16 times higher: `obsdb qa` tags it ``calib-level``),
  twilight flats plus one **saturated** flat (``calib-saturated``), and light frames of a star field
  at two exposures (the longer one calibrated with the shorter dark, scaled by exposure).

Pure numpy; the truth (the sky and stars each light saw, before the flat, in ADU) is returned and
written beside the frames as ``truth.npz``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

BIAS_LEVEL = 1000.0
"""Bias level, ADU."""
READ_NOISE = 5.0
"""Read noise, ADU (gain 1 e-/ADU)."""
OVERSCAN_COLUMNS = 24
"""Overscan columns to the right of the image area."""
DARK_RATE = 0.05
"""Dark current at :data:`DETECTOR_TEMP`, ADU/s."""
DARK_DOUBLING_C = 6.0
"""Dark current doubles for every this many degrees warmer."""
DETECTOR_TEMP = -10.0
"""The detector's set point, C."""
WARM_DARK_TEMP = 14.0
"""The mis-temperatured dark's temperature, C (cooler off: 16x the current)."""
HOT_PIXEL_FRACTION = 1e-3
"""Fraction of pixels that are hot."""
SATURATION = 65535
"""Saturation level, ADU."""
SKY_RATE = 12.0
"""Sky, ADU/s before the flat."""
FLAT_LEVEL = 20000.0
"""Twilight flat level, ADU."""
START = datetime(2026, 3, 14, 19, 0, 0)
"""First frame's time (UTC): a night of its own."""


def dark_rate(temperature: float) -> float:
    """Mean dark current at ``temperature``, ADU/s (doubling every :data:`DARK_DOUBLING_C`)."""
    return DARK_RATE * 2.0 ** ((temperature - DETECTOR_TEMP) / DARK_DOUBLING_C)


def _detector(rng, shape):
    """Bias structure, hot-pixel map (relative dark current) and the flat, for one detector."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    structure = (rng.normal(0.0, 2.0, width)[None, :] + 6.0 * y / height).astype(np.float32)
    relative_dark = np.ones(shape, np.float32)
    hot = rng.random(shape) < HOT_PIXEL_FRACTION
    relative_dark[hot] = rng.uniform(40.0, 400.0, int(hot.sum()))
    r2 = ((x - width / 2) / width) ** 2 + ((y - height / 2) / height) ** 2
    flat = 1.0 - 0.5 * r2                                   # vignetting: ~ -12 % in the corners
    for cy, cx, radius in ((0.3 * height, 0.25 * width, 9.0), (0.7 * height, 0.65 * width, 12.0)):
        r = np.hypot(x - cx, y - cy)
        flat *= 1.0 - 0.06 * np.exp(-((r - radius) / 2.5) ** 2)   # a dust donut, 6 % deep on its ring
    flat /= np.median(flat)
    return structure, relative_dark, flat.astype(np.float32)


def _stars(rng, shape, n_stars: int, fwhm: float = 3.0):
    """A star field (Gaussian stars), ADU per second before the flat."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros(shape, np.float32)
    sigma = fwhm / 2.3548
    for _ in range(n_stars):
        cx, cy = rng.uniform(8, width - 8), rng.uniform(8, height - 8)
        flux = 10 ** rng.uniform(2.0, 3.5)                  # 100-3000 ADU/s
        image += (flux / (2 * np.pi * sigma ** 2) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
                  ).astype(np.float32)
    return image


def _raw(rng, signal, structure, *, drift: float):
    """Read out ``signal`` (ADU, photon noise already in it): bias, structure, read noise, overscan."""
    height, width = signal.shape
    raw = np.empty((height, width + OVERSCAN_COLUMNS), np.float32)
    raw[:, :width] = signal + structure
    raw[:, width:] = 0.0
    # The level of each line drifts (as read-out electronics do): the overscan records it.
    line = BIAS_LEVEL + drift + 2.0 * np.sin(np.arange(height) / 17.0)
    raw += line[:, None].astype(np.float32)
    raw += rng.normal(0.0, READ_NOISE, raw.shape).astype(np.float32)
    return np.clip(np.round(raw), 0, SATURATION).astype(np.uint16)


def simulate_raw_night(outdir, *, seed: int = 0, size=(200, 256), n_bias: int = 9, n_darks: int = 5,
                       n_flats: int = 5, exposures=(60.0, 60.0, 60.0, 120.0, 120.0), band: str = "V",
                       n_stars: int = 40) -> dict:
    """Write a raw night into ``outdir`` and return its truth.

    Parameters
    ----------
    outdir : path-like
        Folder (created); frames ``bias-NN.fits``, ``dark-NN.fits`` (the last one warm),
        ``flat-V-NN.fits`` (the last one saturated), ``light-NN.fits``, and ``truth.npz``.
    seed : int
    size : (int, int)
        Image area (height, width); the frames have :data:`OVERSCAN_COLUMNS` more columns.
    exposures : sequence of float
        One light per value, s; darks are taken at the first value.

    Returns
    -------
    dict
        ``structure``, ``flat``, ``dark_rate`` (per-pixel ADU/s at the set point), ``lights``
        (file name -> true sky and stars in ADU, before the flat), ``warm_dark``, ``saturated_flat``
        (their file names), ``sky`` (ADU/s).
    """
    from astropy.io import fits

    from obsdb.imaging.fitsio import atomic_write_fits

    rng = np.random.default_rng(seed)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    height, width = size
    structure, relative_dark, flat = _detector(rng, (height, width))
    stars = _stars(rng, (height, width), n_stars)
    when = [START]

    def write(name, data, kind, exptime, temperature, **cards):
        header = fits.Header()
        header["IMAGETYP"] = kind
        header["DATE-OBS"] = when[0].strftime("%Y-%m-%dT%H:%M:%S")
        header["EXPTIME"] = exptime
        header["CCD-TEMP"] = temperature
        header["TELESCOP"] = "SIM-RAW"
        header["INSTRUME"] = "SIMCAM"
        header["XBINNING"] = 1
        header["YBINNING"] = 1
        header["SATURATE"] = SATURATION
        header["BIASSEC"] = f"[{width + 1}:{width + OVERSCAN_COLUMNS},1:{height}]"
        header["TRIMSEC"] = f"[1:{width},1:{height}]"
        for key, value in cards.items():
            header[key] = value
        atomic_write_fits(out / name, fits.HDUList([fits.PrimaryHDU(data, header=header)]))
        when[0] += timedelta(seconds=exptime + 30)

    def dark_signal(exptime, temperature):
        return rng.poisson(dark_rate(temperature) * relative_dark * exptime).astype(np.float32)

    for i in range(n_bias):
        write(f"bias-{i:02d}.fits", _raw(rng, np.zeros((height, width), np.float32), structure,
                                         drift=rng.normal(0, 3)), "BIAS", 0.0, DETECTOR_TEMP)
    dark_time = float(exposures[0])
    for i in range(n_darks + 1):
        temperature = WARM_DARK_TEMP if i == n_darks else DETECTOR_TEMP + rng.normal(0, 0.2)
        write(f"dark-{i:02d}.fits", _raw(rng, dark_signal(dark_time, temperature), structure, drift=rng.normal(0, 3)),
              "DARK", dark_time, round(float(temperature), 2))
    for i in range(n_flats + 1):
        level = 4.0 * FLAT_LEVEL if i == n_flats else FLAT_LEVEL * (0.8 + 0.1 * i)
        signal = rng.poisson(level * flat).astype(np.float32) + dark_signal(3.0, DETECTOR_TEMP)
        write(f"flat-{band}-{i:02d}.fits", _raw(rng, signal, structure, drift=rng.normal(0, 3)), "FLAT", 3.0,
              DETECTOR_TEMP, FILTER=band)
    when[0] += timedelta(hours=1)
    lights = {}
    for i, exptime in enumerate(exposures):
        truth = (SKY_RATE + stars) * np.float32(exptime)
        signal = rng.poisson(truth * flat).astype(np.float32) + dark_signal(exptime, DETECTOR_TEMP)
        name = f"light-{i:02d}.fits"
        write(name, _raw(rng, signal, structure, drift=rng.normal(0, 3)), "LIGHT", float(exptime), DETECTOR_TEMP,
              FILTER=band, OBJECT="SIM FIELD", RA=150.0, DEC=20.0)
        lights[name] = truth.astype(np.float32)
    result = {"structure": structure, "flat": flat, "dark_rate": (DARK_RATE * relative_dark).astype(np.float32),
              "lights": lights, "warm_dark": f"dark-{n_darks:02d}.fits",
              "saturated_flat": f"flat-{band}-{n_flats:02d}.fits", "sky": SKY_RATE}
    np.savez_compressed(out / "truth.npz", structure=structure, flat=flat, dark_rate=result["dark_rate"],
                        **{f"light:{name}": data for name, data in lights.items()})
    return result
