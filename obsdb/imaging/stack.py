"""Combining aligned frames into a stack, in bounded memory.

Aligned frames carry NaN where they have no data, so every combination is
NaN-aware and a coverage map counts the frames with data at each pixel.
Frames are combined a band of rows at a time: only ``n_frames x rows x width``
pixels are held at once, read straight from the files, so a night of a few
hundred 2048x2048 frames stacks in a few hundred megabytes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import bottleneck as bn
import numpy as np

from obsdb.imaging.stats import MAD_TO_STD

STACK_METHODS = ("median", "mean", "sigma-clip")
"""Names accepted by :func:`stack_files` and :func:`stack_arrays`."""

# Up to this many frames a median is taken by sorting each pixel's values
# (SIMD sorts make that about twice as fast as bottleneck's selection for a
# few tens of values); beyond it selection wins.
_SORT_MEDIAN_MAX_FRAMES = 32

# A band is made at least this tall when the budget allows, because every
# band opens every file once; beyond that, about this many bytes of pixels,
# since a larger band only costs memory.
_MIN_BAND_ROWS = 128
_TARGET_BAND_BYTES = 32 * 2**20

MIN_BAND_ROWS_PLAIN = 4
"""The least rows per band when every frame is read by byte offset (no FITS open per band): the band
then stays near ``_TARGET_BAND_BYTES`` however many frames are stacked, so a stack's memory does not
grow with the night (500 frames of 2048 px: 8 rows, 32 MiB, where 128 rows took 500 MiB)."""


@dataclass
class StackResult:
    """A combined image and how many frames went into each pixel.

    Attributes
    ----------
    data : numpy.ndarray of float32
        The stack; NaN where no frame has data.
    coverage : numpy.ndarray of int16 (int32 from 32768 frames)
        Number of frames with data (finite) at each pixel, before any clipping.
    n_frames : int
        Number of frames combined.
    """

    data: np.ndarray
    coverage: np.ndarray
    n_frames: int


def stack_files(paths: Sequence[str | os.PathLike], *, method: str = "median",
                rows_per_chunk: int | None = None, memory_limit_mb: float = 512,
                sigma: float = 3.0, maxiters: int = 5, hdu: int | str = 0,
                offsets: Sequence[float] | None = None,
                weights: Sequence[float] | None = None) -> StackResult:
    """Combine aligned FITS frames band of rows by band of rows.

    Each band is read from every file through a memory map opened for that
    band only, so neither the pixels nor the mapped file pages of all frames
    are ever resident together.

    Parameters
    ----------
    paths : sequence of path-like
        Aligned frames of one shape, float data with NaN where there is none.
    method : {"median", "mean", "sigma-clip"}
        How to combine each pixel; see :func:`stack_arrays`.
    rows_per_chunk : int, optional
        Rows per band; by default chosen by :func:`rows_for_budget`.
    memory_limit_mb : float
        Budget in MiB for the working band (the result images come on top).
    sigma : float
        Clipping threshold in MAD-estimated standard deviations (``sigma-clip``).
    maxiters : int
        Most clipping passes (``sigma-clip``).
    hdu : int or str
        The image HDU in each file.
    offsets : sequence of float, optional
        A constant added to each frame as it is read (one per path), e.g. to
        bring every frame to one sky level so a median does not mix a star's
        core from one frame with its wings from another.
    weights : sequence of float, optional
        One weight per path, for ``mean`` only: each pixel is ``sum(w x) / sum(w)`` over the
        frames with data there (:func:`weighted_mean`).

    Returns
    -------
    StackResult

    Raises
    ------
    ValueError
        No paths, an unknown method, a file that is not a 2-D image, or a
        file whose shape differs from the first (the message names the file).
    """
    from astropy.io import fits

    _check_method(method)
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("no frames to stack")

    shape = None
    layouts = []
    for path in paths:
        with fits.open(path, memmap=True) as hdul:
            this = _image_shape(hdul, hdu, path)
            layouts.append(_plain_float_layout(hdul, hdu))
        if shape is None:
            shape = this
        elif this != shape:
            raise ValueError(f"{path}: shape {this} differs from {shape} of {paths[0]}")

    if offsets is not None and len(offsets) != len(paths):
        raise ValueError(f"{len(offsets)} offsets for {len(paths)} frames")

    def read_rows(index: int, y0: int, y1: int, out: np.ndarray) -> None:
        layout = layouts[index]
        if layout is not None:
            # Plain float pixels: the band's bytes are read where the header (parsed once, above) put
            # them, without opening the file as FITS again for every band (4 ms an open, 2k frames).
            start, dtype = layout
            out[...] = np.fromfile(paths[index], dtype=dtype, count=out.size,
                                   offset=start + y0 * shape[1] * dtype.itemsize).reshape(out.shape)
        else:
            # Opened per band and closed at once: a map left open keeps every page
            # it touched counted against the process, which grows with the night.
            with fits.open(paths[index], memmap=True) as hdul:
                out[...] = hdul[hdu].section[y0:y1]
        if offsets is not None and offsets[index]:
            out += np.float32(offsets[index])

    if rows_per_chunk is None and all(layout is not None for layout in layouts):
        rows_per_chunk = rows_for_budget(len(paths), shape[1], memory_limit_mb / _threads_for_stack(), method,
                                         min_rows=MIN_BAND_ROWS_PLAIN)
    return _stack(len(paths), shape, read_rows, method, rows_per_chunk,
                  memory_limit_mb, sigma, maxiters, _checked_weights(weights, len(paths), method))


def stack_arrays(arrays, *, method: str = "median", rows_per_chunk: int | None = None,
                 memory_limit_mb: float = 512, sigma: float = 3.0,
                 maxiters: int = 5, weights: Sequence[float] | None = None) -> StackResult:
    """Combine in-memory aligned frames with the same maths as :func:`stack_files`.

    Parameters
    ----------
    arrays : sequence of 2-D array_like, or a 3-D array (frame, y, x)
        Frames of one shape; NaN marks missing data.  Not modified.
    method : {"median", "mean", "sigma-clip"}
        ``median`` and ``mean`` ignore NaN.  ``sigma-clip`` repeatedly
        rejects values more than ``sigma`` robust standard deviations
        (1.4826 x the median absolute deviation) from the per-pixel median,
        until no pixel changes or after ``maxiters`` passes, then averages
        the remaining values.  Infinite values count as missing.
    rows_per_chunk, memory_limit_mb, sigma, maxiters, weights
        As for :func:`stack_files`.

    Returns
    -------
    StackResult

    Raises
    ------
    ValueError
        No frames, an unknown method, or frames of different shapes.
    """
    _check_method(method)
    frames = [np.asarray(a) for a in arrays]
    if not frames:
        raise ValueError("no frames to stack")
    shape = frames[0].shape
    if len(shape) != 2:
        raise ValueError(f"frame 0: not a 2-D image, shape {shape}")
    for index, frame in enumerate(frames):
        if frame.shape != shape:
            raise ValueError(f"frame {index}: shape {frame.shape} differs from {shape} of frame 0")

    def read_rows(index: int, y0: int, y1: int, out: np.ndarray) -> None:
        out[...] = frames[index][y0:y1]

    return _stack(len(frames), shape, read_rows, method, rows_per_chunk,
                  memory_limit_mb, sigma, maxiters, _checked_weights(weights, len(frames), method))


def rows_for_budget(n_frames: int, width: int, memory_limit_mb: float,
                    method: str = "median", *, min_rows: int = _MIN_BAND_ROWS) -> int:
    """Rows per band so that the band and its scratch fit ``memory_limit_mb``.

    Within the budget a band of about 32 MiB of pixels is preferred, but at
    least ``min_rows`` (128 by default, since each band opens every FITS file once).

    Parameters
    ----------
    n_frames, width : int
        Frames combined and pixels per row.
    memory_limit_mb : float
        The budget in MiB.
    method : str
        The combination, which sets how much scratch a band needs.
    min_rows : int
        The least rows a band is given when the budget allows.

    Returns
    -------
    int
        At least 1.
    """
    _check_method(method)
    pixels_per_row = n_frames * width * 4
    budget = int(memory_limit_mb * 2**20 // (pixels_per_row * _workspace(method, n_frames)))
    wanted = max(min_rows, _TARGET_BAND_BYTES // pixels_per_row)
    return max(1, min(budget, wanted))


def _workspace(method: str, n_frames: int) -> float:
    """Bytes held per band pixel, as a multiple of the float32 band itself."""
    # The band plus boolean NaN masks; a sorted copy for small medians; a
    # float32 deviation array, a sorted copy and a boolean mask for clipping.
    if method == "sigma-clip":
        return 3.5
    if method == "median" and n_frames <= _SORT_MEDIAN_MAX_FRAMES:
        return 2.5
    return 1.5


def _check_method(method: str) -> None:
    if method not in STACK_METHODS:
        raise ValueError(f"unknown stack method {method!r}; "
                         f"choose one of {', '.join(STACK_METHODS)}")


def _image_shape(hdul, hdu, path) -> tuple[int, int]:
    try:
        header = hdul[hdu].header
    except (IndexError, KeyError):
        raise ValueError(f"{path}: no HDU {hdu!r}") from None
    if "ZNAXIS" in header:  # a tile-compressed image keeps its shape here
        dims = [int(header.get(f"ZNAXIS{i}", 0)) for i in range(1, int(header["ZNAXIS"]) + 1)]
    else:
        dims = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, int(header.get("NAXIS", 0)) + 1)]
    if len(dims) != 2 or min(dims) <= 0:
        raise ValueError(f"{path}: HDU {hdu!r} is not a 2-D image (axes {dims})")
    return dims[1], dims[0]


def _plain_float_layout(hdul, hdu) -> tuple[int, np.dtype] | None:
    """``(byte offset of the data, big-endian dtype)`` of an uncompressed float image without scaling
    (the aligned frames obsdb writes), whose rows can be read straight from the file; else None."""
    image = hdul[hdu]
    header = image.header
    if "ZNAXIS" in header or header.get("BITPIX") not in (-32, -64):
        return None
    if header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0:
        return None
    info = hdul.fileinfo(hdul.index_of(hdu))
    # A gzip-compressed file's offsets are those of its decompressed stream: read as FITS.
    if not info or info.get("datLoc") is None or getattr(info.get("file"), "compression", None):
        return None
    return int(info["datLoc"]), np.dtype(">f4" if header["BITPIX"] == -32 else ">f8")


def _checked_weights(weights, n: int, method: str):
    """Weights as float32 (n,), or None; a ValueError for weights a stack cannot use."""
    if weights is None:
        return None
    if method != "mean":
        raise ValueError(f"weights are for the mean stack, not {method!r}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{w.size} weights for {n} frames")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError("weights must be finite, at least 0, and not all 0")
    return w.astype(np.float32)


def weighted_mean(chunk: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum(w x) / sum(w)`` along axis 0 over the finite values (NaN where none, or all their w are 0).

    With inverse-variance weights ``w = 1 / sigma**2`` the result's noise is ``sqrt(1 / sum(w))``.

    Examples
    --------
    >>> chunk = np.array([[[1.0, np.nan]], [[4.0, 2.0]]], dtype=np.float32)
    >>> weighted_mean(chunk, np.array([2.0, 1.0], dtype=np.float32)).tolist()
    [[2.0, 2.0]]
    """
    w = weights.reshape(-1, *([1] * (chunk.ndim - 1)))
    finite = np.isfinite(chunk)
    total = np.where(finite, chunk * w, 0).sum(axis=0, dtype=np.float64)
    norm = np.where(finite, w, 0).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, total / norm, np.nan).astype(np.float32)


