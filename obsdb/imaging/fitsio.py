"""Reading and writing FITS files: once per file, atomically on output.

Pure functions: no database.  Errors are raised as :class:`FitsReadError`
with a one-line reason that the caller shows next to the file name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FITS_SUFFIXES = (".fits", ".fit", ".fts")
"""File name endings recognised as FITS (each also with ``.gz``)."""


class FitsReadError(Exception):
    """A file could not be read as a 2-D FITS image; the message says why."""


class FitsWarning(UserWarning):
    """A FITS file was catalogued with something doubted or left out; the message names the file and value."""


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


def read_fits_image(path: str | os.PathLike, *, hash_mode: str = "thread") -> FitsImage:
    """Read the first 2-D image of a FITS file, reading the file once.

    The bytes are read into memory, hashed, and parsed from memory, so the
    hash and the pixels always belong to the same content.

    Parameters
    ----------
    path : path-like
        A ``.fits``/``.fit``/``.fts`` file, optionally gzipped.
    hash_mode : {"thread", "inline", "none"}
        SHA-256 of the bytes in a thread beside the caller's pixel work (one
        process on a multi-core machine), in this thread (when every core
        already runs a worker process), or not at all (readers that only need
        the pixels: render, align, report).

    Returns
    -------
    FitsImage

    Raises
    ------
    FitsReadError
        Empty, truncated or non-FITS file, no image data, a cube, or all-NaN data.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        shared = _shared_buffer()
        raw = _read_into_array(path, shared)
    except OSError as exc:
        raise FitsReadError(f"cannot read file: {exc.strerror or exc}") from None
    size = raw.size
    if size == 0:
        raise FitsReadError("empty file")
    if hash_mode == "thread":
        # The buffer is never modified below while the thread reads it.
        digest = _hash_in_thread(raw)
        if shared is not None:
            shared.in_use = digest
    elif hash_mode == "inline":
        digest = hashlib.sha256(raw).hexdigest()
    elif hash_mode == "none":
        digest = None
    else:
        raise ValueError(f"hash_mode {hash_mode!r}: expected one of {', '.join(HASH_MODES)}")
    if raw[:2].tobytes() == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw.tobytes())
        except (OSError, EOFError) as exc:
            raise FitsReadError(f"corrupt gzip stream: {exc}") from None
        raw = np.frombuffer(raw, dtype=np.uint8)
    if raw[:9].tobytes() != b"SIMPLE  =":
        raise FitsReadError("not a FITS file (no SIMPLE keyword at the start)")
    simple = _simple_primary_image(raw)
    if simple is not None:
        image, header, bitpix = simple
        return FitsImage(image, header, digest, size, bitpix, 0)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(raw.tobytes()), memmap=False, lazy_load_hdus=False) as hdul:
                index, hdu = _first_image_hdu(hdul)
                header = hdu.header.copy()
                if index > 0:
                    header = _merge_primary(hdul[0].header, header)
                # BITPIX as stored: astropy rewrites it to -32 once BSCALE is applied.
                bitpix = int(hdu.header.get("BITPIX", 0))
                naxis = int(hdu.header.get("NAXIS", 0))
                shape = tuple(int(hdu.header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1))
                if naxis != 2:
                    raise FitsReadError(f"not a 2-D image: data has {naxis} axes {shape}")
                data = hdu.data
                if data is None:
                    raise FitsReadError("no image data in any HDU")
                data = np.asarray(data)
    except FitsReadError:
        raise
    except (TypeError, ValueError) as exc:
        if "too small" in str(exc) or "cannot reshape" in str(exc):
            raise FitsReadError("truncated FITS: data shorter than the header promises") from None
        raise FitsReadError(f"unreadable FITS: {str(exc).splitlines()[0]}") from None
    except (OSError, IndexError, EOFError) as exc:
        raise FitsReadError(f"unreadable FITS: {str(exc).splitlines()[0]}") from None
    del raw
    image = np.asarray(data, dtype=np.float32)
    if not image.flags.c_contiguous or not image.dtype.isnative:
        image = np.ascontiguousarray(image, dtype=np.float32)
    return FitsImage(image, header, digest, size, bitpix, index)


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


def _read_into_array(path: Path, shared: _FileBuffer | None = None) -> np.ndarray:
    """The file's bytes in a writable uint8 array (one read, no copy), in ``shared`` when given."""
    with open(path, "rb") as handle:
        expected = os.fstat(handle.fileno()).st_size
        buffer = shared.take(expected) if shared is not None else np.empty(expected, dtype=np.uint8)
        n = handle.readinto(buffer) if expected else 0
        rest = handle.read()
    if rest:  # the file grew while being read
        return np.concatenate([buffer[:n], np.frombuffer(rest, dtype=np.uint8)])
    return buffer[:n]


_FAST_BITPIX = {-32: ">f4", 16: ">i2"}


def _simple_primary_image(raw: np.ndarray):
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
        bitpix = int(header.get("BITPIX", 0))
        naxis = int(header.get("NAXIS", 0))
        nx, ny = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
        bscale = float(header.get("BSCALE", 1.0))
        bzero = float(header.get("BZERO", 0.0))
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    if (bitpix not in _FAST_BITPIX or naxis != 2 or nx <= 0 or ny <= 0 or header.get("GROUPS")
            or "BLANK" in header or bscale != 1.0
            or bzero not in ((0.0,) if bitpix == -32 else (0.0, 32768.0))):
        return None
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


def _first_image_hdu(hdul):
    from astropy.io import fits

    for index, hdu in enumerate(hdul):
        if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            naxis = int(hdu.header.get("NAXIS", 0))
            if naxis > 0 and all(int(hdu.header.get(f"NAXIS{i}", 0)) > 0 for i in range(1, naxis + 1)):
                return index, hdu
    raise FitsReadError("no image data in any HDU")


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
