"""Frame selectors resolved over a ``run`` function, free of SQLAlchemy (see :mod:`obsdb.catalog.selectors`
for the language, and :mod:`obsdb.catalog.readers` for ``run``): what ``obsdb show`` and ``obsdb history``
resolve on the fast path and every other command through :func:`obsdb.catalog.selectors.select_frames`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from obsdb.catalog.labels import frame_label
from obsdb.errors import SelectorError

ALL_NIGHTS = "all"
"""``--night all``: every night, and no ambiguity error for numbers several nights share."""

KNOWN_NIGHTS_LISTED = 10
"""Nights an unknown ``--night`` error lists (the newest)."""


def night_ids(run, nights) -> list[int] | None:
    """The night ids a ``--night`` option names; None for no restriction (``None`` or ``all``).

    Raises
    ------
    obsdb.catalog.selectors.SelectorError
        For a night that is not in the catalog (the message lists the nights there are).
    """
    if nights is None:
        return None
    names = [nights] if isinstance(nights, str) else list(nights)
    if not names or ALL_NIGHTS in names:
        return None
    found = dict(run("nights_named", names=names))
    missing = [n for n in names if n not in found]
    if missing:
        known = [name for (name,) in run("newest_night_names", limit=KNOWN_NIGHTS_LISTED)]
        more = " ..." if len(known) == KNOWN_NIGHTS_LISTED else ""
        hint = f" (nights: {', '.join(known)}{more})" if known else " (no nights yet)"
        raise SelectorError(f"no night {', '.join(map(repr, missing))} in the catalog{hint}")
    return [found[n] for n in names]


def several_nights(run) -> bool:
    """True when the catalog holds more than one night (frames are then named ``NIGHT:NUMBER``)."""
    return run("night_count")[0][0] > 1


MAX_RANGE = 1_000_000
"""Longest range a selector may name (a typo such as 1001-100100000 is refused).  A range is one
``BETWEEN`` in SQL, whatever its length and the number of frames in it."""

MAX_NUMBER = 2**31 - 1
"""Largest frame number (``frame.number`` is a 32-bit integer): a bigger one can name no frame, and
PostgreSQL fails a query that compares the column with it."""

MAX_PARTS = 1_000
"""Most comma-separated parts in a selector: each is one query (a list of frames is written as ranges)."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Characters a selector may not hold: controls, line separators and lone surrogates (undecodable
bytes of a command line), which no message could show on one line and no database stores."""


@dataclass
class SelectorPart:
    """One comma-separated part of a selector."""

    text: str
    night: str | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)
    single: bool = False
    path: str | None = None


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_selector(text: str, known_nights=()) -> list[SelectorPart]:
    """Split a selector into its parts (see the module docstring).

    Parameters
    ----------
    text : str
        The selector as typed.
    known_nights : iterable of str
        Night names of the catalog: ``NAME:...`` is night-qualified only when
        ``NAME`` is one (otherwise the part is a path).

    Raises
    ------
    SelectorError
        For an empty selector, a backwards or implausibly long range, a number
        beyond :data:`MAX_NUMBER`, more than :data:`MAX_PARTS` parts or an
        unprintable character.
    """
    if not text or not text.strip():
        raise SelectorError("empty frame selector")
    bad = _UNPRINTABLE.search(text)
    if bad:
        raise SelectorError(f"the character U+{ord(bad.group()):04X} at position {bad.start() + 1} "
                            f"is not allowed in a frame selector")
    if text.count(",") >= MAX_PARTS:
        raise SelectorError(f"the frame selector has {text.count(',') + 1:,} parts; the limit is {MAX_PARTS:,} "
                            f"(write runs of frames as ranges, e.g. 1001-1010)")
    nights = set(known_nights)
    parts: list[SelectorPart] = []
    night: str | None = None
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        spec = raw
        prefix, colon, rest = raw.rpartition(":")
        if colon and prefix in nights and _RANGE.match(rest):
            night, spec = prefix, rest
        elif colon and prefix in nights and rest.strip() and "/" not in rest:
            parts.append(SelectorPart(raw, night=prefix, path=rest.strip()))
            continue
        elif colon and _RANGE.match(rest) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", prefix):
            raise SelectorError(f"{raw!r}: no night {prefix} in the catalog"
                                + (f" (nights: {', '.join(sorted(nights)[:8])})" if nights else ""))
        match = _RANGE.match(spec)
        if not match:
            parts.append(SelectorPart(raw, path=raw))
            continue
        for digits in filter(None, match.groups()):
            if len(digits) > len(str(MAX_NUMBER)) or int(digits) > MAX_NUMBER:
                raise SelectorError(f"{raw!r}: frame numbers go up to {MAX_NUMBER}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise SelectorError(f"range {raw!r} runs backwards")
        if last - first > MAX_RANGE:
            raise SelectorError(f"range {raw!r} is implausibly long")
        parts.append(SelectorPart(raw, night=night, ranges=[(first, last)], single=match.group(2) is None))
    return parts



@dataclass(frozen=True)
class FrameRef:
    """A frame as a selector finds it (the columns of :data:`obsdb.catalog.statements.FRAME_REF`)."""

    id: int
    night_id: int
    night_name: str
    number: int | None
    path: str
    file_name: str
    readable: bool
    number_shared: bool
    sha256: str | None

    @property
    def night_label(self) -> str:
        """``NIGHT:NUMBER`` (or ``NIGHT:file name``): unique across nights."""
        return frame_label(self.night_name, self.number, self.file_name, qualified=True, shared=self.number_shared)


def resolve_selector(run, selector: str, *, nights=None, readable_only: bool = False,
                     strict: bool = True) -> list[FrameRef]:
    """Frames named by a selector, each exactly once, sorted by night, number and path.

    Parameters
    ----------
    run : callable
        Runs a statement of :mod:`obsdb.catalog.statements` (see :mod:`obsdb.catalog.readers`).
    selector : str
        See the module docstring.
    nights : str or list of str, optional
        ``--night``: restrict bare numbers and file names to these nights
        (``"all"``: every night, numbers shared by nights select all of them).
    readable_only : bool
        Leave out unreadable files.
    strict : bool
        A single number that names no frame is an error (a typo must not
        silently shrink a selection); ranges may have gaps.

    Raises
    ------
    SelectorError
        When nothing matches, a path is not catalogued, a number or file
        name is ambiguous, or (strict) a single number names no frame.
    """
    scope = night_ids(run, nights)
    everywhere = nights is not None and scope is None
    known = dict(run("night_ids_by_name"))
    found: dict[int, FrameRef] = {}
    for part in parse_selector(selector, known):
        if part.path is not None:
            frame = _by_path(run, part.path, [known[part.night]] if part.night else scope)
            found[frame.id] = frame
            continue
        (first, last), = part.ranges
        frames = [FrameRef(*row) for row in run("frames_numbered", first=first, last=last,
                                                night=known[part.night] if part.night is not None else None,
                                                scope=scope if part.night is None else None)]
        if part.night is None and not everywhere and len({f.night_id for f in frames}) > 1:
            _ambiguous(part, frames)
        _refuse_shared(part, frames)
        if strict and part.single and not frames:
            where = f" in night {part.night}" if part.night else ""
            raise SelectorError(f"no frame numbered {part.ranges[0][0]}{where} in the catalog "
                                f"(selector {selector!r})")
        found.update((f.id, f) for f in frames)
    if not found:
        raise SelectorError(f"no frame in the catalog matches {selector!r}")
    frames = [f for f in found.values() if f.readable or not readable_only]
    return sorted(frames, key=lambda f: (f.night_name, f.number if f.number is not None else 10**12, f.path))


def _ambiguous(part: SelectorPart, frames: list[FrameRef]) -> None:
    nights = sorted({f.night_name for f in frames})
    if part.single:
        candidates = ", ".join(sorted(f.night_label for f in frames))
        raise SelectorError(f"frame number {part.text} is in {len(nights)} nights: {candidates}; "
                            f"name one (NIGHT:NUMBER) or narrow with --night")
    raise SelectorError(f"range {part.text} has frames in {len(nights)} nights ({', '.join(nights)}): "
                        f"write NIGHT:{part.text} or narrow with --night")


SHOWN_CANDIDATES = 10
"""Candidates an ambiguity error lists one by one."""


def _refuse_shared(part: SelectorPart, frames: list[FrameRef]) -> None:
    """A number several files of one night share names none of them: say which files, and how to name each."""
    by_key: dict[tuple[int, int], list[FrameRef]] = {}
    for frame in frames:
        by_key.setdefault((frame.night_id, frame.number), []).append(frame)
    shared = {key: group for key, group in by_key.items() if len(group) > 1}
    if not shared:
        return
    qualified = len({f.night_id for f in frames}) > 1
    if part.single:
        group = sorted(next(iter(shared.values())), key=lambda f: f.path)
        shown = "; ".join(f"{f.night_name + ':' if qualified else ''}{f.file_name} ({f.path})" for f in group[:SHOWN_CANDIDATES])
        more = f"; and {len(group) - SHOWN_CANDIDATES} more" if len(group) > SHOWN_CANDIDATES else ""
        raise SelectorError(f"frame number {part.text} names {len(group)} files of night {group[0].night_name}: "
                            f"{shown}{more}; name one by its file name")
    numbers = sorted({f"{group[0].night_name}:{number} ({len(group)} files)"
                      for (_, number), group in shared.items()})
    raise SelectorError(f"range {part.text} holds numbers that several files of one night share: "
                        f"{', '.join(numbers[:SHOWN_CANDIDATES])}{' ...' if len(numbers) > SHOWN_CANDIDATES else ''}; "
                        f"name those frames by file name (`obsdb frames` lists them so)")


def _by_path(run, text: str, scope: list[int] | None) -> FrameRef:
    try:
        resolved = str(Path(text).expanduser().resolve())
    except (OSError, RuntimeError, ValueError) as exc:  # ~nobody/x: no such home; a path too long
        raise SelectorError(f"{text}: not a usable path ({exc})") from None
    rows = run("frame_by_path", path=resolved)
    if rows:
        return FrameRef(*rows[0])
    if "/" in text or text.startswith("~"):
        raise SelectorError(f"{text}: not in the catalog (a path names exactly one catalogued file)")
    matches = [FrameRef(*row) for row in run("frames_named", name=text, limit=11, scope=scope)]
    if not matches:
        raise SelectorError(f"{text}: not in the catalog")
    if len(matches) > 1:
        shown = ", ".join(sorted(f.path for f in matches[:10])) + (" ..." if len(matches) > 10 else "")
        raise SelectorError(f"{text}: {len(matches)} catalogued files have this name ({shown}); "
                            f"give the path")
    return matches[0]
