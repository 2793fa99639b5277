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

IMAGE_TYPES = ("light", "bias", "dark", "flat", "unknown")
"""The normalised image types, defined once: what :func:`normalise_image_type` gives with the default
mapping, what ``--type`` offers and the catalog's ``frame.image_type`` holds (an obsdb.toml may map
IMAGETYP values to further types of its own; ``--type`` accepts those once stored)."""

CALIBRATION_IMAGE_TYPES = ("bias", "dark", "flat")
"""The calibration frames, in the order a master is made (a dark is bias-subtracted, a flat both);
also the kinds of a master."""

LIGHT_IMAGE_TYPES = ("light", "unknown")
"""Image types that hold stars to judge and align ("light or unknown": a frame without IMAGETYP is
taken for a light, as the seed notebook's were)."""

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

COLUMN_KEYWORDS = ("FILTER", "FILTNAME", "FILTER1", "FILTER2", "FILTNAM", "INSFLNAM", "IMAGETYP", "IMAGETYPE",
                   "OBSTYPE", "FRAMETYP", "PICTTYPE", "OBJECT", "EXPTIME", "EXPOSURE", "EXP_TIME", "DATE-OBS",
                   "DATE_OBS", "TIME-OBS", "UTCSTART", "UTC-OBS", "UT", "UTSTART", "UT-START", "MJD-OBS", "AIRMASS",
                   "SECZ")
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

TIME_OF_DAY_KEYWORDS = ("TIME-OBS", "UTCSTART", "UTC-OBS", "UT", "UTSTART", "UT-START")
"""Cards holding the time of day (UTC) when the date card holds a date only, tried in this order.
LOIS (Lowell) writes ``DATE-OBS = '2019-03-26'`` with the time in ``UTCSTART`` and ``UTC-OBS``."""

MJD_KEYWORDS = ("MJD-OBS", "MJD", "JD-OBS", "JD")
"""Cards giving the start of exposure as a modified (MJD) or plain Julian date (JD), tried in this order
when no DATE-OBS is given (a JD is told from an MJD by its size)."""

_MJD_ZERO = datetime(1858, 11, 17)
_JD_MINUS_MJD = 2400000.5


def parse_date_obs(header: dict, problems: list[str] | None = None, *,
                   now: datetime | None = None) -> datetime | None:
    """Start of exposure in UTC (naive datetime), or None when absent, unparseable or implausible.

    See :func:`date_obs_and_source`, which also names the card(s) the time came from.
    """
    return date_obs_and_source(header, problems, now=now)[0]


def date_obs_and_source(header: dict, problems: list[str] | None = None, *,
                        now: datetime | None = None) -> tuple[datetime | None, str | None]:
    """Start of exposure in UTC (naive datetime) and the card(s) that gave it.

    In order:

    1. ``DATE-OBS`` (or ``DATE_OBS``): an ISO date with its time, or a date alone (ISO or the pre-2000
       ``DD/MM/YY``, years 19YY) completed by the first time-of-day card of
       :data:`TIME_OF_DAY_KEYWORDS` (source ``DATE-OBS+UTCSTART``), else by ``MJD-OBS`` when that falls
       on the same date (``DATE-OBS+MJD-OBS``), else midnight (``DATE-OBS (date only)``).
    2. Without DATE-OBS, the Julian dates of :data:`MJD_KEYWORDS` (``MJD-OBS``).
    3. Last, ``DATE``: the FITS standard's date the *file was written*, often not the exposure's; a
       problem says so when it is used.

    Parameters
    ----------
    header : dict
        JSON-normalised header (:func:`header_to_json`).
    problems : list of str, optional
        Receives one sentence for a date that is given but not used: unparseable, with a time of
        day that is no time (``99:99:99``), before :data:`EARLIEST_DATE_OBS`, or more than
        :data:`FUTURE_DATE_SLACK` after ``now``; and one when the time is DATE's.
    now : datetime, optional
        The present, UTC (default: the clock's).

    Returns
    -------
    (datetime or None, str or None)
    """
    problems = [] if problems is None else problems
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    key = "DATE-OBS" if _get(header, "DATE-OBS") is not None else "DATE_OBS"
    raw = _get(header, key)
    if raw is not None and not (isinstance(raw, str) and not raw.strip()):
        # A DATE-OBS that is given but wrong is reported, not replaced by a guess from another card.
        return _date_card(header, key, raw, problems, now, use_mjd=True)
    for mjd_key in MJD_KEYWORDS:
        value = _number(header, mjd_key)
        if value is None or value <= 0:
            continue
        mjd = value - _JD_MINUS_MJD if value > _JD_MINUS_MJD / 2 else value
        try:
            parsed = _MJD_ZERO + timedelta(days=mjd)
        except OverflowError:
            continue
        if _plausible(parsed, mjd_key, value, problems, now):
            return parsed, mjd_key
        return None, None
    raw = _get(header, "DATE")
    if raw is not None and not (isinstance(raw, str) and not raw.strip()):
        parsed, source = _date_card(header, "DATE", raw, problems, now, use_mjd=False)
        if parsed is not None:
            problems.append(f"no DATE-OBS: the time is taken from {source}, which usually says when the file "
                            "was written, not when the exposure began")
        return parsed, source
    return None, None


