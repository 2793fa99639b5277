"""Frame selectors and night scopes: how a user names frames in a catalog of many nights.

A selector is a comma-separated list of numbers, ranges (``1001-1010``),
night-qualified numbers (``2026-03-14:1005``, ``2026-03-14:1001-1010``; the
night carries on to the bare numbers after it), paths and file names.

- A path selects exactly that file.
- A file name (no folder) selects the one frame of that name; when several
  frames share it the error lists them.
- A bare number that matches frames in more than one night is an error that
  lists the candidates as ``NIGHT:NUMBER``, unless ``--night`` narrows it.
- A number that several files of one night share names none of them: the
  error lists each by file name and path.  Those frames are named by file
  name everywhere (``NIGHT:FILE`` when the catalog holds several nights),
  which can be typed back.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.labels import frame_label  # noqa: F401  (re-exported: selectors name frames)
from obsdb.catalog.models import Frame
from obsdb.catalog.selection import ALL_NIGHTS  # noqa: F401  (re-exported: the night scope's vocabulary)
from obsdb.catalog.selection import (MAX_NUMBER, MAX_PARTS, MAX_RANGE, SHOWN_CANDIDATES,  # noqa: F401
                                     SelectorPart, parse_selector, resolve_selector)  # (re-exported)
from obsdb.errors import SelectorError  # noqa: F401  (re-exported: defined where the fast path can raise it)

def night_ids(session: Session, nights) -> list[int] | None:
    """The night ids a ``--night`` option names; None for no restriction (``None`` or ``all``): see
    :func:`obsdb.catalog.readers.night_ids`.

    Raises
    ------
    SelectorError
        For a night that is not in the catalog (the message lists the nights there are).
    """
    from obsdb.catalog import readers
    from obsdb.catalog.statements import session_runner

    return readers.night_ids(session_runner(session), nights)


def select_frames(session: Session, selector: str, *, nights=None, readable_only: bool = False,
                  strict: bool = True) -> list[Frame]:
    """Frames named by a selector, each exactly once, sorted by night, number and path: the frames
    :func:`obsdb.catalog.selection.resolve_selector` finds, as ORM objects.

    Raises
    ------
    SelectorError
        When nothing matches, a path is not catalogued, a number or file
        name is ambiguous, or (strict) a single number names no frame.
    """
    from obsdb.catalog.maintained import CHUNK
    from obsdb.catalog.statements import session_runner

    refs = resolve_selector(session_runner(session), selector, nights=nights, readable_only=readable_only,
                            strict=strict)
    ids = [ref.id for ref in refs]
    loaded: dict[int, Frame] = {}
    for at in range(0, len(ids), CHUNK):  # bounded parameter lists, whatever the selection's size
        loaded.update((f.id, f) for f in session.scalars(select(Frame).where(Frame.id.in_(ids[at:at + CHUNK]))))
    return [loaded[i] for i in ids]
