"""Reading and writing FITS files: once per file, atomically on output.

Pure functions: no database.  Errors are raised as :class:`FitsReadError`
with a one-line reason that the caller shows next to the file name.

Modules: :mod:`~obsdb.imaging.fitsio.base` (file names, errors, budgets),
:mod:`~obsdb.imaging.fitsio.read` (:func:`read_fits_image`),
:mod:`~obsdb.imaging.fitsio.stream` (byte sources: in memory, streamed, gzip),
:mod:`~obsdb.imaging.fitsio.hdu` (headers and data units) and
:mod:`~obsdb.imaging.fitsio.write` (atomic writes).
"""

from obsdb.imaging.fitsio.base import (
    DEFAULT_MAX_FRAME_BYTES,
    FITS_SUFFIXES,
    GZIP_SLACK_BYTES,
    IN_MEMORY_FILE_BYTES,
    FitsReadError,
    FitsWarning,
    FrameTooLargeError,
    is_fits_name,
    special_file_kind,
)
from obsdb.imaging.fitsio.read import HASH_MODES, FitsImage, read_fits_image
from obsdb.imaging.fitsio.write import atomic_write_bytes, atomic_write_fits

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "FITS_SUFFIXES", "GZIP_SLACK_BYTES", "HASH_MODES", "IN_MEMORY_FILE_BYTES",
           "FitsImage", "FitsReadError", "FitsWarning", "FrameTooLargeError", "atomic_write_bytes",
           "atomic_write_fits", "is_fits_name", "read_fits_image", "special_file_kind"]