def _date_card(header: dict, key: str, raw, problems: list[str], now: datetime, *,
               use_mjd: bool) -> tuple[datetime | None, str | None]:
    """The date (and time) of one date card, with its source; (None, None) with a problem when unusable."""
    if not isinstance(raw, str):
        problems.append(f"{key} {raw!r} is not a date: date recorded as unknown")
        return None, None
    text = raw.strip().rstrip("Z")
    match = _DMY.match(text)
    source = key
    try:
        if match:
            day, month, year = (int(g) for g in match.groups())
            date_only = datetime(1900 + year, month, day)
        else:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is not None:
                parsed = (parsed - parsed.utcoffset()).replace(tzinfo=None)
            date_only = parsed if "T" not in text and " " not in text else None
        if date_only is not None:
            parsed, time_key = _add_time(date_only, header)
            if time_key is None and use_mjd:
                parsed, time_key = _time_from_mjd(date_only, header)
            source = f"{key}+{time_key}" if time_key else f"{key} (date only)"
    except _BadTime as exc:
        problems.append(f"{exc}: date recorded as unknown")
        return None, None
    except (ValueError, OverflowError):
        problems.append(f"{key} {raw!r} is not a date: date recorded as unknown")
        return None, None
    if not _plausible(parsed, key, raw, problems, now):
        return None, None
    return parsed, source


def _plausible(parsed: datetime, key: str, raw, problems: list[str], now: datetime) -> bool:
    if parsed < EARLIEST_DATE_OBS:
        problems.append(f"{key} {raw!r} is before {EARLIEST_DATE_OBS.year}, implausible: date recorded as unknown")
        return False
    if parsed > now + FUTURE_DATE_SLACK:
        problems.append(f"{key} {raw!r} is in the future, implausible: date recorded as unknown")
        return False
    return True


def _time_from_mjd(date: datetime, header: dict) -> tuple[datetime, str | None]:
    """``date`` at the time of day of MJD-OBS when MJD-OBS falls on that date and holds a time
    (ESO's EMMI frames: ``DATE-OBS = '26/10/92'``, ``MJD-OBS = 48921.62787``)."""
    mjd = _number(header, "MJD-OBS")
    if mjd is None or mjd == int(mjd):
        return date, None
    try:
        moment = _MJD_ZERO + timedelta(days=mjd)
    except OverflowError:
        return date, None
    return (moment, "MJD-OBS") if moment.date() == date.date() else (date, None)


class _BadTime(ValueError):
    """A time-of-day keyword that is no time; the message names it."""


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{1,2}(?:\.\d*)?))?$")


def _add_time(date: datetime, header: dict) -> tuple[datetime, str | None]:
    """``date`` plus the first time-of-day card of :data:`TIME_OF_DAY_KEYWORDS`, and that card's name;
    :class:`_BadTime` when that card is no time.

    ``99:99:99`` used to be added as 99 h 99 min, moving the date by four days.  LOIS writes
    one-digit seconds (``'03:49:7.89'``); they are read as seconds.
    """
    for key in TIME_OF_DAY_KEYWORDS:
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
        return date + timedelta(hours=hours, minutes=minutes, seconds=seconds), key
    return date, None


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


