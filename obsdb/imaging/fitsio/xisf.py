"""Reading XISF frames (PixInsight's format) as obsdb reads FITS ones: pixels, FITS keywords, hash.

The file is parsed by the ``xisf`` package (PyPI), imported only when an XISF file is met, so
that a night of FITS files never pays for it.  An XISF image carries its FITS keywords in its XML
header (``<FITSKeyword name= value= comment=>``); they become the frame's header, as FITS cards,
so that the catalog, ``--where`` and the exports see an XISF frame as they see a FITS one.  Rows
are taken in the order they are stored (row 0 first), as for FITS.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from obsdb.imaging.fitsio.base import DEFAULT_MAX_FRAME_BYTES, FitsReadError, FrameTooLargeError, special_file_kind

XISF_SUFFIX = ".xisf"
"""The file name ending of XISF frames."""

XISF_SIGNATURE = b"XISF0100"
"""The first eight bytes of a monolithic XISF 1.0 file."""

BITPIX_OF = {"UInt8": 8, "UInt16": 16, "UInt32": 32, "Float32": -32, "Float64": -64}
"""The FITS BITPIX that stands for each XISF sample format (FITS has no unsigned types: 16 means
unsigned 16-bit here, as BZERO = 32768 makes it in FITS)."""


class XisfImage(NamedTuple):
    """What :func:`read_xisf_image` read, field for field as :class:`obsdb.imaging.fitsio.FitsImage` takes it
    (that class is not imported here: :mod:`obsdb.imaging.fitsio.read` imports this module)."""

    data: object
    header: object
    sha256: str | None
    size: int
    bitpix: int
    hdu_index: int


def is_xisf_name(path: str | os.PathLike) -> bool:
    """True when the file name ends in ``.xisf``."""
    return os.fspath(path).lower().endswith(XISF_SUFFIX)


def _card_value(text: str):
    """A FITS keyword value as XISF stores it (text) turned back into bool, int, float or str."""
    value = (text or "").strip()
    if value in ("T", "F"):
        return value == "T"
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].rstrip().replace("''", "'")
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def xisf_header(keywords: dict):
    """An astropy Header from the ``FITSKeywords`` of an XISF image (``{name: [{value, comment}]}``)."""
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    header = fits.Header()
    for name, entries in (keywords or {}).items():
        for entry in entries:
            key = str(name).strip().upper()
            value, comment = _card_value(entry.get("value", "")), entry.get("comment", "") or ""
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VerifyWarning)   # a long comment is cut, as FITS must
                if key in ("HISTORY", "COMMENT"):
                    getattr(header, f"add_{key.lower()}")(comment or str(value))
                elif key and key not in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
                                         "BZERO", "BSCALE"):
                    try:
                        header.append(fits.Card(key, value, comment), end=True)
                    except (ValueError, KeyError):
                        continue   # a keyword FITS cannot hold (too long, bad characters): left out
    return header


def read_xisf_image(path: str | os.PathLike, *, hash_mode: str = "thread",
                    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> XisfImage:
    """Read the first image of an XISF file (``read_fits_image`` returns it as a ``FitsImage``).

    Parameters
    ----------
    path : path-like
        A monolithic XISF file (``.xisf``).
    hash_mode : {"thread", "inline", "none"}
        As :func:`obsdb.imaging.fitsio.read_fits_image`: the SHA-256 of the file's bytes, or none.
    max_frame_bytes : int
        The frame budget: an image whose float32 pixels would take more is refused before it is read.

    Returns
    -------
    XisfImage
        ``data`` as float32 (rows, columns), ``header`` the FITS keywords with NAXIS1/NAXIS2 and
        BITPIX of the stored samples, ``hdu_index`` 0.

    Raises
    ------
    FitsReadError
        With a one-line reason: not XISF, damaged, colour (several channels), above the budget.
    """
    import numpy as np

    path = Path(path)
    try:
        st = os.stat(path)
        kind = special_file_kind(st.st_mode)
        if kind is not None:
            raise FitsReadError(f"not a regular file ({kind})")
        with open(path, "rb") as handle:
            head = handle.read(len(XISF_SIGNATURE))
    except OSError as exc:
        raise FitsReadError(f"cannot read file: {exc.strerror or exc}") from None
    if head != XISF_SIGNATURE:
        raise FitsReadError("not an XISF file (no XISF0100 signature at the start)")
    try:
        from xisf import XISF
    except ImportError:
        raise FitsReadError("an XISF file, and the xisf package is not installed (pip install xisf)") from None
    try:
        reader = XISF(str(path))
        images = reader.get_images_metadata()
        if not images:
            raise FitsReadError("an XISF file without an image")
        meta = images[0]
        width, height, channels = meta["geometry"]
        if channels != 1:
            raise FitsReadError(f"a colour XISF image ({channels} channels); obsdb reads one-channel frames")
        if width * height * 4 > max_frame_bytes:
            raise FrameTooLargeError(f"{width}x{height} pixels: {width * height * 4 / 2**20:,.0f} MB of float32, "
                                     f"above the frame budget of {max_frame_bytes / 2**20:,.0f} MB")
        pixels = reader.read_image(0, data_format="channels_last")
    except FitsReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - the package's own errors on a damaged file: one line
        raise FitsReadError(f"damaged XISF file: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    # The package hands out a read-only view of its buffer; obsdb's readers may work in place.
    data = np.array(pixels[:, :, 0], dtype=np.float32, order="C", copy=True)
    header = xisf_header(meta.get("FITSKeywords", {}))
    bitpix = BITPIX_OF.get(meta.get("sampleFormat"), -32)
    header.insert(0, ("NAXIS2", height, "rows (XISF geometry)"))
    header.insert(0, ("NAXIS1", width, "columns (XISF geometry)"))
    header.insert(0, ("NAXIS", 2))
    header.insert(0, ("BITPIX", bitpix, f"XISF sampleFormat {meta.get('sampleFormat')}"))
    digest = None
    if hash_mode != "none":
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.hexdigest()
    return XisfImage(data, header, digest, st.st_size, bitpix, 0)
