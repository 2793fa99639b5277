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


def header_to_json(header, problems: list[str] | None = None) -> dict:
    """A JSON-safe dict of a FITS header.

    Repeated keywords (COMMENT, HISTORY, ...) become lists; NaN and undefined
    values become None; the order of first appearance is kept.  A card whose
    value cannot be parsed is kept as its text; control characters (TAB, NUL,
    ESC, ..., which FITS forbids and a PostgreSQL text column refuses) are shown
    as ``?``, as astropy shows non-ASCII bytes.

    Parameters
    ----------
    header : astropy.io.fits.Header
    problems : list of str, optional
        Receives one sentence naming the cards kept as text, and one naming the cards
        whose control characters were replaced.
    """
    result: dict = {}
    unparsable: list[str] = []
    cleaned: list[str] = []
    for card in header.cards:
        try:
            key = card.keyword
        except Exception:  # noqa: BLE001 - a card without a readable keyword holds nothing to keep
            continue
        if not key:
            continue
        clean_key = _printable_text(key)
        if clean_key != key:
            cleaned.append(clean_key)
            key = clean_key
        try:
            value = _json_value(card.value)
        except Exception:  # noqa: BLE001 - a malformed card must not lose the rest of the header
            # The card's own 80 characters: astropy's image property would try to fix it, and fail again.
            raw = getattr(card, "_image", None)
            value = _raw_value(raw[10:]) if isinstance(raw, str) and len(raw) > 10 else None
            unparsable.append(key)
        if isinstance(value, str):
            clean = _printable_text(value)
            if clean != value:
                cleaned.append(key)
                value = clean
        if key in ("COMMENT", "HISTORY"):
            result.setdefault(key, []).append(value)
        elif key in result:
            existing = result[key]
            result[key] = existing + [value] if isinstance(existing, list) else [existing, value]
        else:
            result[key] = value
    if problems is not None:
        if unparsable:
            problems.append(f"header: {_cards(unparsable)} cannot be parsed: kept as text")
        if cleaned:
            verb = "holds" if len(set(cleaned)) == 1 else "hold"
            problems.append(f"header: {_cards(cleaned)} {verb} control characters: shown as '?'")
    return result


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _raw_value(text: str) -> str | None:
    """The value part of a card's text that astropy could not parse: a quoted string's content
    (``''`` is a quote), else what precedes a ``/`` comment."""
    text = text.strip()
    if text.startswith("'"):
        match = re.match(r"'((?:[^']|'')*)'?", text)
        return match.group(1).replace("''", "'").rstrip()
    value = text.split("/", 1)[0].strip()
    return value or None


def _printable_text(text: str) -> str:
    return _CONTROL.sub("?", text)


def _cards(names: list[str], limit: int = 5) -> str:
    """``card FILTER`` or ``cards FILTER, OBJECT``."""
    unique = list(dict.fromkeys(names))
    shown = ", ".join(unique[:limit]) + (f" and {len(unique) - limit} more" if len(unique) > limit else "")
    return f"card {shown}" if len(unique) == 1 else f"cards {shown}"


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


REPEATABLE_KEYWORDS = ("COMMENT", "HISTORY")
"""Keywords that a header holds many times by design; any other repeated keyword is a duplicate."""

COLUMN_KEYWORDS = ("FILTER", "FILTER1", "FILTNAM", "IMAGETYP", "IMAGETYPE", "OBSTYPE", "FRAMETYP", "PICTTYPE",
                   "OBJECT", "EXPTIME", "EXPOSURE", "EXP_TIME", "DATE-OBS", "DATE_OBS", "TIME-OBS", "UT",
                   "UTSTART", "UT-START", "AIRMASS", "SECZ")
"""Keywords the typed columns come from (:func:`frame_columns`): a duplicate of one is warned about."""

EARLIEST_DATE_OBS = datetime(1900, 1, 1)
"""Dates before this are taken for a clock that was never set, not for an observation."""

FUTURE_DATE_SLACK = timedelta(days=1)
"""How far past the present a DATE-OBS may lie (clocks drift; time zones differ) before it is implausible.
A date of 9999-12-31 once broke the report's date axis."""


def _get(header: dict, key: str):
    """The value of ``key``: the first card's when the keyword is duplicated (the JSON holds a list)."""
    value = header.get(key)
    if isinstance(value, list) and key not in REPEATABLE_KEYWORDS:
        return value[0] if value else None
    return value


def normalise_image_type(header: dict, mapping: dict | None = None,
                         picttypes: dict | None = None) -> str:
    """Normalised image type (light, bias, dark, flat or unknown).

    IMAGETYP (or IMAGETYPE/OBSTYPE) is matched against ``mapping``; SBIG's
    numeric PICTTYPE against ``picttypes``.  Anything else is ``unknown``.
    """
    mapping = mapping or DEFAULT_IMAGE_TYPES
    picttypes = picttypes or DEFAULT_PICTTYPES
    for key in ("IMAGETYP", "IMAGETYPE", "OBSTYPE", "FRAMETYP"):
        raw = _get(header, key)
        if isinstance(raw, str) and raw.strip():
            text = raw.strip().lower()
            for kind, names in mapping.items():
                if text in names:
                    return kind
            return "unknown"
    raw = _get(header, "PICTTYPE")
    if raw is not None:
        try:
            return picttypes.get(int(raw), "unknown")
        except (TypeError, ValueError):
            return "unknown"
    return "unknown"


_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2})$")


