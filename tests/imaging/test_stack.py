"""Stacking aligned frames: NaN-aware maths, coverage, chunking and files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from astropy.io import fits

from obsdb.imaging.stack import STACK_METHODS, rows_for_budget, stack_arrays, stack_files


def _frames(n=7, shape=(24, 26), nan_fraction=0.15, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.normal(1000, 20, (n, *shape)).astype(np.float32)
    frames[rng.random(frames.shape) < nan_fraction] = np.nan
    frames[:, 0, 0] = np.nan  # one pixel with no data at all
    return frames


def _reference_sigma_clip(values, sigma=3.0, maxiters=5):
    """Per-pixel loop: clip around the median by 1.4826 MAD until stable."""
    v = values[np.isfinite(values)].astype(np.float64)
    for _ in range(maxiters):
        if v.size == 0:
            break
        med = np.median(v)
        dev = np.abs(v - med)
        keep = dev <= sigma * 1.482602218505602 * np.median(dev)
        if keep.all():
            break
        v = v[keep]
    return v.mean() if v.size else np.nan


def _nan_reference(func, frames):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(frames, axis=0)


def test_median_and_mean_match_numpy():
    frames = _frames()
    med = stack_arrays(frames, method="median")
    np.testing.assert_allclose(med.data, _nan_reference(np.nanmedian, frames), rtol=1e-6)
    mean = stack_arrays(list(frames), method="mean")
    np.testing.assert_allclose(mean.data, _nan_reference(np.nanmean, frames), rtol=1e-6)
    assert med.data.dtype == np.float32 and np.isnan(med.data[0, 0])


@pytest.mark.parametrize("n", [6, 40])  # both median routes (sort and selection)
def test_median_even_and_odd_counts(n):
    frames = _frames(n=n, nan_fraction=0.3, seed=n)
    result = stack_arrays(frames, method="median", rows_per_chunk=5)
    np.testing.assert_allclose(result.data, _nan_reference(np.nanmedian, frames), rtol=1e-6)


@pytest.mark.parametrize("n", [9, 40])
def test_sigma_clip_matches_per_pixel_reference(n):
    frames = _frames(n=n, seed=n)
    frames[2, 5:9, 5:9] = 5000  # outliers among the noise
    result = stack_arrays(frames, method="sigma-clip", sigma=2.5)
    expected = np.array([[_reference_sigma_clip(frames[:, y, x], sigma=2.5)
                          for x in range(frames.shape[2])] for y in range(frames.shape[1])])
    np.testing.assert_allclose(result.data, expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["median", "sigma-clip"])
def test_cosmic_ray_in_one_of_five_frames_is_removed(method):
    rng = np.random.default_rng(4)
    frames = rng.normal(500, 5, (5, 32, 32)).astype(np.float32)
    frames[3, 10:12, 20:22] = 60000
    result = stack_arrays(frames, method=method)
    assert np.abs(result.data[10:12, 20:22] - 500).max() < 20
    # A mean keeps it, which is why it is not the default.
    assert stack_arrays(frames, method="mean").data[10, 20] > 10000


def test_coverage_counts_frames_with_data():
    frames = np.ones((4, 10, 12), dtype=np.float32)
    frames[0, :, :3] = np.nan
    frames[1, :, :3] = np.nan
    frames[2, 0, 0] = np.inf  # not data either
    for method in STACK_METHODS:
        result = stack_arrays(frames, method=method)
        assert result.coverage.dtype == np.int16 and result.n_frames == 4
        assert result.coverage[0, 0] == 1 and result.coverage[5, 1] == 2
        assert (result.coverage[:, 3:] == 4).all()
        np.testing.assert_array_equal(result.data, 1.0)


@pytest.mark.parametrize("method", STACK_METHODS)
def test_chunked_equals_unchunked_exactly(method):
    frames = _frames(n=9, shape=(37, 20))
    frames[4, 3:6, 3:6] = 1e5
    whole = stack_arrays(frames, method=method, rows_per_chunk=37)
    for rows in (1, 5, 16):
        part = stack_arrays(frames, method=method, rows_per_chunk=rows)
        np.testing.assert_array_equal(part.data, whole.data)
        np.testing.assert_array_equal(part.coverage, whole.coverage)


def test_inputs_not_modified():
    frames = _frames()
    frames[1, 2, 2] = 1e6
    before = frames.copy()
    for method in STACK_METHODS:
        stack_arrays(frames, method=method)
    np.testing.assert_array_equal(frames, before)


def _write(path, data):
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32)).writeto(path)
    return path


def test_stack_files_equals_stack_arrays(tmp_path):
    frames = _frames(n=6, shape=(40, 33))
    paths = [_write(tmp_path / f"a{i}.fits", f) for i, f in enumerate(frames)]
    for method in STACK_METHODS:
        from_files = stack_files(paths, method=method, rows_per_chunk=7)
        in_memory = stack_arrays(frames, method=method)
        np.testing.assert_array_equal(from_files.data, in_memory.data)
        np.testing.assert_array_equal(from_files.coverage, in_memory.coverage)
        assert from_files.n_frames == 6


def test_stack_files_reads_every_kind_of_file_as_fits_would(tmp_path):
    """Plain float files are read by byte offset; gzip, scaled, integer and float64 files as FITS: all the same."""
    frames = _frames(n=5, shape=(37, 29), seed=4)
    kinds = {
        "plain": lambda f: fits.PrimaryHDU(f),
        "float64 in an extension": lambda f: fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(f.astype(np.float64))]),
        "long header": lambda f: fits.PrimaryHDU(f, header=fits.Header([("HISTORY", "x" * 60)] * 80)),
    }
    for name, make in kinds.items():
        paths = []
        for i, f in enumerate(frames):
            path = tmp_path / f"{name.replace(' ', '_')}{i}.fits"
            make(f).writeto(path)
            paths.append(path)
        hdu = 1 if "extension" in name else 0
        for method in STACK_METHODS:
            np.testing.assert_array_equal(stack_files(paths, method=method, rows_per_chunk=6, hdu=hdu,
                                                      offsets=[1.5, 0, -2, 3, 0]).data,
                                          stack_arrays(frames + np.float32([[[1.5]], [[0]], [[-2]], [[3]], [[0]]]),
                                                       method=method).data, err_msg=name)
    gz = [_write(tmp_path / f"g{i}.fits.gz", f) for i, f in enumerate(frames)]
    np.testing.assert_array_equal(stack_files(gz, rows_per_chunk=5).data, stack_arrays(frames).data)


def test_plain_float_files_are_opened_as_fits_once(tmp_path, monkeypatch):
    """Their bands are read by byte offset: one FITS open per file (the header), not one per band."""
    import obsdb.imaging.stack as stack

    frames = _frames(n=4, shape=(40, 21), seed=6)
    paths = [_write(tmp_path / f"p{i}.fits", f) for i, f in enumerate(frames)]
    opened = []
    real_open = fits.open
    monkeypatch.setattr(fits, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    result = stack.stack_files(paths, rows_per_chunk=4)
    assert len(opened) == 4
    np.testing.assert_array_equal(result.data, stack_arrays(frames).data)


def test_stack_files_reads_an_extension(tmp_path):
    frames = _frames(n=3, shape=(8, 9))
    paths = []
    for i, f in enumerate(frames):
        path = tmp_path / f"e{i}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(f, name="SCI")]).writeto(path)
        paths.append(path)
    result = stack_files(paths, hdu="SCI")
    np.testing.assert_allclose(result.data, _nan_reference(np.nanmedian, frames), rtol=1e-6)


def test_mismatched_shape_names_the_file(tmp_path):
    paths = [_write(tmp_path / "good.fits", np.zeros((10, 10))),
             _write(tmp_path / "odd_one.fits", np.zeros((10, 11)))]
    with pytest.raises(ValueError, match=r"odd_one\.fits: shape \(10, 11\) differs"):
        stack_files(paths)
    with pytest.raises(ValueError, match="frame 1: shape"):
        stack_arrays([np.zeros((3, 3)), np.zeros((3, 4))])


def test_errors():
    with pytest.raises(ValueError, match="no frames"):
        stack_arrays([])
    with pytest.raises(ValueError, match="unknown stack method 'max'"):
        stack_arrays([np.zeros((3, 3))], method="max")


def test_rows_for_budget():
    # 200 frames of 2048 px rows in 512 MiB: bands of well over 100 rows, and
    # a band with its scratch inside the budget.
    rows = rows_for_budget(200, 2048, 512, "median")
    assert 100 <= rows and rows * 200 * 2048 * 4 * 1.5 <= 512 * 2**20
    assert rows_for_budget(200, 2048, 1, "sigma-clip") == 1
    assert rows_for_budget(20, 2048, 512, "median") * 20 * 2048 * 4 <= 40 * 2**20
    # Frames read by byte offset: the band keeps to ~32 MiB however many frames there are.
    from obsdb.imaging.stack import MIN_BAND_ROWS_PLAIN

    for n in (40, 100, 500):
        rows = rows_for_budget(n, 2048, 512, "median", min_rows=MIN_BAND_ROWS_PLAIN)
        assert rows * n * 2048 * 4 <= 32 * 2**20 and rows >= MIN_BAND_ROWS_PLAIN


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_stays_bounded(tmp_path):
    """30 frames of 512x512 (30 MiB) stacked with a 4 MiB budget, in a fresh process."""
    rng = np.random.default_rng(1)
    paths = [str(_write(tmp_path / f"m{i}.fits", rng.normal(0, 1, (512, 512))))
             for i in range(30)]
    # VmHWM, reset after the imports, rather than ru_maxrss, which Linux
    # carries over from the parent (pytest) into the child.
    script = textwrap.dedent(f"""
        import numpy, astropy.io.fits, bottleneck
        from obsdb.imaging.stack import stack_files
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        before = status("VmRSS")
        stack_files({paths!r}, method="sigma-clip", memory_limit_mb=4)
        print(status("VmHWM") - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    extra_mib = int(out.stdout.split()[-1]) / 1024
    # Result images (~2 MiB) + band budget (4 MiB) + allocator slack; all
    # frames at once would be 30 MiB.
    assert extra_mib < 15, extra_mib


@pytest.mark.parametrize("method", STACK_METHODS)
def test_offsets_are_added_as_frames_are_read(tmp_path, method):
    rng = np.random.default_rng(7)
    arrays = [rng.normal(100 + 50 * i, 3, (20, 24)).astype(np.float32) for i in range(4)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"o{i}.fits")
        fits.PrimaryHDU(a).writeto(paths[-1])
    offsets = [-50.0 * i for i in range(4)]
    shifted = stack_files(paths, method=method, offsets=offsets, rows_per_chunk=7)
    expected = stack_arrays([a + o for a, o in zip(arrays, offsets)], method=method)
    np.testing.assert_allclose(shifted.data, expected.data, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="3 offsets for 4 frames"):
        stack_files(paths, offsets=offsets[:3])


def test_network_sort_is_numpys_sort_and_the_median_bottlenecks():
    """The sorting network gives np.sort's order (NaN last, as +inf) for every frame count it takes,
    with ties, NaN and infinities, and the medians are bottleneck's, bit for bit."""
    import bottleneck as bn

    from obsdb.imaging.stack import _NETWORK_SORT_MAX_FRAMES, _network_sorted, _odd_even_network, _sorted_median

    rng = np.random.default_rng(21)
    for n in range(1, _NETWORK_SORT_MAX_FRAMES + 1):
        values = rng.normal(100.0, 10.0, (n, 3, 500)).astype(np.float32)
        values[:, :, ::7] = np.round(values[:, :, ::7] / 10.0) * 10.0            # ties
        values[rng.random(values.shape) < 0.2] = np.nan
        values[:, 0, :5] = np.nan                                               # no value at all
        values[0, 1, :3] = -np.inf
        expected = np.sort(np.where(np.isnan(values), np.inf, values), axis=0)
        assert np.array_equal(_network_sorted(values), expected), n
        assert all(i < j < n for i, j in _odd_even_network(n))
        count = n - np.isnan(values).sum(axis=0)
        finite = np.where(np.isinf(values), np.nan, values)
        finite_count = n - np.isnan(finite).sum(axis=0)
        np.testing.assert_array_equal(_sorted_median(finite, finite_count), bn.nanmedian(finite, axis=0))
        before = values.copy()
        _sorted_median(values, count)
        np.testing.assert_array_equal(values, before)                           # the input is left alone


@pytest.mark.parametrize("method", STACK_METHODS)
def test_bands_on_two_threads_give_the_one_threads_bits(method, monkeypatch):
    import threading

    import obsdb.imaging.stack as stack_module

    frames = _frames(n=7, shape=(61, 33))
    frames[2, 10:14, 5:9] = 1e5  # a cosmic ray for the clip
    monkeypatch.setattr(stack_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(stack_module, "STACK_THREADS", 1)
    one = stack_arrays(frames, method=method, rows_per_chunk=4)
    monkeypatch.setattr(stack_module, "STACK_THREADS", 2)
    seen, combine = set(), stack_module._combine

    def combine_and_note(*args):
        seen.add(threading.current_thread().name)
        return combine(*args)

    monkeypatch.setattr(stack_module, "_combine", combine_and_note)
    two = stack_arrays(frames, method=method, rows_per_chunk=4)
    np.testing.assert_array_equal(two.data, one.data)
    np.testing.assert_array_equal(two.coverage, one.coverage)
    assert seen and all(name.startswith("obsdb-stack") for name in seen)  # combined on the pool's threads