def _number_source(header: dict, *keys: str) -> tuple[float | None, str | None]:
    """The first of ``keys`` holding a finite number (a number, or text such as ``'300.0'``), and its key."""
    for key in keys:
        value = _number(header, key)
        if value is not None:
            return value, key
    return None, None


def _text_source(header: dict, *keys: str) -> tuple[str | None, str | None]:
    for key in keys:
        value = _text(header, key)
        if value is not None:
            return value, key
    return None, None


FILTER_KEYWORDS = ("FILTER", "FILTNAME", "FILTNAM", "FILTER1", "FILTER2", "FILTER3", "INSFLNAM", "FILTERID",
                   "FILT-NAM", "ESO INS FILT1 NAME")
"""Cards naming the filter, tried in this order.  ``FILTER1``/``FILTER2``/``FILTER3`` are the wheels of one
light path: they are combined, a wheel in :data:`EMPTY_FILTER_NAMES` left out (``'B'`` and ``'open'`` is
``B``; ``'B'`` and ``'GG385'`` is ``B+GG385``)."""

FILTER_WHEELS = ("FILTER1", "FILTER2", "FILTER3")
"""Filter wheels of one light path, combined into one band."""

EMPTY_FILTER_NAMES = frozenset({"", "open", "clear", "empty", "none", "no filter", "free", "air", "blank"})
"""Wheel positions that hold no filter (lower case); a wheel so named adds nothing to the band."""


def filter_and_source(header: dict) -> tuple[str | None, str | None]:
    """The band from :data:`FILTER_KEYWORDS`, and the card(s) that gave it (``FILTER1+FILTER2``)."""
    for key in FILTER_KEYWORDS:
        if key in FILTER_WHEELS:
            wheels = [(k, _text(header, k)) for k in FILTER_WHEELS]
            wheels = [(k, v) for k, v in wheels if v is not None]
            if not wheels:
                continue
            used = [(k, v) for k, v in wheels if v.lower() not in EMPTY_FILTER_NAMES]
            if not used:  # every wheel open: the band is the first wheel's word for it
                return wheels[0][1], wheels[0][0]
            return "+".join(v for _, v in used), "+".join(k for k, _ in used)
        value = _text(header, key)
        if value is not None:
            return value, key
    return None, None