STACK_THREADS = 2
"""Bands combined at once, each on its own thread (at most one per core): reading the rows, the sorting
network's minima and maxima and bottleneck's sums release the GIL.  The memory budget is shared among
them."""


def _threads_for_stack() -> int:
    return max(1, min(STACK_THREADS, os.cpu_count() or 1))


def _stack(n: int, shape: tuple[int, int], read_rows: Callable, method: str,
           rows_per_chunk: int | None, memory_limit_mb: float, sigma: float,
           maxiters: int, weights: np.ndarray | None = None) -> StackResult:
    ny, nx = shape
    threads = _threads_for_stack()
    rows = rows_per_chunk or rows_for_budget(n, nx, memory_limit_mb / threads, method)
    rows = max(1, min(int(rows), ny))
    data = np.empty(shape, dtype=np.float32)
    coverage = np.empty(shape, dtype=np.int16 if n < 2**15 else np.int32)
    spans = [(y0, min(y0 + rows, ny)) for y0 in range(0, ny, rows)]

    def combine(span: tuple[int, int], band: np.ndarray) -> None:
        y0, y1 = span
        chunk = band[:, : y1 - y0]
        for index in range(n):
            read_rows(index, y0, y1, chunk[index])
        # Infinities have no place in a stack; treat them as missing data.
        if not np.isfinite(bn.nansum(chunk)):
            np.copyto(chunk, np.nan, where=np.isinf(chunk))
        missing = np.isnan(chunk).sum(axis=0, dtype=coverage.dtype)
        np.subtract(n, missing, out=coverage[y0:y1])
        data[y0:y1] = (weighted_mean(chunk, weights) if weights is not None
                       else _combine(chunk, coverage[y0:y1], method, sigma, maxiters))

    if threads == 1 or len(spans) == 1:
        band = np.empty((n, rows, nx), dtype=np.float32)
        for span in spans:
            combine(span, band)
    else:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        own = threading.local()  # one band buffer per thread, reused from band to band

        def combine_on_this_thread(span: tuple[int, int]) -> None:
            if getattr(own, "band", None) is None:
                own.band = np.empty((n, rows, nx), dtype=np.float32)
            combine(span, own.band)

        with ThreadPoolExecutor(threads, thread_name_prefix="obsdb-stack") as pool:
            for _ in pool.map(combine_on_this_thread, spans):  # each band's rows are its own
                pass
    return StackResult(data, coverage, n)


