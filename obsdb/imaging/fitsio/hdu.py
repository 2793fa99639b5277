"""Headers and data units: the cards the reader needs (each checked, with a one-line reason), the data's
layout, plain and tile-compressed images decoded to float32, and the fast path for a simple primary image."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass

import numpy as np

from obsdb.imaging.fitsio.base import (
    _CHUNK_BYTES,
    DEFAULT_MAX_FRAME_BYTES,
    GZIP_SLACK_BYTES,
    FitsReadError,
    FrameTooLargeError,
)
from obsdb.imaging.fitsio.stream import _Reader


_STORED_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_MISSING = object()
_LARGEST_AXIS = 2 ** 63 - 1


def _printable(text: str, limit: int = 80) -> str:
    """``text`` with control and non-ASCII characters shown as escapes, on one line."""
    shown = "".join(c if " " <= c <= "~" else repr(c)[1:-1] for c in str(text)).rstrip()
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def _card_text(header, key: str) -> str:
    try:
        card = header.cards[key]
        image = getattr(card, "_image", None) or card.image
    except Exception:  # noqa: BLE001 - the card that cannot be shown is named by its keyword alone
        return key
    return repr(_printable(image))


def _card(header, key: str, where: str, default=_MISSING):
    try:
        return header[key]
    except KeyError:
        if default is not _MISSING:
            return default
        raise FitsReadError(f"{where}: card {key!r} missing") from None
    except Exception:  # noqa: BLE001 - astropy's VerifyError, ValueError on control characters
        raise FitsReadError(f"{where}: card {key!r} cannot be parsed: {_card_text(header, key)}") from None


def _int_card(header, key: str, where: str, default=_MISSING) -> int:
    value = _card(header, key, where, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FitsReadError(f"{where}: {key} {_printable(repr(value), 40)} is not an integer")
    return value


def _float_card(header, key: str, where: str, default: float) -> float:
    value = _card(header, key, where, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FitsReadError(f"{where}: {key} {_printable(repr(value), 40)} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise FitsReadError(f"{where}: {key} {value} is beyond any float") from None
    if not np.isfinite(number):
        raise FitsReadError(f"{where}: {key} {value} is not a finite number")
    return number


@dataclass
class _Layout:
    """Where an HDU's data are and what they are."""

    bitpix: int
    axes: tuple[int, ...]  # NAXIS1, NAXIS2, ... (x first, as in the header)
    nbytes: int  # of the data, without padding
    image: bool  # an image this reader may return (primary, IMAGE or tile-compressed)
    compressed: bool


def _layout(header, index: int, where: str) -> _Layout:
    bitpix = _int_card(header, "BITPIX", where)
    if bitpix not in _STORED_DTYPES:
        raise FitsReadError(f"{where}: BITPIX {bitpix} is not a FITS data type (8, 16, 32, 64, -32 or -64)")
    naxis = _int_card(header, "NAXIS", where)
    if not 0 <= naxis <= 999:
        raise FitsReadError(f"{where}: NAXIS {naxis} is not an axis count (0 to 999)")
    axes = tuple(_int_card(header, f"NAXIS{i}", where) for i in range(1, naxis + 1))
    for i, n in enumerate(axes, start=1):
        if not 0 <= n <= _LARGEST_AXIS:
            raise FitsReadError(f"{where}: NAXIS{i} {n} is not an axis length")
    if index == 0:
        groups = _card(header, "GROUPS", where, False) is True and naxis > 0 and axes[0] == 0
        pcount = _int_card(header, "PCOUNT", where, 0) if groups else 0
        gcount = _int_card(header, "GCOUNT", where, 1) if groups else 1
        kind = "groups" if groups else "IMAGE"
    else:
        kind = _card(header, "XTENSION", where, "")
        kind = kind.strip().upper() if isinstance(kind, str) else ""
        pcount = _int_card(header, "PCOUNT", where, 0)
        gcount = _int_card(header, "GCOUNT", where, 1)
        groups = False
    if pcount < 0 or gcount < 0:
        raise FitsReadError(f"{where}: PCOUNT {pcount} or GCOUNT {gcount} is negative")
    pixels = 1
    for n in (axes[1:] if groups else axes):
        pixels *= n
    nbytes = abs(bitpix) // 8 * gcount * (pcount + (pixels if naxis else 0))
    compressed = kind == "BINTABLE" and _card(header, "ZIMAGE", where, False) is True
    image = kind == "IMAGE" and naxis > 0 and all(n > 0 for n in axes)
    return _Layout(bitpix, axes, nbytes, image or compressed, compressed)


