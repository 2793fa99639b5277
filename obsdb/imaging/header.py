"""Header normalisation: typed columns and JSON from a FITS header.

Pure functions.  The raw header is always kept (as JSON); the typed values
are derived from it with documented, configurable rules.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

DEFAULT_IMAGE_TYPES = {
    "light": ("light", "object", "science", "light frame"),
    "bias": ("bias", "zero", "bias frame"),
    "dark": ("dark", "dark frame"),
    "flat": ("flat", "flat field", "flat frame", "skyflat", "domeflat"),
}
"""IMAGETYP values (lower case) for each normalised type."""

DEFAULT_PICTTYPES = {1: "light", 2: "bias", 3: "dark", 4: "flat"}
"""SBIG-style numeric PICTTYPE codes (the seed notebook's science frames are PICTTYPE=1)."""


def header_to_json(header) -> dict:
    """A JSON-safe dict of a FITS header.

    Repeated keywords (COMMENT, HISTORY, ...) become lists; NaN and undefined
    values become None; the order of first appearance is kept.
    """
    result: dict = {}
    for card in header.cards:
        key = card.keyword
        if not key:
            continue
        try:
            value = _json_value(card.value)
        except Exception:  # noqa: BLE001 - a malformed card must not lose the rest of the header
            value = card.image[10:].strip() if len(card.image) > 10 else None
        if key in ("COMMENT", "HISTORY"):
            result.setdefault(key, []).append(value)
        elif key in result:
            existing = result[key]
            result[key] = existing + [value] if isinstance(existing, list) else [existing, value]
        else:
            result[key] = value
    return result


def _json_value(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, complex):
        return str(value)
    text = str(value)
    return None if text == "" else text


def normalise_image_type(header: dict, mapping: dict | None = None,
                         picttypes: dict | None = None) -> str:
    """Normalised image type (light, bias, dark, flat or unknown).

    IMAGETYP (or IMAGETYPE/OBSTYPE) is matched against ``mapping``; SBIG's
    numeric PICTTYPE against ``picttypes``.  Anything else is ``unknown``.
    """
    mapping = mapping or DEFAULT_IMAGE_TYPES
    picttypes = picttypes or DEFAULT_PICTTYPES
    for key in ("IMAGETYP", "IMAGETYPE", "OBSTYPE", "FRAMETYP"):
        raw = header.get(key)
        if isinstance(raw, str) and raw.strip():
            text = raw.strip().lower()
            for kind, names in mapping.items():
                if text in names:
                    return kind
            return "unknown"
    raw = header.get("PICTTYPE")
    if raw is not None:
        try:
            return picttypes.get(int(raw), "unknown")
        except (TypeError, ValueError):
            return "unknown"
    return "unknown"


_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")


def parse_date_obs(header: dict) -> datetime | None:
    """Start of exposure in UTC (naive datetime), or None when absent/unparseable.

    Understands ISO dates with or without time (then TIME-OBS/UT/UTSTART is
    added), and the pre-2000 FITS form ``DD/MM/YY`` (years 19YY).
    """
    raw = header.get("DATE-OBS") or header.get("DATE_OBS")
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip().rstrip("Z")
    match = _DMY.match(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
        try:
            date = datetime(1900 + year, month, day)
        except ValueError:
            return None
        return _add_time(date, header)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = (parsed - parsed.utcoffset()).replace(tzinfo=None)
    if "T" not in text and " " not in text:
        return _add_time(parsed, header)
    return parsed


def _add_time(date: datetime, header: dict) -> datetime:
    for key in ("TIME-OBS", "UT", "UTSTART", "UT-START"):
        value = header.get(key)
        if isinstance(value, str) and re.match(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", value.strip()):
            parts = value.strip().split(":")
            seconds = float(parts[2]) if len(parts) > 2 else 0.0
            return date + timedelta(hours=int(parts[0]), minutes=int(parts[1]), seconds=seconds)
    return date


def _number(header: dict, *keys: str) -> float | None:
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def _text(header: dict, *keys: str) -> str | None:
    for key in keys:
        value = header.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def frame_columns(header: dict, *, image_types: dict | None = None,
                  picttypes: dict | None = None) -> dict:
    """Typed catalog columns derived from a header (already JSON-normalised).

    Returns
    -------
    dict
        band, image_type, object, exptime, date_obs, airmass.
    """
    return {
        "band": _text(header, "FILTER", "FILTER1", "FILTNAM"),
        "image_type": normalise_image_type(header, image_types, picttypes),
        "object": _text(header, "OBJECT"),
        "exptime": _number(header, "EXPTIME", "EXPOSURE", "EXP_TIME"),
        "date_obs": parse_date_obs(header),
        "airmass": _number(header, "AIRMASS", "SECZ"),
    }


DEFAULT_NUMBER_PATTERN = r"(\d{3,})(?!.*\d{3})"
"""The last run of 3 or more digits in the file name."""


def suggest_number_pattern(file_names: list[str]) -> str | None:
    r"""A ``number_pattern`` that gives each of these files its own number, or None.

    For files that share a number under the default rule (Seestar names such
    as ``m94_set1_212046_bin2_crop512`` all end in ``512``): each run of 3+
    digits, from the last, is tried as the number, anchored on the token
    before it (``set1_(\d+)``); the first pattern that numbers every file,
    each differently, is returned.

    Parameters
    ----------
    file_names : list of str
        Base names of the files (at least two).

    Returns
    -------
    str or None
    """
    if len(file_names) < 2:
        return None
    first = _stem(file_names[0])
    runs = list(re.finditer(r"\d{3,}", first))
    for run in reversed(runs):
        before = first[:run.start()]
        # The token before the number anchors it (set1_), else the separator alone (_).
        token = re.search(r"[A-Za-z0-9]*[^A-Za-z0-9]*$", before).group(0)
        separator = re.search(r"[^A-Za-z0-9]*$", before).group(0)
        for anchor in dict.fromkeys(a for a in (token, separator) if a):
            pattern = re.escape(anchor) + r"(\d+)"
            numbers = [frame_number(name, pattern) for name in file_names]
            if None not in numbers and len(set(numbers)) == len(numbers):
                return pattern
    return None


def _stem(file_name: str) -> str:
    stem = file_name
    for suffix in (".gz", ".fits", ".fit", ".fts"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def frame_number(file_name: str, pattern: str = DEFAULT_NUMBER_PATTERN) -> int | None:
    """Frame number from a file name (extensions stripped), or None.

    ``pattern`` is a regular expression whose first group (or whole match)
    is the number.
    """
    match = re.search(pattern, _stem(file_name))
    if not match:
        return None
    text = match.group(1) if match.groups() else match.group(0)
    try:
        return int(text)
    except ValueError:
        return None


_SEXAGESIMAL = re.compile(r"^\s*([+-]?)\s*(\d{1,3})[\s:d°]+(\d{1,2})(?:[\s:m']+(\d{1,2}(?:\.\d*)?))?\s*[s\"]?\s*$")


def _degrees(value) -> float | None:
    """Degrees from a number or a sexagesimal string ('-70 44 04', '+011:23:45.6')."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        number = float(value)
        return number if math.isfinite(number) else None
    except ValueError:
        pass
    match = _SEXAGESIMAL.match(value)
    if not match:
        return None
    sign, d, m, s = match.groups()
    degrees = int(d) + int(m) / 60.0 + float(s or 0.0) / 3600.0
    return -degrees if sign == "-" else degrees


def site_longitude(header: dict) -> float | None:
    """The site's longitude in degrees east, from SITELONG, LONG-OBS, OBSGEO-L or OBSGEO-X/Y.

    SITELONG and LONG-OBS are read east-positive, as the FITS standard's
    OBSGEO-L is.  Returns None when no keyword gives a longitude within +-360.
    """
    for key in ("SITELONG", "LONG-OBS", "OBSGEO-L", "LONGITUD"):
        degrees = _degrees(header.get(key))
        if degrees is not None and abs(degrees) <= 360.0:
            return ((degrees + 180.0) % 360.0) - 180.0
    x, y = _number(header, "OBSGEO-X"), _number(header, "OBSGEO-Y")
    if x is not None and y is not None and (x or y):
        return math.degrees(math.atan2(y, x))
    return None


def site_name(header: dict) -> str | None:
    """The site's name from SITENAME, OBSERVAT or SITE."""
    return _text(header, "SITENAME", "OBSERVAT", "SITE")


NIGHT_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
"""Names of nights derived from a date."""


def night_name(date_obs: datetime | None, longitude: float | None = None) -> str | None:
    """The night a frame belongs to: the local date at the start of the night.

    A night runs from local noon to the next local noon, so a frame taken
    after midnight belongs to the night that began the evening before.  With
    a site longitude, local mean solar time (UTC + longitude / 15 h) is used;
    without one, the UTC date of ``date_obs - 12 h``.

    Parameters
    ----------
    date_obs : datetime or None
        Start of exposure, UTC (naive or aware).
    longitude : float, optional
        Degrees east.

    Returns
    -------
    str or None
        ``YYYY-MM-DD``, or None without a date.
    """
    if date_obs is None:
        return None
    if date_obs.tzinfo is not None:
        date_obs = date_obs.astimezone(timezone.utc).replace(tzinfo=None)
    local = date_obs + timedelta(hours=(longitude or 0.0) / 15.0)
    return (local - timedelta(hours=12)).date().isoformat()


def instrument_identity(header: dict, width: int | None, height: int | None) -> dict:
    """Telescope, camera, read-out shape, binning and pixel size of a frame, and their key.

    Two frames are of the same instrument when all of these agree; the
    ``key`` is their canonical text (``telescope|camera|WxH|XxY``).
    """
    telescope = _text(header, "TELESCOP")
    camera = _text(header, "INSTRUME", "CAMERA", "DETECTOR")
    bx, by = _number(header, "XBINNING", "BINX", "CCDXBIN"), _number(header, "YBINNING", "BINY", "CCDYBIN")
    binning_x = int(bx) if bx else None
    binning_y = int(by) if by else binning_x
    pixel = _number(header, "XPIXSZ", "PIXSIZE1", "PIXSIZE")
    key = "|".join([telescope or "", camera or "", f"{width or 0}x{height or 0}",
                    f"{binning_x or 1}x{binning_y or 1}"])
    return {"key": key, "telescope": telescope, "camera": camera, "width": width, "height": height,
            "binning_x": binning_x, "binning_y": binning_y, "pixel_size": pixel}
