"""The failures of the machine rather than of obsdb, each as one sentence that says what to do.

Disks, permissions, memory, locks, a database server that stops, a Dask cluster that dies: the
command line (``obsdb.cli.common``) and the review desk (``obsdb.web``) answer them with these
sentences, never a traceback.  Known by type and message, so that nothing here imports the
database driver, SQLAlchemy or Dask.
"""

from __future__ import annotations

SERVER_GONE = ("server closed the connection", "terminating connection", "the database system is shutting down",
               "connection is closed", "consuming input failed", "ssl connection has been closed")
"""How a PostgreSQL server that stopped mid-command shows in the driver's message."""

DASK_FAILURES = ("FutureCancelledError", "CancelledError", "KilledWorker", "CommClosedError")
"""Dask's errors when its scheduler or workers die (``FutureCancelledError`` is no ``CancelledError``)."""


def known_failure(exc: BaseException, *, catalog: str | None = None) -> str | None:
    """A sentence for the failures of the machine rather than of obsdb: disks, permissions, memory, locks.

    Everything a command writes is in a transaction or written atomically, so
    each of these leaves the catalog and the files as they were; the sentence says what to fix.
    The command line and the review desk say them alike.

    Parameters
    ----------
    exc : BaseException
        What was raised.
    catalog : str, optional
        The catalog's name as the user gave it, for the sentences about it.

    Returns
    -------
    str or None
        The sentence, or None when ``exc`` is not such a failure.
    """
    import errno

    if isinstance(exc, MemoryError):
        return "out of memory: nothing was changed; try fewer --workers, or a machine with more memory"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f"{exc.filename}: " if exc.filename else ""
        advice = {errno.ENOSPC: "the disk is full; nothing was left half-written",
                  errno.EDQUOT: "the disk quota is used up; nothing was left half-written",
                  errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                  errno.ENOTDIR: "a part of the path is a file, not a folder",
                  errno.EISDIR: "is a folder, where a file was expected",
                  errno.ENAMETOOLONG: "the name is too long for the file system"}
        return f"{where}{advice.get(exc.errno, exc.strerror or str(exc))}"
    # The database driver's errors, known by their text (no sqlalchemy import at the boundary).
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else ""
    kind = type(getattr(exc, "orig", None) or exc).__name__
    if kind in ("OperationalError", "DatabaseError") or type(exc).__module__.startswith("sqlalchemy"):
        lowered = text.lower()
        if "readonly database" in lowered or "read-only" in lowered:
            return f"the catalog {catalog or ''} is read-only for you: nothing was changed".replace("  ", " ")
        if "disk is full" in lowered or "no space left" in lowered:
            return "the disk holding the catalog is full: nothing was changed; free some space and run again"
        if "database is locked" in lowered:
            return ("the catalog is busy: another obsdb has been writing to it for over 30 s; "
                    "nothing was changed; run again when it is done")
        if "unable to open database" in lowered:
            return "cannot open the catalog file (its folder must be writable, for SQLite's journal)"
        if "could not connect" in lowered or "connection refused" in lowered:
            return f"cannot reach the catalog's database server: {text}"
        if any(sign in lowered for sign in SERVER_GONE):
            return (f"the catalog's database server stopped during the command ({text}): what was committed "
                    "is kept; run the command again when the server is back, and it finishes the work")
    if kind == "InsufficientPrivilege" or "permission denied for" in text.lower():
        return (f"the catalog {catalog or ''} is read-only for you (the database role may not write: {text}): "
                "nothing was changed").replace("  ", " ")
    if type(exc).__name__ in DASK_FAILURES or type(exc).__module__.split(".")[0] == "distributed":
        return (f"the Dask cluster stopped or lost its workers ({type(exc).__name__}): the work committed so far "
                "is kept; run the command again (it finishes the work), or use --executor processes")
    if kind == "DataError" or type(exc).__name__ == "DataError":
        # e.g. PostgreSQL's "value out of range: overflow" on absurd stored values in a --where
        return f"the database cannot compute this on the stored values: {text}"
    return None
