"""Reading and writing FITS files: once per file, atomically on output.

Pure functions: no database.  Errors are raised as :class:`FitsReadError`
with a one-line reason that the caller shows next to the file name.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FITS_SUFFIXES = (".fits", ".fit", ".fts")
"""File name endings recognised as FITS (each also with ``.gz``)."""


class FitsReadError(Exception):
    """A file could not be read as a 2-D FITS image; the message says why."""


class FrameTooLargeError(FitsReadError):
    """The image's decoded pixels would exceed the frame budget; nothing was allocated for them."""


class FitsWarning(UserWarning):
    """A FITS file was catalogued with something doubted or left out; the message names the file and value."""


DEFAULT_MAX_FRAME_BYTES = 2048 * 2 ** 20
"""The frame budget when the caller gives none: 2 GiB of decoded (float32) pixels, a 23k x 23k frame.

A header may claim any size, and a 1 MB gzip file can expand to 1 GiB: the budget is checked
against what the header claims before anything is allocated or decompressed for the pixels.
Reading a frame takes about its decoded size again at most (the file's bytes, or one chunk)."""

IN_MEMORY_FILE_BYTES = 64 * 2 ** 20
"""Plain files up to this size are read whole into a reused buffer and hashed in a thread beside the
pixel work (the common frame, 16 MiB, is read so).  Larger files and every gzip file are streamed:
read or decompressed once, hashed on the way, the pixels decoded straight into the image."""

GZIP_SLACK_BYTES = 64 * 2 ** 20
"""What a gzip file may expand to beyond twice the frame budget (float64 pixels are twice their
float32 size; headers and small tables on top) before decompression stops."""

_CHUNK_BYTES = 1 << 20
"""Bytes read, decompressed, converted or hashed at a time when streaming."""

_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def special_file_kind(mode: int) -> str | None:
    """What a file that is not a regular file is ("a FIFO", "a character device", ...); None for a regular one.

    Opening a FIFO for reading waits for a writer (an ingest hung on one named ``x.fits``) and a
    device may never end: neither is read as a frame.
    """
    if stat.S_ISREG(mode):
        return None
    return _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")


