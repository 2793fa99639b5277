"""What a number on a page means: shared by the static report and the review desk.

Pure functions of the catalog's records (as :meth:`obsdb.Catalog.frame_dicts` and
:meth:`obsdb.Catalog.report_facts` give them): the minor-axis FWHM the focus rule compares, the QA rules'
limits where the rules put them, a frame's pixel scale from its header, times, the stars worth enlarging.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime

ARCSEC_PER_RADIAN = 206264.806

MAX_ZOOM_STARS = 4
"""Stars enlarged on a frame's page (the brightest clean ones, spread over the field)."""

BAD_STAR_FLAGS = 0x1 | 0x2 | 0x8 | 0x100 | 0x200
"""Stored star flags that disqualify a star from the zoom: blended, cut by the edge, singular, saturated,
aperture off the frame (see :mod:`obsdb.imaging.stars`)."""


def parse_time(value: str | None) -> datetime | None:
    """An ISO time from the catalog's JSON as a datetime (None when absent or not a time)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def when(value) -> str:
    """A time to the second, ISO-like, whatever form it comes in (``-`` for none)."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    return str(value).replace("T", " ")[:19]


def number(value) -> float | None:
    """A finite float from a header or JSON value, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric(record: dict, key: str):
    """A QA metric of a frame, None when missing or not finite."""
    value = (record.get("metrics") or {}).get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def background(record: dict):
    """The QA metrics' background, else the ingest's (frames not yet through QA)."""
    value = metric(record, "background")
    if value is None:
        value = (record.get("stats") or {}).get("background")
    return value if value is None or math.isfinite(value) else None


def minor_fwhm(record: dict) -> float | None:
    """The FWHM across the major axis, as the focus rule measures it (trails leave it unchanged)."""
    from obsdb.pipeline.qa_rules import across_fwhm

    metrics = record["metrics"] or {}
    width = across_fwhm(metrics.get("fwhm"), metrics.get("elongation"))
    return width if width == width else None


def record_label(record: dict) -> str:
    """How the user names a frame in a picture's file name and caption: its number, else its file name."""
    return str(record["number"]) if record.get("number") is not None else str(record.get("file_name") or "-")


def short_instrument(instrument: str | None) -> str:
    """An instrument key (telescope|camera|size|binning) without its size and binning, for narrow columns."""
    if not instrument:
        return "-"
    parts = instrument.split("|")
    return " / ".join(p for p in parts[:2] if p) or instrument


def distinct(values) -> list[str]:
    """The values as stripped text, each once, in order of first appearance (empty ones left out)."""
    seen = []
    for value in values:
        text = None if value is None else str(value).strip()
        if text and text not in seen:
            seen.append(text)
    return seen


def rejecting_names(record: dict) -> list[str]:
    """Names of the tags that reject a rejected frame (or 'unreadable')."""
    from obsdb.catalog.status import REJECTING_TAGS

    if not record["readable"]:
        return ["unreadable"]
    names = []
    for tag in record["tags"]:
        if tag["name"] in REJECTING_TAGS and tag["name"] not in names:
            names.append(tag["name"])
    return names or ["rejected"]


# -- pixel scale ----------------------------------------------------------------------------------

def header_scale(header: dict, pixel_size: float | None = None) -> float | None:
    """Arcseconds per pixel from a header: PIXSCALE/SECPIX/SCALE, else the WCS (CDELT, CD), else FOCALLEN (mm)
    with XPIXSZ (micron, as binned: MaxIm DL's convention) or the instrument's pixel size; None if unknown."""
    for key in ("PIXSCALE", "SECPIX", "SECPIX1", "SCALE"):
        value = number(header.get(key))
        if value:
            return _plausible(abs(value))
    cd11, cd12 = number(header.get("CD1_1")), number(header.get("CD1_2"))
    if cd11 is not None or cd12 is not None:
        return _plausible(math.hypot(cd11 or 0.0, cd12 or 0.0) * 3600.0)
    cdelt = number(header.get("CDELT1"))
    if cdelt:
        return _plausible(abs(cdelt) * 3600.0)
    focal = number(header.get("FOCALLEN"))
    pixel = number(header.get("XPIXSZ")) or number(header.get("PIXSIZE1")) or pixel_size
    if focal and pixel and focal > 0:
        return _plausible(ARCSEC_PER_RADIAN * pixel * 1e-3 / focal)
    return None


def _plausible(scale: float) -> float | None:
    # A WCS of 1 degree per pixel or a focal length in metres gives nonsense: no conversion rather than wrong.
    return scale if 0.01 <= scale <= 120.0 else None


def pixel_scales(records: list[dict], details: dict) -> dict[int, float | None]:
    """Arcseconds per pixel of each frame, or None (``details``: :meth:`obsdb.Catalog.report_details`)."""
    frames, instruments = details.get("frames", {}), details.get("instruments", {})
    scales = {}
    for record in records:
        extra = frames.get(record["id"], {})
        instrument = instruments.get(extra.get("instrument") or "", {})
        scales[record["id"]] = header_scale(extra.get("header") or {}, instrument.get("pixel_size"))
    return scales


def band_scale(records: list[dict], scales: dict[int, float | None]) -> dict[int, float] | None:
    """Each frame's scale when every frame of the band has one (the FWHM is then drawn in arcsec), else None."""
    known = {r["id"]: scales.get(r["id"]) for r in records}
    return known if known and all(known.values()) else None


