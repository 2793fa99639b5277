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


def not_one_of(option: str, value, choices) -> str:
    """``--type 'lights': did you mean 'light'? expected one of bias, dark, ...`` for an enumerated option."""
    import difflib

    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{option} {value!r}: {hint}expected one of {', '.join(names)}"


def without_tag(tag: str, reason: str | None) -> str:
    """A rule's reason without the tag it starts with (``focus: FWHM ...`` shown beside the tag ``focus``)."""
    reason = reason or ""
    return reason[len(tag) + 2:] if reason.startswith(f"{tag}: ") else reason
