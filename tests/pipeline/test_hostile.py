"""Hostile FITS files at ingest (issue 11): every file is catalogued with true stats or refused in a sentence.

A seeded generator writes variants of small valid frames, damaged in the ways real archives and
fuzzers damage them: header corruption, wrong NAXISn, truncation at many offsets, BITPIX / BZERO /
BSCALE / BLANK combinations, NaN / inf / constant data, cubes, extensions, gzip damage, random
bytes inserted, deleted or flipped in header and data, odd file names.  All of them go into one
folder and through one ``obsdb ingest --workers 2`` in a subprocess, which must end normally; then
each file is either catalogued with the statistics numpy computes on the pixels astropy reads
(as float32, the type obsdb holds pixels in, with BLANK pixels undefined as the FITS standard has
them), or recorded unreadable with a one-line reason; no reason and no output line says
``unexpected``; the peak memory stays within the frame budget.

The default suite runs a subset (:data:`FAST_COUNT` variants, one of each kind at least); the full
set (``-m slow``) runs :data:`FULL_COUNT`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

SEED = 20261101
FAST_COUNT = 60
FULL_COUNT = 320
MAX_FRAME_MB = 64
"""The budget the ingest runs with: the variants that claim huge frames are refused before allocation."""
FIXED_MB = 300
"""The fixed part of the memory bound: interpreter, libraries, catalog (3x the largest frame on top)."""

NAMES = ["plain", "with space", "ünïcødé", "日本語", "telescope 🔭", "-dash", "a'quote", "semi;colon",
         "UPPER", "dots.in.name"]
SUFFIXES = [".fits", ".fit", ".fts", ".FITS", ".FIT"]


# ------------------------------------------------------------------ valid frames to start from

def _stars(rng, shape, sky=800.0, noise=20.0, n=12) -> np.ndarray:
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = rng.normal(sky, noise, shape)
    for _ in range(n if min(shape) >= 8 else 0):
        x, y = rng.uniform(2, nx - 2), rng.uniform(2, ny - 2)
        img += rng.uniform(500, 20000) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.2 ** 2))
    return img


def _shape(rng) -> tuple[int, int]:
    return int(rng.integers(12, 90)), int(rng.integers(12, 90))


def _hdu_bytes(hdus) -> bytes:
    from astropy.io import fits

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList(hdus).writeto(buffer, output_verify="silentfix")
    return buffer.getvalue()


def _cards(header: dict | None = None) -> dict:
    cards = {"FILTER": "V", "EXPTIME": 30.0, "DATE-OBS": "2026-03-14T20:00:00", "OBJECT": "NGC 3293"}
    cards.update(header or {})
    return cards


def _primary(data, header: dict | None = None, *, bitpix_data=None, scale=None, blank=None) -> bytes:
    """A primary image; ``scale`` = (bscale, bzero) stores ``data`` scaled into ``bitpix_data``'s integers."""
    from astropy.io import fits

    hdu = fits.PrimaryHDU()
    if scale is not None:
        bscale, bzero = scale
        stored = np.round((np.asarray(data, dtype=np.float64) - bzero) / bscale)
        info = np.iinfo(bitpix_data)
        stored = np.clip(stored, info.min, info.max).astype(bitpix_data)
        if blank is not None:
            stored.ravel()[:: max(1, stored.size // 7)] = blank
        hdu = fits.PrimaryHDU(stored)
        hdu.header["BSCALE"], hdu.header["BZERO"] = bscale, bzero
        if blank is not None:
            hdu.header["BLANK"] = blank
    else:
        stored = data if bitpix_data is None else np.asarray(data).astype(bitpix_data)
        if blank is not None:
            stored = stored.copy()
            stored.ravel()[:: max(1, stored.size // 7)] = blank
        hdu = fits.PrimaryHDU(stored)
        if blank is not None:
            hdu.header["BLANK"] = blank
    for key, value in _cards(header).items():
        hdu.header[key] = value
    if scale is not None:
        # astropy writes raw integers when the scale keywords are set after the data.
        hdu.header["BSCALE"], hdu.header["BZERO"] = scale
    return _hdu_bytes([hdu])


def _gzip(payload: bytes, compresslevel: int = 9) -> bytes:
    """gzip with a fixed timestamp: the same seed gives the same bytes whatever the clock says."""
    return gzip.compress(payload, compresslevel=compresslevel, mtime=0)


def _valid(rng) -> bytes:
    """One of the ordinary frames (float32 or 16-bit unsigned), the base of the damaging variants."""
    data = _stars(rng, _shape(rng))
    if rng.random() < 0.5:
        return _primary(data.astype(np.float32))
    return _primary(np.clip(data, 0, 65535).astype(np.uint16))


def _header_end(raw: bytes) -> int:
    """Offset of the primary data (the block after the END card)."""
    for start in range(0, len(raw), 80):
        if raw[start:start + 3] == b"END" and not raw[start + 3:start + 80].strip():
            return (start // 2880 + 1) * 2880
    return len(raw)


def _set_card(raw: bytes, keyword: str, image: str | bytes | None) -> bytes:
    """Replace the first ``keyword`` card by ``image`` (80 bytes, padded) or delete it (None)."""
    end = _header_end(raw)
    key = keyword.encode().ljust(8)
    for start in range(0, end, 80):
        if raw[start:start + 8] == key:
            if image is None:
                # Deleted: the cards after it move up, a blank card keeps the block size.
                rest = raw[start + 80:end]
                return raw[:start] + rest + b" " * 80 + raw[end:]
            card = image if isinstance(image, bytes) else image.encode("latin-1")
            return raw[:start] + card.ljust(80)[:80] + raw[start + 80:]
    return raw


def _add_card(raw: bytes, image: str | bytes) -> bytes:
    """Insert a card just before END, the header padded again to whole 2880-byte blocks."""
    end = _header_end(raw)
    card = (image if isinstance(image, bytes) else image.encode("latin-1")).ljust(80)[:80]
    for start in range(0, end, 80):
        if raw[start:start + 3] == b"END" and not raw[start + 3:start + 80].strip():
            header = raw[:start] + card + b"END".ljust(80)
            return header.ljust(-(-len(header) // 2880) * 2880) + raw[end:]
    return raw


# ------------------------------------------------------------------ the variants

def v_float32(rng):
    return _primary(_stars(rng, _shape(rng)).astype(np.float32))


def v_float64(rng):
    return _primary(_stars(rng, _shape(rng)))


def v_int16(rng):
    return _primary(_stars(rng, _shape(rng), sky=300.0), bitpix_data=np.int16)


def v_uint16(rng):
    return _primary(np.clip(_stars(rng, _shape(rng)), 0, 65535).astype(np.uint16))


def v_int32(rng):
    return _primary(_stars(rng, _shape(rng)) * 1000, bitpix_data=np.int32)


def v_uint8(rng):
    return _primary(np.clip(_stars(rng, _shape(rng), sky=40, noise=5) / 100, 0, 255), bitpix_data=np.uint8)


def v_int64(rng):
    return _primary(_stars(rng, _shape(rng)), bitpix_data=np.int64)


def v_scaled_int16(rng):
    return _primary(_stars(rng, _shape(rng)), bitpix_data=np.int16, scale=(0.5, 8000.0))


def v_scaled_int32(rng):
    return _primary(_stars(rng, _shape(rng)), bitpix_data=np.int32, scale=(1e-3, -5.0))


def v_blank_int16(rng):
    return _primary(_stars(rng, _shape(rng), sky=300.0), bitpix_data=np.int16, blank=-32768)


def v_blank_scaled(rng):
    return _primary(_stars(rng, _shape(rng)), bitpix_data=np.int16, scale=(2.0, 30000.0), blank=-32768)


def v_blank_on_float(rng):
    raw = _primary(_stars(rng, _shape(rng)).astype(np.float32))
    return _add_card(raw, "BLANK   =                    0")


def v_nan(rng):
    data = _stars(rng, _shape(rng)).astype(np.float32)
    data[rng.random(data.shape) < 0.1] = np.nan
    return _primary(data)


def v_inf(rng):
    data = _stars(rng, _shape(rng)).astype(np.float32)
    data[rng.random(data.shape) < 0.05] = np.inf
    data[rng.random(data.shape) < 0.05] = -np.inf
    return _primary(data)


def v_all_nan(rng):
    return _primary(np.full(_shape(rng), np.nan, np.float32))


def v_constant(rng):
    return _primary(np.full(_shape(rng), float(rng.integers(0, 60000)), np.float32))


def v_flat_hot_pixel(rng):
    data = np.full(_shape(rng), 500.0, np.float32)
    data[int(rng.integers(0, data.shape[0])), int(rng.integers(0, data.shape[1]))] = 60000.0
    return _primary(data)


def v_huge_values(rng):
    data = _stars(rng, _shape(rng)).astype(np.float32)
    data[rng.random(data.shape) < 0.2] = rng.choice([3e38, -3e38, 1e30, 1e-38])
    return _primary(data)


def v_single_row(rng):
    return _primary(_stars(rng, (1, int(rng.integers(100, 5000)))).astype(np.float32))


def v_single_column(rng):
    return _primary(_stars(rng, (int(rng.integers(100, 3000)), 1)).astype(np.float32))


def v_one_pixel(rng):
    return _primary(np.array([[float(rng.normal(100, 5))]], np.float32))


def v_cube(rng):
    return _primary(rng.normal(100, 5, (int(rng.integers(1, 4)), *_shape(rng))).astype(np.float32))


def v_one_axis(rng):
    return _primary(rng.normal(100, 5, int(rng.integers(10, 500))).astype(np.float32))


def v_no_data(rng):
    from astropy.io import fits

    return _hdu_bytes([fits.PrimaryHDU()])


def v_extension_image(rng):
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    primary.header["FILTER"] = "R"
    return _hdu_bytes([primary, fits.ImageHDU(_stars(rng, _shape(rng)).astype(np.float32))])


def v_image_after_table(rng):
    from astropy.io import fits

    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.arange(5.0))])
    return _hdu_bytes([fits.PrimaryHDU(), table, fits.ImageHDU(_stars(rng, _shape(rng)).astype(np.int16))])


def v_table_only(rng):
    from astropy.io import fits

    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.arange(5.0))])
    return _hdu_bytes([fits.PrimaryHDU(), table])


def v_compressed_image(rng):
    from astropy.io import fits

    data = np.clip(_stars(rng, _shape(rng)), 0, 30000).astype(np.int16)
    return _hdu_bytes([fits.PrimaryHDU(), fits.CompImageHDU(data)])


def v_missing_end(rng):
    raw = _valid(rng)
    end = _header_end(raw)
    return raw[:end].replace(b"END" + b" " * 77, b" " * 80) + raw[end:]


def v_missing_structural_card(rng):
    key = str(rng.choice(["BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "SIMPLE"]))
    return _set_card(_valid(rng), key, None)


def v_bad_naxis_value(rng):
    key = str(rng.choice(["NAXIS1", "NAXIS2", "NAXIS"]))
    value = str(rng.choice(["'abc'", "-5", "3.5", "99999999999999999999999", "1000000000000", "0", "T",
                            "1E400", "999"]))
    return _set_card(_valid(rng), key, f"{key:<8}= {value:>20}")


def v_wrong_naxis(rng):
    raw = _valid(rng)
    key = str(rng.choice(["NAXIS1", "NAXIS2"]))
    return _set_card(raw, key, f"{key:<8}= {int(rng.integers(1, 400)):>20}")


def v_bad_bitpix(rng):
    value = str(rng.choice(["13", "0", "-16", "'float'", "128", "-128", "99999999999999999999"]))
    return _set_card(_valid(rng), "BITPIX", f"BITPIX  = {value:>20}")


def v_unparsable_card(rng):
    image = str(rng.choice(["FOO     = 'unterminated", "BAR     = 1.2.3", "BAZ     = (1, ", "=== garbage ===",
                            "QUX     = 12 / 'ok' '", "EXPTIME = thirty", "DATE-OBS= 2026-03-14"]))
    return _add_card(_valid(rng), image)


def v_unparsable_structural(rng):
    key = str(rng.choice(["NAXIS1", "BITPIX", "NAXIS2", "BZERO"]))
    return _set_card(_valid(rng), key, f"{key:<8}= 1.2.3")


def v_control_characters(rng):
    char = bytes([int(rng.choice([0x09, 0x00, 0x1B, 0x7F, 0x0A]))])
    key = str(rng.choice(["OBJECT", "FILTER", "NAXIS1", "DATE-OBS"]))
    raw = _valid(rng)
    if key == "NAXIS1":
        return _set_card(raw, key, b"NAXIS1  =                   4" + char + b"0")
    return _set_card(raw, key, f"{key:<8}= 'V".encode() + char + b"x'")


def v_non_ascii(rng):
    image = rng.choice([b"OBJECT  = 'M\xc3\xa9lodie'", b"OBSERVER= '\xff\xfe'", b"\xe9\xe9\xe9     = 1"])
    return _add_card(_valid(rng), bytes(image))


def v_beyond_int64(rng):
    key = str(rng.choice(["EXPTIME", "AIRMASS", "PICTTYPE", "SATURATE", "XBINNING", "BZERO", "BLANK", "CCD-TEMP"]))
    value = str(rng.choice(["99999999999999999999999", "-99999999999999999999999", "1E999", "-1E999"]))
    raw = _valid(rng)
    return _add_card(_set_card(raw, key, None), f"{key:<8}= {value:>20}")


def v_duplicates(rng):
    raw = _valid(rng)
    for key, value in (("FILTER", "'B'"), ("EXPTIME", "60.0"), ("DATE-OBS", "'2026-03-15T01:00:00'")):
        if rng.random() < 0.7:
            raw = _add_card(raw, f"{key:<8}= {value:>20}")
    return raw


def v_implausible_date(rng):
    date, time = [("'9999-12-31T23:59:59'", None), ("'1850-01-01T00:00:00'", None),
                  ("'2013-07-13'", "'99:99:99'"), ("'garbage'", None), ("'0001-01-01'", None),
                  ("'2026-03-14'", "'25:00'"), ("'2026-13-45T10:00:00'", None)][int(rng.integers(0, 7))]
    raw = _set_card(_valid(rng), "DATE-OBS", f"DATE-OBS= {date:>20}")
    return _add_card(raw, f"TIME-OBS= {time:>20}") if time else raw


def v_bad_scaling(rng):
    data = np.clip(_stars(rng, _shape(rng)), 0, 30000).astype(np.int16)
    raw = _primary(data)
    key, value = [("BZERO", "'x'"), ("BSCALE", "0"), ("BSCALE", "1E300"), ("BZERO", "1E39"), ("BSCALE", "'two'"),
                  ("BLANK", "'none'"), ("BLANK", "3.5"), ("BSCALE", "-1.5")][int(rng.integers(0, 8))]
    return _add_card(raw, f"{key:<8}= {value:>20}")


def v_truncated(rng):
    raw = _valid(rng)
    return raw[:int(rng.integers(1, len(raw)))]


def v_truncated_at_header_end(rng):
    raw = _valid(rng)
    return raw[:_header_end(raw) + int(rng.choice([0, 1, 79, 80]))]


def v_flipped_header(rng):
    raw = bytearray(_valid(rng))
    end = _header_end(raw)
    for _ in range(int(rng.integers(1, 12))):
        raw[int(rng.integers(0, end))] = int(rng.integers(0, 256))
    return bytes(raw)


def v_flipped_data(rng):
    raw = bytearray(_valid(rng))
    end = _header_end(raw)
    for _ in range(int(rng.integers(1, 200))):
        raw[int(rng.integers(end, len(raw)))] = int(rng.integers(0, 256))
    return bytes(raw)


def v_inserted(rng):
    raw = _valid(rng)
    end = _header_end(raw)
    at = int(rng.integers(0, end)) if rng.random() < 0.4 else int(rng.integers(end, len(raw)))
    return raw[:at] + rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes() + raw[at:]


def v_deleted(rng):
    raw = _valid(rng)
    end = _header_end(raw)
    at = int(rng.integers(0, end)) if rng.random() < 0.4 else int(rng.integers(end, len(raw)))
    return raw[:at] + raw[at + int(rng.integers(1, 400)):]


def v_gzip(rng):
    return _gzip(_valid(rng), compresslevel=int(rng.integers(1, 10)))


def v_gzip_truncated(rng):
    packed = _gzip(_valid(rng))
    return packed[:int(rng.integers(2, len(packed)))]


def v_gzip_flipped(rng):
    packed = bytearray(_gzip(_valid(rng)))
    for _ in range(int(rng.integers(1, 6))):
        packed[int(rng.integers(10, len(packed)))] = int(rng.integers(0, 256))
    return bytes(packed)


def v_gzip_trailing_garbage(rng):
    return _gzip(_valid(rng)) + rng.integers(0, 256, int(rng.integers(1, 100)), dtype=np.uint8).tobytes()


def v_gzip_two_members(rng):
    raw = _valid(rng)
    cut = int(rng.integers(1, len(raw)))
    return _gzip(raw[:cut]) + _gzip(raw[cut:])


def v_gzip_not_fits(rng):
    return _gzip([b"", b"hello, not a FITS file\n", bytes(5000)][int(rng.integers(0, 3))])


def v_raw_deflate(rng):
    # zlib-wrapped, not gzip: a ".gz" that is not one.
    return zlib.compress(_valid(rng))


def v_not_fits(rng):
    return [b"", b"this is not a FITS file\n", bytes(2880), rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
            b"SIMPLE  =                    T"][int(rng.integers(0, 5))]


def v_huge_claim(rng):
    """A header claiming a frame far above the budget, with a little data: refused before allocation."""
    raw = _valid(rng)
    raw = _set_card(raw, "NAXIS1", f"NAXIS1  = {int(rng.choice([60000, 300000, 2 ** 31])):>20}")
    return _set_card(raw, "NAXIS2", f"NAXIS2  = {int(rng.choice([60000, 300000])):>20}")


VARIANTS = [v_float32, v_float64, v_int16, v_uint16, v_int32, v_uint8, v_int64, v_scaled_int16, v_scaled_int32,
            v_blank_int16, v_blank_scaled, v_blank_on_float, v_nan, v_inf, v_all_nan, v_constant, v_flat_hot_pixel,
            v_huge_values, v_single_row, v_single_column, v_one_pixel, v_cube, v_one_axis, v_no_data,
            v_extension_image, v_image_after_table, v_table_only, v_compressed_image, v_missing_end,
            v_missing_structural_card, v_bad_naxis_value, v_wrong_naxis, v_bad_bitpix, v_unparsable_card,
            v_unparsable_structural, v_control_characters, v_non_ascii, v_beyond_int64, v_duplicates,
            v_implausible_date, v_bad_scaling, v_truncated, v_truncated_at_header_end, v_flipped_header,
            v_flipped_data, v_inserted, v_deleted, v_gzip, v_gzip_truncated, v_gzip_flipped,
            v_gzip_trailing_garbage, v_gzip_two_members, v_gzip_not_fits, v_raw_deflate, v_not_fits,
            v_huge_claim]
"""Each kind of damage; the variants cycle through them, so any count >= their number has each once."""


def hostile_files(seed: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` seeded (file name, bytes) variants, the same for the same arguments."""
    rng = np.random.default_rng(seed)
    files = []
    for i in range(count):
        make = VARIANTS[i % len(VARIANTS)]
        content = make(rng)
        name = f"{NAMES[int(rng.integers(0, len(NAMES)))]}_{i:04d}_{make.__name__[2:]}"
        compressed = content[:2] == b"\x1f\x8b" or make.__name__ == "v_raw_deflate"
        suffix = SUFFIXES[int(rng.integers(0, len(SUFFIXES)))]
        # Mostly named for what they are; some gzip files without .gz and some plain ones with it.
        if compressed != (rng.random() < 0.15):
            suffix += ".gz"
        files.append((name + suffix, content))
    return files


# ------------------------------------------------------------------ what astropy reads

def astropy_pixels(path: Path):
    """The first image HDU's pixels as astropy reads them, as float32 with BLANK pixels undefined,
    or None when astropy cannot read them or the image is not 2-D."""
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
                        continue
                    naxis = int(hdu.header.get("NAXIS", 0))
                    if naxis <= 0 or any(int(hdu.header.get(f"NAXIS{i}", 0)) <= 0 for i in range(1, naxis + 1)):
                        continue
                    if naxis != 2:
                        return None
                    data = hdu.data
                    stored = hdu.header.get("BITPIX", hdu.header.get("ZBITPIX"))
                    blank = hdu.header.get("BLANK")
                    pixels = np.array(data, dtype=np.float32)
                    if (isinstance(stored, int) and stored > 0 and isinstance(blank, int)
                            and not isinstance(blank, bool) and np.issubdtype(data.dtype, np.integer)):
                        pixels[np.asarray(data) == blank] = np.nan
                    return pixels
    except Exception:  # noqa: BLE001 - astropy refusing a hostile file is an answer too
        return None
    return None


def expected_stats(pixels: np.ndarray) -> dict:
    flat = pixels.ravel()
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return {}
    values = finite.astype(np.float64)
    return {"min": float(finite.min()), "max": float(finite.max()), "mean": float(values.mean()),
            "median": float(np.median(finite)), "std": float(values.std()), "n_nan": int(flat.size - finite.size)}


# ------------------------------------------------------------------ the run

def _ingest_in_subprocess(folder: Path, db: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``obsdb ingest FOLDER --workers 2`` with :data:`MAX_FRAME_MB`; returns the run and the peak RSS
    (bytes) of the largest process it started, measured by a wrapper whose only children they are."""
    from obsdb.catalog.db import database_url, upgrade

    upgrade(database_url(str(db)))
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "run = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(json.dumps({'code': run.returncode, 'out': run.stdout, 'err': run.stderr, 'peak': peak}))\n")
    env = {**os.environ, "OBSDB_DB": str(db), "OBSDB_MAX_FRAME_MB": str(MAX_FRAME_MB), "COLUMNS": "250"}
    env.pop("OBSDB_CONFIG", None)
    outer = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "obsdb.cli.app", "ingest",
                            str(folder), "--workers", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert outer.returncode == 0, outer.stderr
    report = json.loads(outer.stdout)
    run = subprocess.CompletedProcess(outer.args, report["code"], report["out"], report["err"])
    return run, report["peak"]


def _check_hostile_ingest(tmp_path: Path, count: int) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    files = hostile_files(SEED, count)
    for name, content in files:
        (folder / name).write_bytes(content)
    fifo = None
    if hasattr(os, "mkfifo"):
        fifo = folder / "pipe_9999.fits"
        os.mkfifo(fifo)
    run, peak = _ingest_in_subprocess(folder, tmp_path / "hostile.sqlite")
    output = run.stdout + run.stderr
    # Exit 1 names the unreadable files; anything else (a signal, a traceback) is a failure.
    assert run.returncode in (0, 1), output[-3000:]
    assert "Traceback" not in output and "unexpected" not in output, output[-3000:]
    if fifo is not None:
        assert "pipe_9999.fits: not a regular file (a FIFO), skipped" in output, output[-3000:]

    with sqlite3.connect(tmp_path / "hostile.sqlite") as connection:
        rows = connection.execute(
            "SELECT frame.file_name, frame.readable, frame.error, frame.width, frame.height, frame_stats.min, "
            "frame_stats.max, frame_stats.mean, frame_stats.median, frame_stats.std, frame_stats.n_nan "
            "FROM frame LEFT JOIN frame_stats ON frame_stats.frame_id = frame.id").fetchall()
    by_name = {row[0]: row for row in rows}
    assert set(by_name) == {name for name, _ in files}, sorted(set(by_name) ^ {name for name, _ in files})
    largest = 0
    problems = []
    for name, _ in files:
        _, readable, error, width, height, *stats = by_name[name]
        if not readable:
            if not error or "\n" in error or "unexpected" in error or error != error.strip():
                problems.append(f"{name}: error {error!r} is not a one-line reason")
            continue
        largest = max(largest, 4 * width * height)
        pixels = astropy_pixels(folder / name)
        if stats[0] is None:
            problems.append(f"{name}: catalogued without stats")
            continue
        if pixels is None:
            continue  # astropy cannot read it: nothing to compare with
        want = expected_stats(pixels)
        got = dict(zip(("min", "max", "mean", "median", "std", "n_nan"), stats))
        if pixels.shape != (height, width) or not want:
            problems.append(f"{name}: obsdb read {width}x{height}, astropy {pixels.shape}")
            continue
        scale = max(abs(want["min"]), abs(want["max"]), 1e-30)
        for key in ("min", "max", "median", "n_nan"):
            if got[key] != pytest.approx(want[key], rel=1e-6, abs=1e-7 * scale):
                problems.append(f"{name}: {key} {got[key]!r}, numpy says {want[key]!r}")
        for key in ("mean", "std"):
            if got[key] != pytest.approx(want[key], rel=1e-5, abs=1e-6 * scale):
                problems.append(f"{name}: {key} {got[key]!r}, numpy says {want[key]!r}")
    assert not problems, "\n".join(problems[:40])
    limit = 3 * largest + FIXED_MB * 2 ** 20
    assert peak < limit, f"peak RSS {peak / 2 ** 20:.0f} MB above {limit / 2 ** 20:.0f} MB"


# ------------------------------------------------------------------ memory (a gzip bomb, large frames)

def _frame_header(nx: int, ny: int, bitpix: int) -> bytes:
    from astropy.io import fits

    header = fits.Header([("SIMPLE", True), ("BITPIX", bitpix), ("NAXIS", 2), ("NAXIS1", nx), ("NAXIS2", ny)])
    if bitpix == 16:
        header["BZERO"] = 32768
    header["FILTER"] = "V"
    header["DATE-OBS"] = "2026-03-14T20:00:00"
    return header.tostring().encode("ascii")


def write_gzip_bomb(path: Path, nx: int = 16384, ny: int = 16384) -> Path:
    """A gzip file of about 1 MB that expands to an ``nx`` x ``ny`` float32 frame of zeros (1 GiB by
    default): its header member, then one compressed MiB of zeros repeated (gzip readers join members)."""
    nbytes = 4 * nx * ny
    zeros = gzip.compress(bytes(2 ** 20), compresslevel=9)
    with open(path, "wb") as handle:
        handle.write(gzip.compress(_frame_header(nx, ny, -32)))
        for _ in range(nbytes // 2 ** 20):
            handle.write(zeros)
        handle.write(gzip.compress(bytes(nbytes % 2 ** 20 + (-nbytes % 2880))))
    return path


def write_large_frame(path: Path, nx: int, ny: int, bitpix: int = -32) -> Path:
    """A plain frame of noise and stars, written a band of rows at a time (never whole in memory)."""
    rng = np.random.default_rng(5)
    rows = max(1, 2 ** 22 // nx)
    dtype = ">f4" if bitpix == -32 else ">i2"
    with open(path, "wb") as handle:
        handle.write(_frame_header(nx, ny, bitpix))
        yy, xx = np.mgrid[-7:8, -7:8]
        for y0 in range(0, ny, rows):
            band = rng.normal(800.0, 20.0, (min(rows, ny - y0), nx)).astype(np.float32)
            for _ in range(40 if band.shape[0] >= 16 else 0):
                y, x = int(rng.integers(8, band.shape[0] - 8)), int(rng.integers(8, nx - 8))
                band[y - 7:y + 8, x - 7:x + 8] += rng.uniform(500, 20000) * np.exp(-(xx ** 2 + yy ** 2) / 2.9)
            handle.write((band if bitpix == -32 else band - 32768).astype(dtype).tobytes())
        handle.write(bytes(-(4 if bitpix == -32 else 2) * nx * ny % 2880))
    return path


def ingest_peak(folder: Path, db: Path, max_frame_mb: float | None = None, workers: int = 1):
    """(exit code, output, peak RSS in bytes) of ``obsdb ingest FOLDER``: the largest process it started
    (ru_maxrss of the children of a wrapper whose only child the ingest is)."""
    from obsdb.catalog.db import database_url, upgrade

    upgrade(database_url(str(db)))
    wrapper = ("import json, resource, subprocess, sys\n"
               "run = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
               "print(json.dumps([run.returncode, run.stdout + run.stderr, peak]))\n")
    env = {**os.environ, "OBSDB_DB": str(db), "COLUMNS": "250"}
    env.pop("OBSDB_CONFIG", None)
    env.pop("OBSDB_MAX_FRAME_MB", None)
    if max_frame_mb is not None:
        env["OBSDB_MAX_FRAME_MB"] = str(max_frame_mb)
    outer = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "obsdb.cli.app", "ingest",
                            str(folder), "--workers", str(workers)], env=env, capture_output=True, text=True,
                           timeout=1800)
    assert outer.returncode == 0, outer.stderr
    return tuple(json.loads(outer.stdout))


def test_gzip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """A 1 MB gzip expanding to 1 GiB made ingest peak at 5 GB: above the budget it is refused unread."""
    folder = tmp_path / "bomb"
    folder.mkdir()
    bomb = write_gzip_bomb(folder / "bomb_0001.fits.gz")
    assert bomb.stat().st_size < 2 * 2 ** 20
    code, output, peak = ingest_peak(folder, tmp_path / "bomb.sqlite", max_frame_mb=256)
    assert code == 1 and "unexpected" not in output, output
    assert "frame of 16384 x 16384 pixels needs 1024 MB decoded, above the frame budget of 256 MB" in output
    assert peak < FIXED_MB * 2 ** 20, f"peak RSS {peak / 2 ** 20:.0f} MB"


def test_accepted_large_frames_peak_below_three_frames(tmp_path):
    """Reading and measuring a frame (streamed, gzipped or not) takes at most 3x its decoded size + 300 MB."""
    folder = tmp_path / "large"
    folder.mkdir()
    write_large_frame(folder / "f32_0001.fits", 4096, 4096)  # 64 MiB: streamed, read straight into the image
    raw = write_large_frame(tmp_path / "u16_0002.fits", 4096, 3072, bitpix=16)
    (folder / "u16_0002.fits.gz").write_bytes(gzip.compress(raw.read_bytes(), compresslevel=1))
    code, output, peak = ingest_peak(folder, tmp_path / "large.sqlite")
    assert code == 0 and "unexpected" not in output, output
    largest = 4 * 4096 * 4096
    assert peak < 3 * largest + FIXED_MB * 2 ** 20, f"peak RSS {peak / 2 ** 20:.0f} MB"


def test_variants_are_seeded_and_cover_every_kind():
    first, again = hostile_files(SEED, FAST_COUNT), hostile_files(SEED, FAST_COUNT)
    assert first == again and len({name for name, _ in first}) == FAST_COUNT
    assert {name.split("_", 2)[2].split(".")[0] for name, _ in first} == {v.__name__[2:] for v in VARIANTS}


def test_hostile_folder_fast_subset(tmp_path):
    _check_hostile_ingest(tmp_path, FAST_COUNT)


@pytest.mark.slow
def test_hostile_folder_full_set(tmp_path):
    _check_hostile_ingest(tmp_path, FULL_COUNT)


def _memory_table(root: Path) -> None:
    """Peak RSS of ``obsdb ingest`` on a gzip bomb and on large frames, against 3x decoded + 300 MB."""
    cases = [("gzip bomb, 1 GiB claimed, budget 256 MB", lambda f: write_gzip_bomb(f / "bomb_0001.fits.gz"), 256, 0),
             ("gzip bomb, 1 GiB claimed, default budget", lambda f: write_gzip_bomb(f / "bomb_0001.fits.gz"),
              None, 2 ** 30),
             ("float32 16384 x 16384 plain (1 GiB)", lambda f: write_large_frame(f / "big_0001.fits", 16384, 16384),
              None, 2 ** 30),
             ("uint16 32768 x 32768 plain (2 GiB file, 4 GiB decoded)",
              lambda f: write_large_frame(f / "big_0001.fits", 32768, 32768, bitpix=16), None, 0)]
    print(f"{'case':58s} {'exit':>4s} {'peak MB':>8s} {'bound MB':>9s}  outcome")
    for i, (label, make, budget, accepted) in enumerate(cases):
        folder = root / f"case{i}"
        folder.mkdir()
        make(folder)
        code, output, peak = ingest_peak(folder, root / f"case{i}.sqlite", max_frame_mb=budget)
        line = next((x for x in output.splitlines() if x.startswith("unreadable:")), "catalogued")
        print(f"{label:58s} {code:>4d} {peak / 2 ** 20:8.0f} {(3 * accepted + FIXED_MB * 2 ** 20) / 2 ** 20:9.0f}  "
              f"{line.split(': ', 2)[-1][:90]}")
        for path in folder.iterdir():
            path.unlink()


def _summary(root: Path, count: int) -> None:
    """What one ingest of ``count`` hostile variants made of each kind: catalogued or refused in a sentence."""
    from collections import Counter

    folder = root / "hostile"
    folder.mkdir()
    files = hostile_files(SEED, count)
    for name, content in files:
        (folder / name).write_bytes(content)
    run, peak = _ingest_in_subprocess(folder, root / "hostile.sqlite")
    with sqlite3.connect(root / "hostile.sqlite") as connection:
        readable = dict(connection.execute("SELECT file_name, readable FROM frame").fetchall())
    kinds = Counter()
    for name, _ in files:
        kinds[(name.split("_", 2)[2].split(".")[0], bool(readable.get(name)))] += 1
    output = run.stdout + run.stderr
    print(f"{count} variants of {len({k for k, _ in kinds})} kinds, one `obsdb ingest --workers 2`: exit "
          f"{run.returncode}, peak {peak / 2 ** 20:.0f} MB, 'unexpected' lines: {output.count('unexpected')}, "
          f"tracebacks: {output.count('Traceback')}")
    print(f"catalogued with stats: {sum(n for (k, ok), n in kinds.items() if ok)}, "
          f"refused with a reason: {sum(n for (k, ok), n in kinds.items() if not ok)}")
    for kind in sorted({k for k, _ in kinds}):
        print(f"  {kind:32s} catalogued {kinds[(kind, True)]:3d}  refused {kinds[(kind, False)]:3d}")


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Hostile files at ingest (issue 11): outcomes and memory.")
    parser.add_argument("--memory", action="store_true", help="print the peak-memory table")
    parser.add_argument("--summary", type=int, metavar="N", help="ingest N variants and count outcomes by kind")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if arguments.memory:
            _memory_table(Path(tmp))
        if arguments.summary:
            _summary(Path(tmp), arguments.summary)


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_others_are_catalogued(tmp_path):
    """One name of undecodable bytes, beside names with a newline, an ANSI escape, a leading dash and 200
    characters: the seven valid names are catalogued, the other is named (escaped, on one line) and skipped."""
    import os

    import numpy as np
    from astropy.io import fits
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    folder = tmp_path / "odd"
    folder.mkdir()
    names = [b"bad_\xff\xfe_0001.fits", b"new\nline_0002.fits", b"\x1b[31mred_0003.fits", b"-dash_0004.fits",
             b"x" * 200 + b"_0005.fits", b"sp ace_0006.fits", "\u00e9t\u00e9_0007.fits".encode(), b"plain_0008.fits"]
    for i, name in enumerate(names):
        hdu = fits.PrimaryHDU(np.full((16, 16), 100 + i, dtype="u2"), fits.Header({"IMAGETYP": "Light"}))
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            hdu.writeto(handle)
    runner = CliRunner()
    db = str(tmp_path / "c.sqlite")
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    result = runner.invoke(app, ["--db", db, "ingest", str(folder)], terminal_width=300)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "skipped: " in result.stderr and "bad_\\xff\\xfe_0001.fits: the file name is not valid UTF-8" in result.stderr
    listed = runner.invoke(app, ["--db", db, "frames", "--format", "json"])
    import json

    assert len(json.loads(listed.stdout)) == 7


def test_terminal_escapes_in_file_names_never_reach_the_terminal(tmp_path):
    """A file named with an ANSI escape and a newline: `frames --wide`, `show`, `history` and CSV to a
    terminal print it escaped; CSV to a pipe keeps the name as data."""
    import numpy as np
    from astropy.io import fits
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    folder = tmp_path / "odd"
    folder.mkdir()
    name = "\x1b[2J\x1b[31mred\nline_0001.fits"
    fits.writeto(folder / name, np.full((16, 16), 100, dtype="u2"), fits.Header({"IMAGETYP": "Light"}))
    runner = CliRunner()
    db = str(tmp_path / "c.sqlite")
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    assert runner.invoke(app, ["--db", db, "ingest", str(folder)]).exit_code == 0
    for args in (["frames", "--wide"], ["show", "1"], ["history", "1"], ["log"]):
        result = runner.invoke(app, ["--db", db, *args], terminal_width=200)
        assert "\x1b" not in result.output, args
    wide = runner.invoke(app, ["--db", db, "frames", "--wide"], terminal_width=300).output
    assert "\\x1b[2J\\x1b[31mred\\nline_0001.fits" in wide
    piped = runner.invoke(app, ["--db", db, "frames", "--format", "csv"]).output
    assert name in piped   # data stays data when it is not a terminal
