"""Reading the first 2-D image of a FITS file, once, with the file's SHA-256 from the same read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obsdb.imaging.fitsio.base import (
    DEFAULT_MAX_FRAME_BYTES,
    GZIP_SLACK_BYTES,
    IN_MEMORY_FILE_BYTES,
    FitsReadError,
    special_file_kind,
)
from obsdb.imaging.fitsio.hdu import _read_first_image, _simple_primary_image
from obsdb.imaging.fitsio.stream import _MemoryReader, _StreamReader, _read_into_array, _shared_buffer


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
    if os.fspath(path).lower().endswith(".xisf"):
        # PixInsight's XISF frames: read by their own module, which imports its package only now.
        from obsdb.imaging.fitsio.xisf import read_xisf_image

        return FitsImage(*read_xisf_image(path, hash_mode=hash_mode, max_frame_bytes=max_frame_bytes))
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