def _read_header(reader: _Reader, index: int):
    """The next HDU's header, or None when the file holds no further HDU."""
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    where = "header" if index == 0 else f"header of HDU {index}"
    block = reader.read(2880)
    if index > 0 and block[:8] != b"XTENSION":
        return None  # the end of the file, padding, or trailing bytes that begin no extension
    reader.unread(block)
    import warnings

    try:
        with warnings.catch_warnings():
            # Non-standard cards are kept as they are; what the catalog needs is checked below.
            warnings.simplefilter("ignore", AstropyUserWarning)
            return fits.Header.fromfile(reader)
    except OSError as exc:
        if "END" in str(exc):
            raise FitsReadError(f"{where}: no END card (the header never ends)") from None
        raise
    except EOFError:
        if index == 0:
            raise FitsReadError(f"{where}: empty (only padding)") from None
        return None
    except ValueError as exc:
        if "multiple of" in str(exc):
            raise FitsReadError(f"truncated FITS: the {where} ends in a partial 2880-byte block") from None
        raise FitsReadError(f"{where}: cannot be parsed ({_printable(str(exc).splitlines()[0])})") from None
    except Exception as exc:  # noqa: BLE001 - whatever astropy raises on a hostile header, said in one line
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FitsReadError(f"{where}: cannot be parsed ({_printable(detail)})") from None


def _read_first_image(reader: _Reader, max_frame_bytes: int):
    """(float32 image, header, BITPIX, HDU index) of the first image HDU of the stream."""
    head = reader.read(9)
    if head != b"SIMPLE  =":
        raise FitsReadError("not a FITS file (no SIMPLE keyword at the start)")
    reader.unread(head)
    primary = None
    index = 0
    while True:
        header = _read_header(reader, index)
        if header is None:
            raise FitsReadError("no image data in any HDU")
        if index == 0:
            primary = header
        where = "header" if index == 0 else f"header of HDU {index}"
        layout = _layout(header, index, where)
        if layout.image:
            if layout.compressed:
                image, header, bitpix = _tile_compressed_image(reader, header, layout, max_frame_bytes, where)
            else:
                _check_image_shape(layout.axes, max_frame_bytes)
                image = _decode(reader, header, layout, where)
                bitpix = layout.bitpix
            header = header.copy() if index == 0 else _merge_primary(primary, header)
            return image, header, bitpix, index
        if reader.skip(layout.nbytes) < layout.nbytes:
            raise FitsReadError(f"truncated FITS: HDU {index} is shorter than its header promises"
                                if index else "no image data in any HDU (and the file is truncated)")
        reader.skip(-layout.nbytes % 2880)  # padding: a last HDU may come without
        index += 1


def _check_image_shape(axes: tuple[int, ...], max_frame_bytes: int) -> None:
    shape = tuple(reversed(axes))
    if len(axes) != 2:
        raise FitsReadError(f"not a 2-D image: data has {len(axes)} axes {shape}")
    nx, ny = axes
    needed = 4 * nx * ny
    if needed > max_frame_bytes:
        raise FrameTooLargeError(f"frame of {nx} x {ny} pixels needs {needed / 2 ** 20:.0f} MB decoded, "
                                 f"above the frame budget of {max_frame_bytes / 2 ** 20:.0f} MB")