def binning_and_source(header: dict) -> tuple[int | None, int | None, str | None]:
    """On-chip binning (x, y) and the card(s) that gave it.

    From ``XBINNING``/``YBINNING``, ``BINX``/``BINY``, ``CCDXBIN``/``CCDYBIN``, ``CCDSUM`` (NOAO and LOIS:
    ``'3 3'``) or ``BINNING`` (``'2x2'`` or ``2``).  A binning beyond any detector (a 23-digit XBINNING)
    is no binning, and would not fit the catalog.
    """
    def valid(value) -> int | None:
        return int(value) if value is not None and value == int(value) and 0 < value < 2 ** 31 else None

    for x_key, y_key in (("XBINNING", "YBINNING"), ("BINX", "BINY"), ("CCDXBIN", "CCDYBIN")):
        bx = valid(_number(header, x_key))
        if bx is not None:
            by = valid(_number(header, y_key))
            return bx, by or bx, x_key if by is None else f"{x_key}/{y_key}"
    for key in ("CCDSUM", "BINNING"):
        value = _get(header, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            b = valid(float(value))
            if b is not None:
                return b, b, key
        elif isinstance(value, str):
            parts = re.split(r"[\sx,*]+", value.strip().lower())
            try:
                numbers = [valid(float(p)) for p in parts if p]
            except ValueError:
                continue
            if numbers and None not in numbers and len(numbers) <= 2:
                return numbers[0], numbers[-1], key
    return None, None, None


def frame_columns(header: dict, *, image_types: dict | None = None,
                  picttypes: dict | None = None, problems: list[str] | None = None) -> dict:
    """Typed catalog columns derived from a header (already JSON-normalised), and the cards behind them.

    A keyword given by several cards (two FILTER cards) counts by its first card.  Numbers given as
    text (``EXPTIME = '300.0'``) are read as numbers.

    Parameters
    ----------
    header : dict
        JSON-normalised header (:func:`header_to_json`).
    image_types, picttypes : dict, optional
        See :func:`normalise_image_type`.
    problems : list of str, optional
        Receives one sentence per doubt: a :data:`COLUMN_KEYWORDS` keyword given different values, a date
        not used (:func:`date_obs_and_source`).

    Returns
    -------
    dict
        band, image_type, object, exptime, date_obs, airmass, and ``keywords``: for each of them with a
        value, the card(s) it came from (``{"date_obs": "DATE-OBS+UTCSTART", "band": "FILTNAME"}``).
    """
    problems = [] if problems is None else problems
    for key in COLUMN_KEYWORDS:
        value = header.get(key)
        # Identical duplicates (two equal AIRMASS cards in ESO's EMMI frames) change nothing.
        if isinstance(value, list) and len({repr(v) for v in value}) > 1:
            shown = ", ".join(repr(v) for v in value[:5]) + (", ..." if len(value) > 5 else "")
            problems.append(f"{key} is given {len(value)} times ({shown}): the first is used")
    band, band_key = filter_and_source(header)
    image_type, type_key = image_type_and_source(header, image_types, picttypes)
    target, object_key = _text_source(header, "OBJECT", "OBJNAME")
    exptime, exptime_key = _number_source(header, "EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME")
    date_obs, date_key = date_obs_and_source(header, problems)
    airmass, airmass_key = _number_source(header, "AIRMASS", "SECZ")
    sources = {"band": band_key, "image_type": type_key, "object": object_key, "exptime": exptime_key,
               "date_obs": date_key, "airmass": airmass_key}
    return {"band": band, "image_type": image_type, "object": target, "exptime": exptime,
            "date_obs": date_obs, "airmass": airmass,
            "keywords": {column: key for column, key in sources.items() if key}}


def image_type_and_source(header: dict, mapping: dict | None = None,
                          picttypes: dict | None = None) -> tuple[str, str | None]:
    """:func:`normalise_image_type` and the card it came from (None: no card, ``unknown``)."""
    for key in ("IMAGETYP", "IMAGETYPE", "OBSTYPE", "FRAMETYP"):
        raw = _get(header, key)
        if isinstance(raw, str) and raw.strip():
            return normalise_image_type(header, mapping, picttypes), key
    if _get(header, "PICTTYPE") is not None:
        return normalise_image_type(header, mapping, picttypes), "PICTTYPE"
    return normalise_image_type(header, mapping, picttypes), None


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


SITE_KEYWORD_PAIRS = (("SITELAT", "SITELONG"), ("LAT-OBS", "LONG-OBS"), ("LATITUDE", "LONGITUD"),
                      ("OBSGEO-B", "OBSGEO-L"))
"""Cards giving the site's latitude and longitude (degrees, east-positive; a number or sexagesimal text
such as ``'+34:44:37'`` or ``'-96 27 12'``), tried as pairs in this order; then ``OBSGEO-X/Y/Z``
(geocentric metres, converted by astropy's EarthLocation).  A latitude and a longitude are taken from
the same pair when one has both: MaxIm DL headers can carry two sites that disagree."""

SITE_ELEVATION_KEYWORDS = ("SITEELEV", "ALT-OBS", "OBSGEO-H", "ELEVATIO", "ELEVATION")
"""Cards giving the site's height above sea level, metres, tried in this order; then ``ALTITUDE``
(LOIS: ``ALTITUDE = 2206. / altitude in meters``) only when it exceeds :data:`ALTITUDE_AS_HEIGHT_ABOVE`."""

ALTITUDE_AS_HEIGHT_ABOVE = 90.0
"""``ALTITUDE`` is the site's height (m) only above this: elsewhere it is often the telescope's altitude
angle, which never exceeds 90 degrees."""


def site_location(header: dict, fallback: dict | None = None) -> dict:
    """The site of a frame: latitude, longitude (degrees, east-positive), elevation (m) and name,
    with the card(s) each came from.

    Parameters
    ----------
    header : dict
        JSON-normalised header.
    fallback : dict, optional
        The ``[site]`` table of obsdb.toml (``latitude``, ``longitude``, ``elevation``, ``name``):
        used for what the header does not give, with the source ``obsdb.toml [site]``.

    Returns
    -------
    dict
        ``latitude``, ``longitude``, ``elevation``, ``site`` (each None when unknown) and ``keywords``
        (``{"latitude": "LATITUDE", "longitude": "LONGITUD", ...}``).
    """
    found: dict = {"latitude": None, "longitude": None, "elevation": None, "site": None}
    sources: dict = {}

    def take(column: str, value, source: str) -> None:
        if found[column] is None and value is not None:
            found[column], sources[column] = value, source

    pairs = [(_latitude(_get(header, lat)), _longitude(_get(header, lon)), lat, lon)
             for lat, lon in SITE_KEYWORD_PAIRS]
    for lat, lon, lat_key, lon_key in sorted(pairs, key=lambda p: (p[0] is None or p[1] is None)):
        take("latitude", lat, lat_key)
        take("longitude", lon, lon_key)
    if found["latitude"] is None or found["longitude"] is None:
        geodetic = _geocentric_site(header)
        if geodetic is not None:
            take("latitude", geodetic[0], "OBSGEO-X/Y/Z")
            take("longitude", geodetic[1], "OBSGEO-X/Y/Z")
            take("elevation", geodetic[2], "OBSGEO-X/Y/Z")
    elevation, elevation_key = _number_source(header, *SITE_ELEVATION_KEYWORDS)
    if elevation is None:
        altitude = _number(header, "ALTITUDE")
        if altitude is not None and altitude > ALTITUDE_AS_HEIGHT_ABOVE:
            elevation, elevation_key = altitude, "ALTITUDE"
    if elevation is not None and -500.0 < elevation < 10000.0:
        take("elevation", elevation, elevation_key)
    name, name_key = _text_source(header, "SITENAME", "OBSERVAT", "SITE")
    take("site", name, name_key)
    for column, value in (fallback or {}).items():
        column = "site" if column == "name" else column
        if column in found:
            take(column, value, "obsdb.toml [site]")
    return {**found, "keywords": sources}


def _latitude(value) -> float | None:
    degrees = _degrees(value)
    return degrees if degrees is not None and abs(degrees) <= 90.0 else None


def _longitude(value) -> float | None:
    degrees = _degrees(value)
    if degrees is None or abs(degrees) > 360.0:
        return None
    return ((degrees + 180.0) % 360.0) - 180.0


def _geocentric_site(header: dict) -> tuple[float, float, float] | None:
    """Latitude, longitude (degrees) and height (m) from OBSGEO-X/Y/Z (geocentric, metres), by astropy."""
    x, y, z = (_number(header, f"OBSGEO-{axis}") for axis in "XYZ")
    if x is None or y is None or z is None:
        return None
    radius = math.sqrt(x * x + y * y + z * z)
    if not 6.3e6 < radius < 6.4e6:  # not on the Earth's surface: no site
        return None
    from astropy.coordinates import EarthLocation
    import astropy.units as u

    geodetic = EarthLocation.from_geocentric(x, y, z, unit=u.m).to_geodetic()
    return float(geodetic.lat.deg), float(geodetic.lon.deg), float(geodetic.height.to_value(u.m))


def site_longitude(header: dict) -> float | None:
    """The site's longitude in degrees east (see :func:`site_location`), or None."""
    return site_location(header)["longitude"]


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
    ``key`` is their canonical text (``telescope|camera|WxH|XxY``).  The binning
    is :func:`binning_and_source`'s (CCDSUM included); ``keywords`` names the cards.
    """
    telescope, telescope_key = _text_source(header, "TELESCOP")
    camera, camera_key = _text_source(header, "INSTRUME", "CAMERA", "DETECTOR")
    binning_x, binning_y, binning_key = binning_and_source(header)
    pixel = _number(header, "XPIXSZ", "PIXSIZE1", "PIXSIZE")
    key = "|".join([telescope or "", camera or "", f"{width or 0}x{height or 0}",
                    f"{binning_x or 1}x{binning_y or 1}"])
    sources = {"telescope": telescope_key, "camera": camera_key, "binning": binning_key}
    return {"key": key, "telescope": telescope, "camera": camera, "width": width, "height": height,
            "binning_x": binning_x, "binning_y": binning_y, "pixel_size": pixel,
            "keywords": {k: v for k, v in sources.items() if v}}
