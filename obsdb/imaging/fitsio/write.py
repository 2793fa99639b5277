"""Writing files atomically: a temporary file in the same folder, flushed, then renamed over the target."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


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
    # A view of the buffer, not getvalue()'s copy of it (20 MB for a 2k float32 frame).
    with buffer.getbuffer() as payload:
        return atomic_write_bytes(path, payload)


def _umask() -> int:
    """The process's umask (read by setting it and putting it back, one thread at a time: two
    threads interleaving would leave the temporary value as the process's umask)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, payload: bytes | memoryview) -> str:
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