def _decode(reader: _Reader, header, layout: _Layout, where: str) -> np.ndarray:
    """The image's pixels as native float32, converted a chunk at a time into the one output array."""
    nx, ny = layout.axes
    bscale = _float_card(header, "BSCALE", where, 1.0)
    bzero = _float_card(header, "BZERO", where, 0.0)
    blank = None
    if layout.bitpix > 0:
        value = _card(header, "BLANK", where, None)
        # A BLANK that is no integer names no stored value (astropy finds no pixel equal to it either).
        if isinstance(value, int) and not isinstance(value, bool):
            blank = value
    scaled = bscale != 1.0 or bzero != 0.0
    stored = np.dtype(_STORED_DTYPES[layout.bitpix])
    image = np.empty((ny, nx), dtype=np.float32)
    flat = image.reshape(-1)
    truncated = FitsReadError("truncated FITS: data shorter than the header promises")
    with np.errstate(over="ignore", invalid="ignore"):
        if layout.bitpix == -32:
            # Read straight into the image, then swap the bytes in place: no second frame in memory.
            if reader.readinto(flat.view(np.uint8)) < flat.nbytes:
                raise truncated
            if sys.byteorder == "little":
                flat.view(np.uint32).byteswap(inplace=True)
            if scaled:
                for start in range(0, flat.size, _CHUNK_BYTES):
                    part = flat[start:start + _CHUNK_BYTES]
                    part[...] = part.astype(np.float64) * bscale + bzero
            return image
        per_chunk = max(1, _CHUNK_BYTES // stored.itemsize)
        buffer = np.empty(min(flat.size, per_chunk) * stored.itemsize, dtype=np.uint8)
        for start in range(0, flat.size, per_chunk):
            count = min(per_chunk, flat.size - start)
            raw = buffer[:count * stored.itemsize]
            if reader.readinto(raw) < raw.size:
                raise truncated
            values = raw.view(stored)
            target = flat[start:start + count]
            if scaled:
                target[...] = values.astype(np.float64) * bscale + bzero
            else:
                np.copyto(target, values, casting="unsafe")
            if blank is not None:
                target[values == blank] = np.nan
    return image


def _tile_compressed_image(reader: _Reader, header, layout: _Layout, max_frame_bytes: int, where: str):
    """A tile-compressed image (a BINTABLE with ZIMAGE = T), decompressed by astropy."""
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning
    from astropy.utils.exceptions import AstropyUserWarning

    zbitpix = _int_card(header, "ZBITPIX", where)
    znaxis = _int_card(header, "ZNAXIS", where)
    axes = tuple(_int_card(header, f"ZNAXIS{i}", where) for i in range(1, max(znaxis, 0) + 1))
    _check_image_shape(axes, max_frame_bytes)
    if layout.nbytes > 2 * max_frame_bytes + GZIP_SLACK_BYTES:
        raise FrameTooLargeError(f"compressed image of {layout.nbytes / 2 ** 20:.0f} MB is above twice "
                                 f"the frame budget of {max_frame_bytes / 2 ** 20:.0f} MB")
    table = bytearray(layout.nbytes + (-layout.nbytes % 2880))
    if reader.readinto(memoryview(table)[:layout.nbytes]) < layout.nbytes:
        raise FitsReadError("truncated FITS: compressed image shorter than its header promises")
    stream = io.BytesIO()
    stream.write(fits.PrimaryHDU().header.tostring().encode("ascii"))
    stream.write(header.tostring().encode("ascii"))
    stream.write(table)
    del table
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            # The table's header is rebuilt from the file's cards: non-standard ones are reported
            # (and kept as they are) as for any header this module reads.
            warnings.filterwarnings("ignore", category=VerifyWarning)
            warnings.filterwarnings("ignore", category=AstropyUserWarning)
            with fits.open(stream, memmap=False) as hdul:
                hdu = hdul[1]
                data = hdu.data
                image_header = hdu.header.copy()
                pixels = np.array(data, dtype=np.float32)
                blank = image_header.get("BLANK")
                if (zbitpix > 0 and isinstance(blank, int) and not isinstance(blank, bool)
                        and np.issubdtype(data.dtype, np.integer)):
                    pixels[np.asarray(data) == blank] = np.nan
    except FitsReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy's codecs raise what they raise, said in one line
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FitsReadError(f"compressed image cannot be decompressed ({_printable(detail)})") from None
    if pixels.shape != tuple(reversed(axes)):
        raise FitsReadError(f"compressed image decompresses to {pixels.shape}, not the {tuple(reversed(axes))} "
                            "its header gives")
    return pixels, image_header, zbitpix


_FAST_BITPIX = {-32: ">f4", 16: ">i2"}


def _simple_primary_image(raw: np.ndarray, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
    """Fast path for the common file: a 2-D primary image, float32 or 16-bit.

    The header is parsed by astropy from its own blocks only; the pixels are
    converted from the buffer in one pass.  Returns ``(data, header, bitpix)``, or None for
    anything else (scaling other than 16-bit unsigned, BLANK, extensions
    holding the image, random groups, missing END), which the general astropy
    path below handles.
    """
    import warnings

    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    end = None
    limit = raw.size - raw.size % 80
    for start in range(0, min(limit, 2880 * 200), 80):  # headers of up to 7200 cards
        card = raw[start:start + 80].tobytes()
        if card[:3] == b"END" and not card[3:].strip():
            end = start
            break
    if end is None:
        return None
    offset = (end // 2880 + 1) * 2880
    try:
        with warnings.catch_warnings():
            # Non-standard cards (ESO-LOG ...) are kept as they are, as the general path keeps them.
            warnings.filterwarnings("ignore", category=AstropyUserWarning)
            header = fits.Header.fromstring(raw[:end + 80].tobytes().decode("ascii"))
            values = [header[key] for key in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2")]
            bscale, bzero = header.get("BSCALE", 1.0), header.get("BZERO", 0.0)
            groups, blank = header.get("GROUPS"), "BLANK" in header
    except Exception:  # noqa: BLE001 - a header this path cannot take is the general path's to judge
        return None
    if not all(type(v) is int for v in values) or type(bscale) not in (int, float) or type(bzero) not in (int, float):
        return None
    bitpix, naxis, nx, ny = values
    if (bitpix not in _FAST_BITPIX or naxis != 2 or not 0 < nx <= _LARGEST_AXIS or not 0 < ny <= _LARGEST_AXIS
            or groups or blank or bscale != 1.0
            or bzero not in ((0.0,) if bitpix == -32 else (0.0, 32768.0))):
        return None
    _check_image_shape((nx, ny), max_frame_bytes)
    dtype = np.dtype(_FAST_BITPIX[bitpix])
    nbytes = nx * ny * dtype.itemsize
    if raw.size < offset + nbytes:
        raise FitsReadError("truncated FITS: data shorter than the header promises")
    stored = raw[offset:offset + nbytes].view(dtype).reshape(ny, nx)
    # A native copy, not an in-place swap: the hashing thread is still reading the buffer.
    data = stored.astype(np.float32)
    if bzero:
        data += np.float32(bzero)
    return data, header, bitpix


def _merge_primary(primary, extension):
    merged = extension.copy()
    for card in primary.cards:
        if card.keyword and card.keyword not in merged and card.keyword not in (
                "SIMPLE", "EXTEND", "NAXIS", "BITPIX", "COMMENT", "HISTORY", ""):
            merged[card.keyword] = (card.value, card.comment)
    return merged