def _combine(chunk: np.ndarray, count: np.ndarray, method: str, sigma: float,
             maxiters: int) -> np.ndarray:
    """Combine a (frames, rows, width) float32 band along axis 0; may overwrite it.

    ``count`` is the number of non-NaN values at each pixel.
    """
    if method == "median":
        return _nanmedian0(chunk, count)
    if method == "mean":
        return bn.nanmean(chunk, axis=0)
    return _sigma_clipped_mean(chunk, sigma, maxiters)


def _sigma_clipped_mean(chunk: np.ndarray, sigma: float, maxiters: int) -> np.ndarray:
    n = chunk.shape[0]
    flat = chunk.reshape(n, -1)
    if not np.shares_memory(flat, chunk):  # clipping must land in the band
        raise AssertionError("band is not reshapeable without a copy")
    # Each pixel's MAD times mad_std's constant, the MAD taken with this module's NaN-aware median
    # along the frames and only over the pixels still changing, which mad_std(axis=0,
    # ignore_nan=True), through np.nanmedian on every pixel, cannot.
    scale = np.float32(MAD_TO_STD * sigma)
    # Each pass revisits only the pixels that lost a value in the previous
    # one: the others have converged, and with noise-like data that is
    # about 95 % of them after the first pass.
    active = None
    values = flat
    for _ in range(maxiters):
        median = _nanmedian0(values, n - np.isnan(values).sum(axis=0))
        dev = np.subtract(values, median)
        np.abs(dev, out=dev)
        threshold = _nanmedian0(dev, n - np.isnan(dev).sum(axis=0))
        threshold *= scale
        # NaN deviations compare False, so missing data are never "clipped".
        clip = dev > threshold
        del dev
        changed = clip.any(axis=0)
        if not changed.any():
            break
        values[clip] = np.nan
        if active is None:
            active = np.flatnonzero(changed)
        else:
            flat[:, active] = values
            active = active[changed]
        values = flat[:, active]
    return bn.nanmean(chunk, axis=0)