def parse_date_obs(header: dict, problems: list[str] | None = None, *,
                   now: datetime | None = None) -> datetime | None:
    """Start of exposure in UTC (naive datetime), or None when absent, unparseable or implausible.

    Understands ISO dates with or without time (then TIME-OBS/UT/UTSTART is
    added), and the pre-2000 FITS form ``DD/MM/YY`` (years 19YY).

    Parameters
    ----------
    header : dict
        JSON-normalised header (:func:`header_to_json`).
    problems : list of str, optional
        Receives one sentence for a date that is given but not used: unparseable, with a time of
        day that is no time (``99:99:99``), before :data:`EARLIEST_DATE_OBS`, or more than
        :data:`FUTURE_DATE_SLACK` after ``now``.
    now : datetime, optional
        The present, UTC (default: the clock's).

    Returns
    -------
    datetime or None
    """
    problems = [] if problems is None else problems
    key = "DATE-OBS" if _get(header, "DATE-OBS") is not None else "DATE_OBS"
    raw = _get(header, key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        problems.append(f"{key} {raw!r} is not a date: date recorded as unknown")
        return None
    text = raw.strip().rstrip("Z")
    match = _DMY.match(text)
    try:
        if match:
            day, month, year = (int(g) for g in match.groups())
            parsed = _add_time(datetime(1900 + year, month, day), header)
        else:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is not None:
                parsed = (parsed - parsed.utcoffset()).replace(tzinfo=None)
            if "T" not in text and " " not in text:
                parsed = _add_time(parsed, header)
    except _BadTime as exc:
        problems.append(f"{exc}: date recorded as unknown")
        return None
    except (ValueError, OverflowError):
        problems.append(f"{key} {raw!r} is not a date: date recorded as unknown")
        return None
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if parsed < EARLIEST_DATE_OBS:
        problems.append(f"{key} {raw!r} is before {EARLIEST_DATE_OBS.year}, implausible: date recorded as unknown")
        return None
    if parsed > now + FUTURE_DATE_SLACK:
        problems.append(f"{key} {raw!r} is in the future, implausible: date recorded as unknown")
        return None
    return parsed


class _BadTime(ValueError):
    """A time-of-day keyword that is no time; the message names it."""


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?$")


def _add_time(date: datetime, header: dict) -> datetime:
    """``date`` plus the first time-of-day keyword; :class:`_BadTime` when that keyword is no time.

    ``99:99:99`` used to be added as 99 h 99 min, moving the date by four days.
    """
    for key in ("TIME-OBS", "UT", "UTSTART", "UT-START"):
        value = _get(header, key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        match = _TIME.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise _BadTime(f"{key} {value!r} is not a time of day")
        hours, minutes = int(match.group(1)), int(match.group(2))
        seconds = float(match.group(3) or 0.0)
        if hours > 23 or minutes > 59 or seconds >= 61.0:  # 60.x: a leap second
            raise _BadTime(f"{key} {value!r} is not a time of day")
        return date + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return date


def _number(header: dict, *keys: str) -> float | None:
    for key in keys:
        value = _get(header, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return number
    return None


def _text(header: dict, *keys: str) -> str | None:
    for key in keys:
        value = _get(header, key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def frame_columns(header: dict, *, image_types: dict | None = None,
                  picttypes: dict | None = None, problems: list[str] | None = None) -> dict:
    """Typed catalog columns derived from a header (already JSON-normalised).

    A keyword given by several cards (two FILTER cards) counts by its first card.

    Parameters
    ----------
    header : dict
        JSON-normalised header (:func:`header_to_json`).
    image_types, picttypes : dict, optional
        See :func:`normalise_image_type`.
    problems : list of str, optional
        Receives one sentence per doubt: a :data:`COLUMN_KEYWORDS` keyword given different values, a date
        not used (:func:`parse_date_obs`).

    Returns
    -------
    dict
        band, image_type, object, exptime, date_obs, airmass.
    """
    problems = [] if problems is None else problems
    for key in COLUMN_KEYWORDS:
        value = header.get(key)
        # Identical duplicates (two equal AIRMASS cards in ESO's EMMI frames) change nothing.
        if isinstance(value, list) and len({repr(v) for v in value}) > 1:
            shown = ", ".join(repr(v) for v in value[:5]) + (", ..." if len(value) > 5 else "")
            problems.append(f"{key} is given {len(value)} times ({shown}): the first is used")
    return {
        "band": _text(header, "FILTER", "FILTER1", "FILTNAM"),
        "image_type": normalise_image_type(header, image_types, picttypes),
        "object": _text(header, "OBJECT"),
        "exptime": _number(header, "EXPTIME", "EXPOSURE", "EXP_TIME"),
        "date_obs": parse_date_obs(header, problems),
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
        number = int(text)
    except ValueError:
        return None
    # The catalog's integer columns are 64-bit: a 30-digit run in a name numbers nothing.
    return number if abs(number) <= _LARGEST_INTEGER else None


_LARGEST_INTEGER = 2 ** 63 - 1


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
        degrees = _degrees(_get(header, key))
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
    # A binning beyond any detector (a 23-digit XBINNING) is no binning, and would not fit the catalog.
    binning_x = int(bx) if bx and 0 < bx < 2 ** 31 else None
    binning_y = int(by) if by and 0 < by < 2 ** 31 else binning_x
    pixel = _number(header, "XPIXSZ", "PIXSIZE1", "PIXSIZE")
    key = "|".join([telescope or "", camera or "", f"{width or 0}x{height or 0}",
                    f"{binning_x or 1}x{binning_y or 1}"])
    return {"key": key, "telescope": telescope, "camera": camera, "width": width, "height": height,
            "binning_x": binning_x, "binning_y": binning_y, "pixel_size": pixel}
