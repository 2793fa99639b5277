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