# -- the QA rules' limits -------------------------------------------------------------------------

def _qa_thresholds(details: dict, night: str, band: str | None):
    """The thresholds of the newest QA run that judged this night and band (None: no QA run recorded)."""
    from dataclasses import fields

    from obsdb.pipeline.qa_rules import QaThresholds

    known = {f.name for f in fields(QaThresholds)}
    for event in details.get("qa_events", []):
        if night not in event["nights"]:
            continue
        if event["band"] and (band or "").lower() != str(event["band"]).lower():
            continue
        try:
            return QaThresholds.from_mapping({k: v for k, v in event["thresholds"].items() if k in known})
        except ValueError:
            return QaThresholds()
    return None


def threshold_lines(records: list[dict], details: dict) -> list[dict]:
    """The QA rules' limits for the frames of one band, per judged group (night, instrument, target).

    Parameters
    ----------
    records : list of dict
        The band's frames.
    details : dict
        Holds ``qa_events`` (:meth:`obsdb.Catalog.qa_events`, newest first).

    Returns
    -------
    list of dict
        Each line: ``panel`` (metric key), ``value`` (in the panel's unit; the FWHM in px), ``rule`` (its name
        in :mod:`obsdb.pipeline.qa_rules`), ``text`` (how it was set) and ``ids`` (the frames it applies to).

    Notes
    -----
    The yardsticks (clear background, best FWHM) are recomputed with the rules' own function from the
    metrics the catalog holds, so the lines are where the rules put them.
    """
    from obsdb.pipeline.qa_rules import FrameMetricsInput, band_statistics

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record["metrics"]:
            groups[(record["night"], record["instrument"], record["object"])].append(record)
    lines = []
    for (night, _, _), members in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        limits = _qa_thresholds(details, night, members[0]["band"])
        if limits is None:
            continue
        ids = [r["id"] for r in members]
        inputs = [FrameMetricsInput(key=r["id"], band=None, n_stars=r["metrics"].get("n_stars"),
                                    fwhm=r["metrics"].get("fwhm"), elongation=r["metrics"].get("elongation"),
                                    background=r["metrics"].get("background")) for r in members]
        stats = band_statistics(inputs, limits)[None]
        if stats.clear_background == stats.clear_background and stats.clear_background > 0:
            value = limits.cloud_background_ratio * stats.clear_background
            lines.append({"panel": "background", "value": value, "rule": "cloud-background", "ids": ids,
                          "text": f"{limits.cloud_background_ratio:g} x {stats.clear_background:,.0f} clear"})
        if limits.cloud_background_max is not None:
            lines.append({"panel": "background", "value": float(limits.cloud_background_max), "ids": ids,
                          "rule": "cloud-background-max", "text": "absolute limit"})
        if stats.best_fwhm == stats.best_fwhm:
            lines.append({"panel": "fwhm", "value": limits.focus_fwhm_ratio * stats.best_fwhm, "rule": "focus-fwhm",
                          "ids": ids, "text": f"{limits.focus_fwhm_ratio:g} x {stats.best_fwhm:.2f} px best"})
        if limits.focus_fwhm_max is not None:
            lines.append({"panel": "fwhm", "value": float(limits.focus_fwhm_max), "rule": "focus-fwhm-max",
                          "ids": ids, "text": "absolute limit"})
        lines.append({"panel": "elongation", "value": float(limits.trail_elongation), "rule": "trail-elongation",
                      "ids": ids, "text": ""})
        lines.append({"panel": "transparency", "value": float(limits.cloud_transparency), "ids": ids,
                      "rule": "cloud-transparency", "text": ""})
        if stats.typical_stars == stats.typical_stars:
            lines.append({"panel": "n_stars", "value": limits.few_stars_ratio * stats.typical_stars,
                          "rule": "few-stars", "ids": ids,
                          "text": f"{limits.few_stars_ratio:g} x {stats.typical_stars:.0f} typical"})
    return lines


# -- stars worth enlarging ------------------------------------------------------------------------

def zoom_stars(stars: list[tuple], shape, fwhm: float | None) -> tuple[int, list[tuple]]:
    """Half-size of the cut-outs and up to :data:`MAX_ZOOM_STARS` stars to enlarge: the brightest clean
    ones, each a quarter of the frame away from the others where possible (PSF across the field).

    Parameters
    ----------
    stars : list of tuple
        (x, y, flux, fwhm, flags), brightest first, 0-based pixels.
    shape : (int, int) or None
        The frame's (height, width).
    fwhm : float or None
        The frame's FWHM in px (sets the cut-out size).

    Returns
    -------
    (int, list of tuple)
        The half-size in px and the chosen stars.
    """
    half = int(min(24, max(8, math.ceil(3.0 * (fwhm or 3.0)))))
    height, width = shape if shape else (None, None)
    clean = [s for s in stars if not (s[4] & BAD_STAR_FLAGS) and all(math.isfinite(v) for v in s[:3])
             and (width is None or (half <= s[0] < width - half and half <= s[1] < height - half))]
    spread = max(width or 0, height or 0) / 4.0
    picks: list[tuple] = []
    for minimum in (spread, 2.0 * half):
        for star in clean:
            if len(picks) == MAX_ZOOM_STARS:
                break
            if star not in picks and all(math.hypot(star[0] - p[0], star[1] - p[1]) >= minimum for p in picks):
                picks.append(star)
    return half, picks
