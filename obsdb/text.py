"""Words for counts, shared by the command line, the report and the event log."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 frame``, ``2 frames``, ``1,204 frames``; ``many`` for irregular plurals.

    Parameters
    ----------
    count : int
    noun : str
        The singular ("frame", "median stack", "pointing group").
    many : str, optional
        The plural when it is not ``noun + "s"``.
    """
    word = noun if count == 1 else (many or f"{noun}s")
    return f"{count:,} {word}"


CLOSE_MATCH_CUTOFF = 0.6
"""How alike (difflib's ratio, 0-1) a word must be to a known one to be offered as "did you mean"."""


def closest(value, known, cutoff: float = CLOSE_MATCH_CUTOFF) -> str | None:
    """The known name most like ``value`` (``clod`` -> ``cloud``), or None: the one "did you mean" of obsdb.

    Parameters
    ----------
    value : str
        What was typed.
    known : iterable of str
        The names it could have meant.
    cutoff : float
        difflib's similarity ratio a match needs (:data:`CLOSE_MATCH_CUTOFF` by default).
    """
    import difflib

    close = difflib.get_close_matches(str(value), sorted({str(k) for k in known}), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(value, known, cutoff: float = CLOSE_MATCH_CUTOFF, *, template: str = " (did you mean {!r}?)") -> str:
    """``" (did you mean 'cloud'?)"`` for :func:`closest`'s match, or ``""`` when nothing is close."""
    match = closest(value, known, cutoff)
    return template.format(match) if match else ""


def not_one_of(option: str, value, choices) -> str:
    """``--type 'lights': did you mean 'light'? expected one of bias, dark, ...`` for an enumerated option."""
    names = [str(c) for c in choices]
    hint = did_you_mean(value, names, template="did you mean {!r}? ")
    return f"{option} {value!r}: {hint}expected one of {', '.join(names)}"


def without_tag(tag: str, reason: str | None) -> str:
    """A rule's reason without the tag it starts with (``focus: FWHM ...`` shown beside the tag ``focus``)."""
    reason = reason or ""
    return reason[len(tag) + 2:] if reason.startswith(f"{tag}: ") else reason


def storable(text: str) -> str:
    """``text`` as a catalog can store it: a lone surrogate (an undecodable byte of a command line, or
    of a request body) is kept as its escape (``\\udcff``) instead of failing the write; everything
    else, newlines included, stays as it is."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(text) -> str:
    """``text`` as one printable line for a terminal: control characters (newlines, ANSI escapes) and
    undecodable bytes shown as escapes (``\\n``, ``\\x1b``, ``\\udcff``), everything else as it is.

    A file name may hold any byte but "/" and NUL; printed raw, an escape sequence in it would
    rewrite the user's terminal.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


NATURAL_DIGITS = 20
"""Width every run of digits is padded to by :func:`natural_key` (a 64-bit number has 20 digits)."""


def natural_key(text: str) -> str:
    """``text`` with every run of digits zero-padded, so that plain string order is natural order.

    ``STAR_FOCUS_2`` sorts before ``STAR_FOCUS_10`` (as a person reads them) once both are keyed;
    stored with each frame (``frame.sort_key``) so that a database orders by it as text, on SQLite
    and PostgreSQL alike.

    Examples
    --------
    >>> sorted(["F_10.fits", "F_2.fits"], key=natural_key)
    ['F_2.fits', 'F_10.fits']
    """
    import re

    return re.sub(r"\d+", lambda m: m.group().zfill(NATURAL_DIGITS), str(text))
