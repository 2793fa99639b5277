"""One spelling for a target and for a filter, so that integration adds up across nights.

Capture programs write what the observer typed: ``M 80``, ``M80``, ``messier 80``,
``NGC3293``, ``ngc 3293``; ``Ha``, ``H``, ``H-alpha``, ``Halpha``.  Totals per target
and filter need one key for each, and the spelling shown is the catalogue's usual
one (``M 80``, ``NGC 3293``, ``Ha``).  A user's own aliases (a table in the catalog)
come first; these rules are what is left when none applies.
"""

from __future__ import annotations

import re

CATALOGUE_PREFIXES = {
    "M": "M", "MESSIER": "M", "NGC": "NGC", "IC": "IC", "SH2": "Sh2", "SH": "Sh2", "SHARPLESS": "Sh2",
    "B": "B", "BARNARD": "B", "LDN": "LDN", "LBN": "LBN", "VDB": "vdB", "ABELL": "Abell", "ARP": "Arp",
    "HCG": "HCG", "PGC": "PGC", "UGC": "UGC", "CR": "Cr", "COLLINDER": "Cr", "MEL": "Mel",
    "MELOTTE": "Mel", "C": "C", "CALDWELL": "C", "HD": "HD", "HIP": "HIP", "TYC": "TYC",
}
"""Catalogue prefixes as written (upper case, no punctuation) -> the usual spelling."""

_DESIGNATION = re.compile(r"^\s*([A-Za-z]+?)[\s_\-.]*(2)?[\s_\-.]*0*(\d+[A-Za-z]?(?:[-+]\d+)?)\s*$")

FILTER_ALIASES = {
    "HA": "Ha", "H": "Ha", "HALPHA": "Ha", "HALFA": "Ha", "H_ALPHA": "Ha",
    "OIII": "OIII", "O3": "OIII", "O": "OIII",
    "SII": "SII", "S2": "SII", "S": "SII",
    "HB": "Hb", "HBETA": "Hb",
    "L": "L", "LUM": "L", "LUMINANCE": "L", "CLEAR": "L", "CLR": "L",
    "R": "R", "RED": "R", "G": "G", "GREEN": "G", "B": "B", "BLUE": "B", "V": "V", "I": "I", "U": "U",
}
"""Filter names as written (upper case, no spaces, dashes or underscores) -> one spelling.
Johnson-Cousins letters stay themselves: ``B`` is blue whether a photometric B or an RGB
set's blue, and the two are not told apart by name."""


def target_key(name: str | None) -> str | None:
    """The usual spelling of a target name: catalogue designations unified, others tidied.

    Parameters
    ----------
    name : str or None
        The OBJECT keyword as written.

    Returns
    -------
    str or None
        ``"M 80"`` for ``M80``, ``m 80``, ``Messier 80``, ``M080``; ``"Sh2-155"`` for
        ``Sh 2-155`` or ``SH2_155``; a name with no catalogue prefix keeps its words, single-spaced;
        ``None`` for a missing or blank name.

    Examples
    --------
    >>> [target_key(n) for n in ("M80", "m 80", "Messier 80", "M080", "NGC3293", "ngc_3293")]
    ['M 80', 'M 80', 'M 80', 'M 80', 'NGC 3293', 'NGC 3293']
    >>> target_key("Sh 2-155"), target_key("SH2_155"), target_key("  Pelican   Nebula ")
    ('Sh2-155', 'Sh2-155', 'Pelican Nebula')
    """
    if name is None or not str(name).strip():
        return None
    text = str(name).strip()
    match = _DESIGNATION.match(text)
    if match:
        prefix, two, number = match.group(1).upper(), match.group(2), match.group(3).upper()
        if two and prefix == "SH":
            prefix = "SH2"
        elif two:
            match = None
        if match and prefix in CATALOGUE_PREFIXES:
            spelled = CATALOGUE_PREFIXES[prefix]
            return f"{spelled}-{number}" if spelled == "Sh2" else f"{spelled} {number}"
    return " ".join(text.split())


def filter_key(name: str | None) -> str | None:
    """One spelling for a filter name (``Ha`` for ``H``, ``H-alpha``, ``Halpha``...).

    Examples
    --------
    >>> [filter_key(n) for n in ("H", "h-alpha", "Ha", "O3", "Lum", "V", "Sloan r'")]
    ['Ha', 'Ha', 'Ha', 'OIII', 'L', 'V', "Sloan r'"]
    """
    if name is None or not str(name).strip():
        return None
    squeezed = re.sub(r"[\s_\-]+", "", str(name)).upper()
    return FILTER_ALIASES.get(squeezed, " ".join(str(name).split()))
