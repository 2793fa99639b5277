"""A glance at the first cards of a FITS file, without astropy and without reading its pixels.

`obsdb run` asks of a folder, before ingesting it, whether it holds bias, dark or flat frames: the
lights are then measured once, on calibrated pixels, instead of raw at ingest and again after the
masters are built.  Reading the first few header blocks of each file costs a few hundredths of a
millisecond; the full read comes with the ingest.
"""

from __future__ import annotations

import gzip
import os

CARD = 80
BLOCK = 2880

PEEK_BLOCKS = 4
"""Header blocks read at most (144 cards): the image-type cards come early in every header seen."""


def peek_cards(path: str | os.PathLike, keys: tuple[str, ...], *, blocks: int = PEEK_BLOCKS) -> dict:
    """The values of ``keys`` among the first ``blocks`` header blocks of a FITS file (gzip too).

    Strings lose their quotes and padding; other values are returned as their text.  A file that
    cannot be read, or is not FITS, gives ``{}``: the ingest that follows says what is wrong with it.

    Parameters
    ----------
    path : path
        The file.
    keys : tuple of str
        Upper-case keywords wanted.

    Returns
    -------
    dict
        Keyword to value, for the keys found before ``END``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from astropy.io import fits
    >>> path = tempfile.mkdtemp() + "/b.fits"
    >>> fits.writeto(path, np.zeros((2, 2)), fits.Header({"IMAGETYP": "Bias Frame"}))
    >>> peek_cards(path, ("IMAGETYP", "PICTTYPE"))
    {'IMAGETYP': 'Bias Frame'}
    """
    wanted = set(keys)
    try:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as handle:
            head = handle.read(BLOCK * blocks)
    except (OSError, EOFError, ValueError):
        return {}
    if not head.startswith(b"SIMPLE  ="):
        return {}
    found = {}
    for start in range(0, len(head) - CARD + 1, CARD):
        card = head[start:start + CARD].decode("ascii", "replace")
        key = card[:8].strip()
        if key == "END":
            break
        if key not in wanted or card[8:10] != "= ":
            continue
        value = card[10:]
        if value.lstrip().startswith("'"):
            text = value.lstrip()[1:]
            end = text.find("'")
            while end != -1 and text[end + 1:end + 2] == "'":       # '' is a quote inside the string
                end = text.find("'", end + 2)
            found[key] = (text[:end] if end != -1 else text).replace("''", "'").rstrip()
        else:
            found[key] = value.split("/", 1)[0].strip()
    return found
