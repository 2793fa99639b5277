"""What obsdb reads as FITS and the limits it reads within: file names, file kinds, the errors and the budgets."""

from __future__ import annotations

import os
import stat


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