def is_fits_name(path: str | os.PathLike) -> bool:
    """True when the file name ends like a FITS file (gzipped or not)."""
    name = os.fspath(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(FITS_SUFFIXES)


@dataclass
class FitsImage:
    """A 2-D image read from a FITS file, with what was learned reading it.

    Attributes
    ----------
    data : numpy.ndarray
        The image as native-endian float32 (BSCALE/BZERO applied).
    header : astropy.io.fits.Header
        Header of the image HDU (primary keywords merged in when the image
        sits in an extension).
    sha256 : str or None
        Hex digest of the file's bytes as stored on disk (computed in a
        thread while the caller works on the pixels; reading it waits), or
        None when the read was asked not to hash.
    size : int
        File size in bytes.
    bitpix : int
        BITPIX of the stored data.
    hdu_index : int
        Index of the HDU the image came from.
    """

    data: np.ndarray
    header: object
    digest: object
    size: int
    bitpix: int
    hdu_index: int

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the file (waits for the hashing thread)."""
        if self.digest is not None and not isinstance(self.digest, str):
            self.digest = self.digest.result()
        return self.digest


_HASHERS: dict[int, object] = {}


def _hash_in_thread(raw: np.ndarray):
    """SHA-256 of ``raw`` in a background thread: hashlib releases the GIL, so on a
    multi-core machine the hash (9 ms for 16 MiB) overlaps the statistics."""
    from concurrent.futures import ThreadPoolExecutor

    pid = os.getpid()  # a forked worker must not reuse its parent's (dead) thread
    executor = _HASHERS.get(pid)
    if executor is None:
        executor = _HASHERS[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="obsdb-sha256")
    return executor.submit(lambda: hashlib.sha256(raw).hexdigest())


HASH_MODES = ("thread", "inline", "none")


def read_fits_image(path: str | os.PathLike, *, hash_mode: str = "thread",
                    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> FitsImage:
    """Read the first 2-D image of a FITS file, reading the file once.

    The hash and the pixels always come from the same read of the bytes.  Small plain files are
    read whole and parsed from memory; large ones and gzip files are streamed (see
    :data:`IN_MEMORY_FILE_BYTES`).  The image is the first HDU with data that is a primary image,
    an IMAGE extension or a tile-compressed image; BSCALE, BZERO and BLANK (as NaN) are applied.

    Parameters
    ----------
    path : path-like
        A ``.fits``/``.fit``/``.fts`` file, optionally gzipped.
    hash_mode : {"thread", "inline", "none"}
        SHA-256 of the bytes in a thread beside the caller's pixel work (one
        process on a multi-core machine), in this thread (when every core
        already runs a worker process), or not at all (readers that only need
        the pixels: render, align, report).  Streamed files are hashed as they are read.
    max_frame_bytes : int
        The frame budget: an image whose float32 pixels would take more is refused
        (:class:`FrameTooLargeError`) before they are allocated, and a gzip stream is not
        decompressed beyond twice this (plus :data:`GZIP_SLACK_BYTES`).

    Returns
    -------
    FitsImage

    Raises
    ------
    FitsReadError
        With a one-line reason: not a regular file, empty, truncated, damaged gzip stream, not
        FITS, a header card missing or unparsable, no image data, a cube, above the budget.
    """
    if hash_mode not in HASH_MODES:
        raise ValueError(f"hash_mode {hash_mode!r}: expected one of {', '.join(HASH_MODES)}")
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.  Regular files ignore it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise FitsReadError(f"cannot read file: {exc.strerror or exc}") from None
    with open(fd, "rb", buffering=0) as handle:
        try:
            st = os.fstat(fd)
            kind = special_file_kind(st.st_mode)
            if kind is not None:
                raise FitsReadError(f"not a regular file ({kind})")
            if st.st_size == 0:
                raise FitsReadError("empty file")
            compressed = (os.pread(fd, 2, 0) if hasattr(os, "pread") else _peek(handle)) == b"\x1f\x8b"
            if not compressed and st.st_size <= IN_MEMORY_FILE_BYTES:
                return _read_in_memory(handle, st.st_size, hash_mode, max_frame_bytes)
            reader = _StreamReader(handle, compressed=compressed, hashing=hash_mode != "none",
                                   expansion_limit=2 * max_frame_bytes + GZIP_SLACK_BYTES)
            image, header, bitpix, index = _read_first_image(reader, max_frame_bytes)
            reader.finish()
        except OSError as exc:
            raise FitsReadError(f"cannot read file: {exc.strerror or exc}") from None
    return FitsImage(image, header, reader.hexdigest(), st.st_size, bitpix, index)


def _peek(handle) -> bytes:
    head = handle.read(2)
    handle.seek(0)
    return head


def _read_in_memory(handle, size: int, hash_mode: str, max_frame_bytes: int) -> FitsImage:
    """A plain file read whole into the process's reused buffer, hashed beside the pixel work."""
    shared = _shared_buffer()
    raw = _read_into_array(handle, size, shared)
    if raw.size == 0:
        raise FitsReadError("empty file")
    if hash_mode == "thread":
        # The buffer is never modified below while the thread reads it.
        digest = _hash_in_thread(raw)
        if shared is not None:
            shared.in_use = digest
    elif hash_mode == "inline":
        digest = hashlib.sha256(raw).hexdigest()
    else:
        digest = None
    if raw[:9].tobytes() != b"SIMPLE  =":
        raise FitsReadError("not a FITS file (no SIMPLE keyword at the start)")
    simple = _simple_primary_image(raw, max_frame_bytes)
    if simple is not None:
        image, header, bitpix = simple
        return FitsImage(image, header, digest, raw.size, bitpix, 0)
    image, header, bitpix, index = _read_first_image(_MemoryReader(raw), max_frame_bytes)
    return FitsImage(image, header, digest, raw.size, bitpix, index)


# ------------------------------------------------------------------ byte sources

class _Reader:
    """A sequential source of a FITS file's bytes, as astropy's ``Header.fromfile`` reads one.

    Subclasses provide ``_readinto_source``; bytes handed back with :meth:`unread` come first.
    """

    binary = True  # what astropy asks of a file object

    def __init__(self) -> None:
        self._pending = b""
        self.position = 0  # of the next byte, in the (decompressed) FITS stream

    def _readinto_source(self, view: memoryview) -> int:
        raise NotImplementedError

    def readinto(self, target) -> int:
        """Fill ``target`` (a writable buffer) as far as the stream goes; returns the bytes given."""
        view = memoryview(target).cast("B")
        got = 0
        if self._pending:
            got = min(len(self._pending), len(view))
            view[:got] = self._pending[:got]
            self._pending = self._pending[got:]
        while got < len(view):
            n = self._readinto_source(view[got:])
            if n == 0:
                break
            got += n
        self.position += got
        return got

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("a FITS stream is read in blocks")
        buffer = bytearray(n)
        got = self.readinto(buffer)
        return bytes(buffer[:got])

    def skip(self, n: int) -> int:
        """Pass over ``n`` bytes; returns how many there were."""
        scratch = bytearray(min(n, _CHUNK_BYTES)) if n else bytearray()
        done = 0
        while done < n:
            want = min(len(scratch), n - done)
            got = self.readinto(memoryview(scratch)[:want])
            done += got
            if got < want:
                break
        return done

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending
        self.position -= len(data)


