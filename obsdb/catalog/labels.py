"""How a frame is named to the user, defined once (the CLI, the desk, the report and the steps all
name frames by :func:`frame_label`)."""

from __future__ import annotations


def named_by_number(number: int | None, shared: bool = False) -> bool:
    """Whether a frame is named by its number: it has one, and no other file of its night shares it."""
    return number is not None and not shared


def frame_name(number: int | None, file_name: str, shared: bool = False) -> int | str:
    """A frame's name within its night, typed: the number (an int) when it names the frame, else the
    file name (:func:`frame_label` is the same as text, with ``NIGHT:`` when asked)."""
    return number if named_by_number(number, shared) else file_name


def frame_label(night_name: str | None, number: int | None, file_name: str, *, qualified: bool,
                shared: bool = False) -> str:
    """How a frame is named to the user: its number (or file name), with ``NIGHT:`` when asked.

    A number that other files of the night share (``shared``) names none of them: the file name
    does, and it can be typed back as a selector.

    Examples
    --------
    >>> frame_label("2024-03-01", 17, "m51-0017.fits", qualified=False)
    '17'
    >>> frame_label("2024-03-01", 17, "m51-0017.fits", qualified=True, shared=True)
    '2024-03-01:m51-0017.fits'
    """
    label = str(number) if named_by_number(number, shared) else file_name
    return f"{night_name}:{label}" if qualified and night_name else label
