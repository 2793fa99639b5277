"""World coordinates of aligned outputs: the reference's, since they share its pixel grid."""

from __future__ import annotations

import re
import warnings

# Keywords of a FITS WCS (paper I-III and SIP/TPV distortions) that must not outlive a resampling.
_WCS_KEY = re.compile(r"^(WCSAXES|CRPIX\d|CRVAL\d|CDELT\d|CTYPE\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+|"
                      r"LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|MJDREF|WCSNAME|"
                      r"A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|A_\d+_\d+|B_\d+_\d+|AP_\d+_\d+|BP_\d+_\d+|"
                      r"A_DMAX|B_DMAX|"
                      # the Digitized Sky Survey's plate solution, which astropy also reads
                      r"AMDX\d+|AMDY\d+|PPO\d+|CNPIX\d|PLTRAH|PLTRAM|PLTRAS|PLTDECSN|PLTDECD|PLTDECM|PLTDECS|"
                      r"PLTSCALE|XPIXELSZ|YPIXELSZ)[A-Z]?$")


# A celestial WCS needs axis types (CTYPEn), or a DSS plate solution that astropy translates into them;
# headers without any (EQUINOX or EPOCH alone are common) have none.
_CELESTIAL_NEEDS = re.compile(r"^(CTYPE\d|AMDX\d+|AMDY\d+|PPO\d+|CNPIX\d|PLTRA[HMS]|PLTDEC(SN|D|M|S)|PLTSCALE|"
                              r"XPIXELSZ|YPIXELSZ)[A-Z]?$")


def celestial_wcs_cards(header) -> list[tuple[str, object, str]] | None:
    """The celestial WCS of a header as ``(keyword, value, comment)`` cards, or None when it has none.

    Parameters
    ----------
    header : astropy.io.fits.Header
        A frame's header.

    Returns
    -------
    list of tuple or None
        The header's own WCS cards, verbatim (standard, SIP/TPV or DSS plate solution).
    """
    cards = [(card.keyword, _numeric(card.keyword, card.value), card.comment)
             for card in header.cards if _WCS_KEY.match(card.keyword)]
    if any(value is not card.value for (_, value, _), card in zip(cards, (c for c in header.cards
                                                                        if _WCS_KEY.match(c.keyword)))):
        # SCAMP's TPV solutions in Lowell's LOIS frames write CRVAL1 = '124.6187765596' as text: astropy
        # reads such a WCS as all zeros.  The numbers are written as numbers.
        header = header.copy()
        for keyword, value, _ in cards:
            header[keyword] = value
    if not any(_CELESTIAL_NEEDS.match(keyword) for keyword, _, _ in cards):
        # No axis types, no celestial WCS: astropy.wcs (seconds to import) is not needed to say so.
        return None
    from astropy.io.fits.verify import VerifyWarning
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        # astropy reports each card it repairs on the way (a text CRVAL, a SKEW card of two numbers);
        # the cards are kept verbatim either way.
        warnings.filterwarnings("ignore", category=FITSFixedWarning)
        warnings.filterwarnings("ignore", category=VerifyWarning)
        try:
            wcs = WCS(header, relax=True)
        except Exception:  # noqa: BLE001 - a malformed WCS is no WCS
            return None
        if not wcs.has_celestial:
            return None
    # Verbatim, whatever the convention (SIP, TPV, a DSS plate solution): the output's pixels are the
    # reference's, so its own keywords describe them exactly.
    return cards


_TEXT_WCS_KEY = re.compile(r"^(CTYPE\d|CUNIT\d|RADESYS|RADECSYS|WCSNAME|PLTDECSN)[A-Z]?$")
"""WCS keywords whose values are text by the standard; the others are numbers."""


def _numeric(keyword: str, value):
    """A numeric WCS card's value as a number when it was written as text (``'716.0'``), else as it is."""
    if not isinstance(value, str) or _TEXT_WCS_KEY.match(keyword):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def replace_wcs(header, cards, *, note: str) -> None:
    """Drop every WCS keyword from ``header`` (in place) and write ``cards`` instead, or a note if None."""
    for key in [k for k in header.keys() if _WCS_KEY.match(k)]:
        header.remove(key, ignore_missing=True, remove_all=True)
    if cards is None:
        header.add_comment(note)
        return
    for keyword, value, comment in cards:
        header[keyword] = (value, comment)