class _MemoryReader(_Reader):
    """The bytes of a file already in memory (a uint8 array); skipping is free."""

    def __init__(self, raw: np.ndarray) -> None:
        super().__init__()
        self._raw = memoryview(raw).cast("B")
        self._offset = 0

    def _readinto_source(self, view: memoryview) -> int:
        n = min(len(view), len(self._raw) - self._offset)
        view[:n] = self._raw[self._offset:self._offset + n]
        self._offset += n
        return n

    def skip(self, n: int) -> int:
        from_pending = min(n, len(self._pending))
        self._pending = self._pending[from_pending:]
        rest = min(n - from_pending, len(self._raw) - self._offset)
        self._offset += rest
        self.position += from_pending + rest
        return from_pending + rest


class _StreamReader(_Reader):
    """A file read once from disk, hashed as it is read, gunzipped on the way when compressed.

    A gzip stream is decompressed a megabyte at a time and never beyond ``expansion_limit``;
    several gzip members follow each other, as ``gzip -d`` reads them, and bytes after the last
    member that start no other are ignored, as ``gzip -d`` does.
    """

    def __init__(self, handle, *, compressed: bool, hashing: bool, expansion_limit: int) -> None:
        super().__init__()
        self._handle = handle
        self._hasher = hashlib.sha256() if hashing else None
        self._compressed = compressed
        self._limit = expansion_limit
        self._disk = 0  # bytes read from disk
        if compressed:
            self._inflater = zlib.decompressobj(wbits=31)
            self._input = b""  # compressed bytes read but not yet given to the inflater
            self._output = memoryview(b"")
            self._produced = 0
            self._ended = False

    def _disk_read(self, n: int) -> bytes:
        data = self._handle.read(n)
        if self._hasher is not None and data:
            self._hasher.update(data)
        self._disk += len(data)
        return data

    def _readinto_source(self, view: memoryview) -> int:
        if not self._compressed:
            n = self._handle.readinto(view)
            if n and self._hasher is not None:
                self._hasher.update(view[:n])
            self._disk += n or 0
            return n or 0
        if not self._output:
            self._output = memoryview(self._inflate())
            if not self._output:
                return 0
        n = min(len(view), len(self._output))
        view[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def _inflate(self) -> bytes:
        """The next decompressed bytes; empty at the end of the last gzip member."""
        while not self._ended:
            if self._inflater.eof:
                rest = self._inflater.unused_data + self._input
                if len(rest) < 2:
                    rest += self._disk_read(_CHUNK_BYTES)
                if rest[:2] != b"\x1f\x8b":
                    self._ended = True  # the end, or trailing bytes that begin no gzip member
                    break
                self._inflater, self._input = zlib.decompressobj(wbits=31), rest
            if not self._input:
                self._input = self._disk_read(_CHUNK_BYTES // 16)
                if not self._input:
                    raise FitsReadError(f"gzip stream ends at byte {self._disk} before its end "
                                        "(the file is truncated)")
            start = self._disk - len(self._input)
            saved = self._inflater.copy()
            try:
                out = self._inflater.decompress(self._input, _CHUNK_BYTES)
            except zlib.error as exc:
                raise FitsReadError(f"gzip stream damaged at byte {start + _damage_offset(saved, self._input)} "
                                    f"({_zlib_reason(exc)})") from None
            self._input = self._inflater.unconsumed_tail
            if out:
                self._produced += len(out)
                if self._produced > self._limit:
                    raise FrameTooLargeError(f"gzip stream expands beyond {self._limit // 2 ** 20} MB "
                                             "(twice the frame budget): not decompressed further")
                return out
        return b""

    def finish(self) -> None:
        """Read the rest of the file: the hash covers every byte, and a gzip stream is checked to its end."""
        if self._compressed:
            self._output = memoryview(b"")
            while self._inflate():
                pass
        while self._disk_read(_CHUNK_BYTES):
            pass

    def hexdigest(self) -> str | None:
        return None if self._hasher is None else self._hasher.hexdigest()


def _damage_offset(inflater, data: bytes) -> int:
    """Offset in ``data`` of the byte at which ``inflater`` (a copy taken before it) fails."""
    for i in range(len(data)):
        try:
            inflater.decompress(data[i:i + 1])
        except zlib.error:
            return i
    return len(data)


def _zlib_reason(exc: zlib.error) -> str:
    # "Error -3 while decompressing data: invalid distance too far back" -> "invalid distance too far back"
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


# ------------------------------------------------------------------ HDUs

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


class _FileBuffer:
    """One reusable buffer for the file bytes of this process's main thread.

    Every frame of a night has the same size, so the bytes of the next file
    go where the last ones were: no fresh allocation per file, and a peak
    memory that does not depend on where the allocator happens to put a new
    16 MiB block.  The buffer is reused only once the hash of the previous
    file (which may still be running in a thread) is done with it.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.array = np.empty(0, dtype=np.uint8)
        self.in_use = None  # the future hashing the current contents

    def take(self, size: int) -> np.ndarray:
        if self.in_use is not None:
            self.in_use.result()
            self.in_use = None
        if self.array.size < size:
            self.array = np.empty(size, dtype=np.uint8)
        return self.array[:size]


_FILE_BUFFER: _FileBuffer | None = None


def _shared_buffer() -> _FileBuffer | None:
    """The process's file buffer, or None off the main thread (threads must not share it)."""
    global _FILE_BUFFER
    if threading.current_thread() is not threading.main_thread():
        return None
    if _FILE_BUFFER is None or _FILE_BUFFER.pid != os.getpid():  # a forked worker gets its own
        _FILE_BUFFER = _FileBuffer()
    return _FILE_BUFFER


def _read_into_array(handle, expected: int, shared: _FileBuffer | None = None) -> np.ndarray:
    """The bytes of an open file in a writable uint8 array (one read, no copy), in ``shared`` when given."""
    buffer = shared.take(expected) if shared is not None else np.empty(expected, dtype=np.uint8)
    n = 0
    while n < expected:
        got = handle.readinto(memoryview(buffer)[n:])
        if not got:
            break
        n += got
    rest = handle.read(IN_MEMORY_FILE_BYTES + 1) if n == expected else b""
    if rest:  # the file grew while being read
        return np.concatenate([buffer[:n], np.frombuffer(rest, dtype=np.uint8)])
    return buffer[:n]


_FAST_BITPIX = {-32: ">f4", 16: ">i2"}


def _simple_primary_image(raw: np.ndarray, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
    """Fast path for the common file: a 2-D primary image, float32 or 16-bit.

    The header is parsed by astropy from its own blocks only; the pixels are
    converted from the buffer in one pass.  Returns ``(data, header, bitpix)``, or None for
    anything else (scaling other than 16-bit unsigned, BLANK, extensions
    holding the image, random groups, missing END), which the general astropy
    path below handles.
    """
    from astropy.io import fits

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


def atomic_write_fits(path: str | os.PathLike, hdus, *, overwrite: bool = True) -> str:
    """Write HDUs to ``path`` atomically and return the SHA-256 of the file.

    The file is written to a temporary file in the same folder, flushed to
    disk, then renamed over the target, so a reader (or a crash) never sees
    a partial file.

    Parameters
    ----------
    path : path-like
        Destination file.
    hdus : astropy.io.fits.HDUList or sequence of HDUs
        What to write.
    overwrite : bool
        Refuse to replace an existing file when False.

    Returns
    -------
    str
        Hex SHA-256 of the bytes written.
    """
    from astropy.io import fits

    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: exists, refusing to overwrite")
    hdul = hdus if isinstance(hdus, fits.HDUList) else fits.HDUList(list(hdus))
    buffer = io.BytesIO()
    hdul.writeto(buffer, output_verify="silentfix")
    payload = buffer.getvalue()
    return atomic_write_bytes(path, payload)


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> str:
    """Write bytes to ``path`` via a temporary file and a rename; return the SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); an output is a normal file that colleagues and a
        # web server may read: 0666 less the umask, as open() would give it.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return hashlib.sha256(payload).hexdigest()