def _nanmedian0(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """NaN-ignoring median along axis 0, by the faster route for this many frames."""
    if values.shape[0] <= _SORT_MEDIAN_MAX_FRAMES:
        return _sorted_median(values, count)
    return bn.nanmedian(values, axis=0)


def _sorted_median(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """NaN-ignoring median along axis 0 by sorting; equals ``bn.nanmedian``."""
    n = values.shape[0]
    # NaN sort last, after the count values (the network's copy holds +inf for them: the same order).
    ordered = _network_sorted(values) if n <= _NETWORK_SORT_MAX_FRAMES else np.sort(values, axis=0)
    count = count.astype(np.intp)
    # Most pixels have every frame: their middle values are two whole rows.  The others (the edges
    # a shift uncovers, masked pixels) pick theirs by their own count.
    result = ordered[(n - 1) // 2].copy()
    with np.errstate(invalid="ignore"):  # at the partial pixels (replaced below): -inf + +inf
        result += ordered[n // 2]
    partial = np.flatnonzero(count.reshape(-1) != n)
    if partial.size:
        have = count.reshape(-1)[partial]
        lo = np.clip((have - 1) // 2, 0, n - 1)
        hi = np.clip(have // 2, 0, n - 1)
        columns = ordered.reshape(n, -1)
        picked = columns[lo, partial]
        picked += columns[hi, partial]
        result.reshape(-1)[partial] = picked
    del ordered
    result *= np.float32(0.5)
    result[count == 0] = np.nan
    return result


_NETWORK_SORT_MAX_FRAMES = 16
"""Up to this many frames the median's sort is a sorting network (:func:`_network_sorted`)."""


def _network_sorted(values: np.ndarray) -> np.ndarray:
    """A copy of ``values`` sorted along axis 0, NaN as +inf, by a sorting network.

    ``np.sort`` along the frame axis sorts each pixel's few values apart (47 ms for 4 frames of a
    million pixels here); Batcher's odd-even merge network sorts them with whole-row minimum and
    maximum operations (10 ms for 4 frames, 61 against 116 ms for 16).  Minimum and maximum are
    exact, so the sorted values, and the medians taken from them, are the same bits.
    """
    work = np.where(np.isnan(values), np.inf, values).astype(values.dtype, copy=False)
    low = np.empty_like(work[0])
    for i, j in _odd_even_network(work.shape[0]):
        np.minimum(work[i], work[j], out=low)
        np.maximum(work[i], work[j], out=work[j])
        work[i] = low
    return work


@functools.lru_cache(maxsize=None)
def _odd_even_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of ``n`` values.

    Made for the next power of two; the comparators reaching beyond ``n`` are left out, which is
    as if the missing values were larger than any (they would never move).
    """
    size = 1
    while size < n:
        size *= 2

    def merge(lo: int, hi: int, stride: int):
        step = 2 * stride
        if step < hi - lo:
            yield from merge(lo, hi, step)
            yield from merge(lo + stride, hi, step)
            yield from ((i, i + stride) for i in range(lo + stride, hi - stride, step))
        else:
            yield lo, lo + stride

    def sort(lo: int, hi: int):
        if hi > lo:
            middle = lo + (hi - lo) // 2
            yield from sort(lo, middle)
            yield from sort(middle + 1, hi)
            yield from merge(lo, hi, 1)

    return tuple((i, j) for i, j in sort(0, size - 1) if j < n)
