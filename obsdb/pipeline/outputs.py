"""What obsdb may write in an output folder: only files it wrote itself.

An output folder is the user's: it may hold their own files, another
night's inputs, or a folder linked from elsewhere.  obsdb replaces a file
there only when the catalog says obsdb wrote it and its bytes are still the
ones written (the recorded SHA-256), and it removes only the temporary
files of its own interrupted writes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from obsdb.catalog.records import PENDING_DIGEST
from obsdb.errors import ObsdbError


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def refuse_foreign(paths, owned: dict[str, set[str]], *, what: str = "obsdb") -> None:
    """Raise unless every existing file among ``paths`` is one obsdb wrote and nobody changed since.

    Parameters
    ----------
    paths : iterable of path-like
        Files about to be written.
    owned : dict
        Path -> SHA-256 digests recorded when obsdb wrote it (see ``Catalog.written_outputs``).
    what : str
        The command, for the message.

    Raises
    ------
    ObsdbError
        Naming the first file that is not obsdb's, or that was changed after obsdb wrote it.
    """
    for path in paths:
        path = Path(path)
        if path.is_symlink():
            raise ObsdbError(f"{path}: is a symbolic link; {what} does not write through links "
                             "(choose another --out)")
        if not path.exists():
            continue
        if not path.is_file():
            raise ObsdbError(f"{path}: exists and is not a file; refusing to replace it (choose another --out)")
        digests = owned.get(str(path))
        if digests and PENDING_DIGEST in digests:
            continue  # obsdb was writing it when a render was interrupted: its own half-done work
        if not digests:
            raise ObsdbError(f"{path}: exists and was not written by obsdb; refusing to replace it "
                             "(move it, or choose another --out)")
        if file_sha256(path) not in digests:
            raise ObsdbError(f"{path}: was written by obsdb but changed since; refusing to replace it "
                             "(move it, or choose another --out)")


def _leftover_pattern(name: str) -> re.Pattern:
    # tempfile.mkstemp's names: the prefix, eight characters of [a-z0-9_], the suffix.
    return re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}\.part$")


def remove_own_leftovers(paths) -> int:
    """Delete the temporary files an interrupted write of any of ``paths`` left beside it.

    Only hidden files named as :func:`obsdb.imaging.fitsio.atomic_write_bytes`
    names its temporary files (``.NAME.XXXXXXXX.part``) for one of these
    targets are removed: nothing else in the folder is touched.

    Returns
    -------
    int
        Files removed.
    """
    by_folder: dict[Path, list[str]] = {}
    for path in paths:
        path = Path(path)
        by_folder.setdefault(path.parent, []).append(path.name)
    removed = 0
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        patterns = [_leftover_pattern(name) for name in names]
        try:
            entries = [entry for entry in os.scandir(folder) if entry.name.startswith(".")
                       and entry.name.endswith(".part")]
        except OSError:
            continue
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and any(p.match(entry.name) for p in patterns):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed
