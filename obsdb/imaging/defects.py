"""Pixels no star can make: hot pixels and cosmic-ray hits, found in one frame.

A star's light is spread by the seeing: the pixels next to its peak hold a
large fraction of the peak (``exp(-4 ln 2 / FWHM**2)``, 64 % at a FWHM of
2.5 px).  A hot pixel or a cosmic-ray hit on one pixel stands alone above
its neighbours.  Left in a frame, such a pixel rings through any
interpolation wider than the nearest pixel (a cubic spline turns a single
65535 ADU pixel into a 5x5 pattern from -7,900 to +47,000 ADU), and in a
stack of frames dithered by a few pixels it does not average out.
"""

from __future__ import annotations

import math

import numpy as np

from obsdb.imaging.stats import MAD_TO_STD

SHARPNESS_MARGIN = 3.0
"""A pixel is a defect when it stands this many times sharper above its neighbours than a star's
peak of the frame's FWHM would (and is significant, see :func:`sharp_defects`)."""


def sharp_defects(data, *, fwhm: float | None = None, nsigma: float = 6.0) -> np.ndarray:
    """Mask of single pixels that stand far above all their neighbours: hot pixels, cosmic-ray hits.

    A pixel is a defect when (1) it stands ``nsigma`` sky sigmas above the
    sky, and (2) at most two of its four side neighbours reach the share of
    its height that a star of the frame's FWHM gives them
    (``exp(-4 ln 2 / FWHM**2)``, divided by :data:`SHARPNESS_MARGIN`): a star
    lights all four, a hot pixel none, a one-pixel-wide cosmic-ray track two.
    A noise spike on a bright star fails (2): its neighbours are bright too.

    Parameters
    ----------
    data : array_like, 2-D
        The frame (NaN allowed; never modified).
    fwhm : float, optional
        The frame's star FWHM in pixels (from its metrics); 2 px when unknown.
        Sharper frames need more contrast before a pixel is called a defect,
        so an undersampled star's peak is not taken for one.
    nsigma : float
        Height above the sky, in sky sigmas, below which nothing is a defect.

    Returns
    -------
    numpy.ndarray of bool
        True at the defects.
    """
    img = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(img)
    every = bool(finite.all())
    if not every and not finite.any():
        return np.zeros(img.shape, dtype=bool)
    # Every 7th finite pixel; without NaNs a strided view of the same pixels, without copying the frame.
    sample = img.reshape(-1)[::7] if every else img[finite][::7]
    median = np.median(sample)
    sky = float(median)
    # astropy's mad_std of the sample, from the median just taken (mad_std takes it again: a third of
    # this function's time on a 2k frame); a test checks the two agree to the bit.
    noise = float(np.median(np.abs(sample - median)) * MAD_TO_STD) or float(np.std(sample)) or 1.0
    height = (img if every else np.where(finite, img, np.float32(sky))) - np.float32(sky)
    width = max(float(fwhm) if fwhm and math.isfinite(fwhm) else 2.0, 0.8)
    # A star's side neighbours hold exp(-4 ln2 / FWHM^2) of its peak (taken at the diagonal's distance,
    # for elongated stars); a defect's are at least SHARPNESS_MARGIN times fainter than that.
    share = math.exp(-4 * math.log(2) * 2 / width ** 2) / SHARPNESS_MARGIN
    # Only significant pixels can be defects: the tests below run on them alone (a few per cent of
    # the frame), their neighbours looked up by index, with the frame's edge pixels repeated beyond it.
    candidates = np.flatnonzero(finite & (height > nsigma * noise))
    ny, nx = height.shape
    flat = height.reshape(-1)
    ys, xs = np.divmod(candidates, nx)
    neighbours = [np.clip(ys + dy, 0, ny - 1) * nx + np.clip(xs + dx, 0, nx - 1)
                  for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    found = np.zeros(flat.shape, dtype=bool)
    centre = flat[candidates]
    sides = [flat[index] for index in neighbours]
    is_found = np.zeros(candidates.shape, dtype=bool)
    # A defect is a local peak that lights at most two of its four side neighbours (a star lights all
    # four, a hot pixel none, a one-pixel-wide cosmic-ray track two).  Masked pixels are then taken
    # as sky and the search repeated, so a track is followed from its brightest pixel on.
    for _ in range(3):
        # Lit within the noise: a faint star's neighbour may fall a little short of its share.
        floor = centre * np.float32(share) - np.float32(2 * noise)
        lit = np.zeros(candidates.shape, dtype=np.uint8)
        peak = np.ones(candidates.shape, dtype=bool)
        for index, side in zip(neighbours, sides):
            side = np.where(found[index], np.float32(0), side)
            lit += side > floor
            peak &= centre >= side
        new = ~is_found & peak & (lit <= 2)
        if not new.any():
            break
        is_found |= new
        found[candidates[new]] = True
    return found.reshape(height.shape)


DETECTOR_DEFECTS_VERSION = "detector-1"
"""Version of :func:`detector_defects`: a render recomputes a night's stored map when it changes."""

DETECTOR_SAMPLE = 9
"""Frames of a night (per instrument and frame size) whose median shows the detector's own defects."""


def detector_defects(frames, *, fwhm: float | None = None, nsigma: float = 6.0,
                     max_fraction: float = 0.01) -> np.ndarray:
    """Mask of the pixels that are hot in the median of several frames, in detector coordinates.

    A warm pixel a few sigma above the sky hides in the noise of one frame
    but not in the lower quartile of nine, whose noise is about twice lower;
    a cosmic-ray hit, or a star that the dithers move across the pixel in a
    few frames, is gone from it.  So the quartile shows what the detector
    adds at the same pixel in every frame.  With no
    cosmic-ray tracks left to follow, a defect there is a single pixel whose
    four side neighbours stay, on average, near the sky; a star that stays
    put lights them to a share of its peak that its FWHM fixes.

    Parameters
    ----------
    frames : sequence of 2-D arrays
        Frames of one night and instrument, all of one shape, as read (not aligned), or their
        :func:`levelled_frame` copies, which the search reorders.
        At least three; fewer give an empty mask (a median of two does not reject a hit).
    fwhm : float, optional
        The frames' typical star FWHM in pixels.
    nsigma : float
        Height above the local sky of the quartile image, in that image's own sigmas.
    max_fraction : float
        A mask covering more than this fraction of the pixels is not a set of
        defects (a frame of another field, a flat among lights): an empty mask is returned.

    Returns
    -------
    numpy.ndarray of bool
        True at the detector's defects.
    """
    # Each frame is copied once, levelled, into float32 (sorted in place below: no cube of them all, no
    # second copy); frames that are already levelled_frame's copies are used as they are.
    levelled = [f if isinstance(f, LevelledFrame) else levelled_frame(f) for f in frames]
    if len(levelled) < 3 or len({f.shape for f in levelled}) != 1:
        shape = levelled[0].shape if levelled else (0, 0)
        return np.zeros(shape, dtype=bool)
    frames = [np.asarray(f) for f in levelled]  # plain views of the same pixels
    del levelled
    # The lower quartile, not the median: a star dithered across a pixel lights it in a few frames, the
    # detector in all of them.  An order statistic by partition: nanpercentile loops over pixels in Python.
    rank = (len(frames) - 1) // 4
    quartile = _order_statistic_in_place(frames, rank)
    found = _isolated_pixels(quartile, fwhm=fwhm, nsigma=nsigma)
    if found.mean() > max_fraction:
        return np.zeros(found.shape, dtype=bool)
    return found


class LevelledFrame(np.ndarray):
    """A frame as :func:`detector_defects` searches it (see :func:`levelled_frame`); the search may reorder it."""


def levelled_frame(frame) -> LevelledFrame:
    """A float32 copy of a frame less its sky level, with 0 (sky) where it has no data.

    Sky levels differ from frame to frame (cloud, twilight): levelled, the median of several is not
    one frame's.  A caller that reads frames one by one levels each as it is read, so that only the
    levelled copies are held (render: nine 2k frames in 150 MB instead of 300).

    Parameters
    ----------
    frame : array_like, 2-D
        The frame as read (never modified).

    Returns
    -------
    LevelledFrame
        A float32 array, for :func:`detector_defects` (which sorts such frames in place).
    """
    frame = np.asarray(frame)
    level = np.float32(np.nanmedian(frame[::4, ::4].astype(np.float32)))
    work = np.subtract(frame, level, dtype=np.float32)
    # A pixel with no data in a frame counts as sky there (0 after levelling): it is then no defect.
    # Finite extremes prove every pixel finite (NaN and inf reach them), sparing the masks.
    if not (np.isfinite(work.min()) and np.isfinite(work.max())):
        work[~np.isfinite(work)] = 0.0
    return work.view(LevelledFrame)


def _isolated_pixels(img, *, fwhm: float | None, nsigma: float) -> np.ndarray:
    """Single pixels ``nsigma`` above the sky whose four side neighbours average near the sky."""
    from astropy.stats import mad_std

    finite = np.isfinite(img)
    if not finite.any():
        return np.zeros(img.shape, dtype=bool)
    filled = np.where(finite, img, np.float32(np.median(img[finite][::7])))
    # Above the local sky: faint stars and the wings of bright ones, blurred by the dithers, are not the detector.
    height = filled - _block_background(filled)
    sample = height[finite][::7]
    noise = float(mad_std(sample)) or float(np.std(sample)) or 1.0
    width = max(float(fwhm) if fwhm and math.isfinite(fwhm) else 2.0, 0.8)
    share = math.exp(-4 * math.log(2) * 2 / width ** 2) / SHARPNESS_MARGIN
    # Only pixels nsigma above the local sky can be defects: the neighbour tests run on them alone,
    # the neighbours looked up by index with the edge pixels repeated beyond the frame.
    candidates = np.flatnonzero(finite & (height > nsigma * noise))
    ny, nx = height.shape
    flat = height.reshape(-1)
    ys, xs = np.divmod(candidates, nx)
    centre = flat[candidates]
    sides = [flat[np.clip(ys + dy, 0, ny - 1) * nx + np.clip(xs + dx, 0, nx - 1)]
             for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    peak = np.all([centre >= side for side in sides], axis=0)
    # The mean of four neighbours has half a pixel's noise: two of those sigmas above the star-free share.
    mean_side = sum(sides) / np.float32(4)
    found = np.zeros(flat.shape, dtype=bool)
    found[candidates[peak & (mean_side < share * centre + noise)]] = True
    return found.reshape(height.shape)


def _order_statistic_in_place(frames: list[np.ndarray], rank: int) -> np.ndarray:
    """``np.partition(np.stack(frames), rank, axis=0)[rank]`` for a few frames without NaN, which are the
    caller's to reorder (sorted in place: neither a cube of them nor a copy).

    An odd-even transposition sort of the frames with element-wise minimum and maximum: whole-frame
    vector operations, where a partition along the first axis strides through memory a pixel at a time
    (several times slower for nine frames).
    """
    n = len(frames)
    if n > 16:
        return np.partition(np.stack(frames), rank, axis=0)[rank]
    low = np.empty_like(frames[0])
    for step in range(n):
        for i in range(step % 2, n - 1, 2):
            np.minimum(frames[i], frames[i + 1], out=low)
            np.maximum(frames[i], frames[i + 1], out=frames[i + 1])
            frames[i], low = low, frames[i]
    return frames[rank]


def _block_background(img, block: int = 16) -> np.ndarray:
    """The local sky: the median of each ``block`` x ``block`` tile, spread back over the tile.

    Cheap (a 2048 x 2048 image in 0.1 s, where a 5 x 5 median filter takes 1.6 s) and, at the
    scale of a tile, blind to single pixels; it follows a gradient or the halo of a bright star.
    """
    ny, nx = img.shape
    py, px = -ny % block, -nx % block
    padded = np.pad(img, ((0, py), (0, px)), mode="edge")
    tiles = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block)
    medians = np.median(tiles.transpose(0, 2, 1, 3).reshape(tiles.shape[0], tiles.shape[2], -1), axis=2)
    return np.repeat(np.repeat(medians, block, axis=0), block, axis=1)[:ny, :nx].astype(img.dtype)
