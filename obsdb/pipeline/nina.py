"""``obsdb import nina``: N.I.N.A.'s per-frame metadata joined to the catalogued frames.

The file is ``ImageMetaData.csv`` of N.I.N.A.'s Session Metadata plugin: one row per saved image,
with the columns of the plugin's ``ImageMetaDataRecord`` (ExposureNumber, FilePath, FilterName,
ExposureStart, Duration, Binning, CameraTemp, CameraTargetTemp, Gain, Offset, ADU statistics,
DetectedStars, HFR, HFRStDev, FWHM, Eccentricity, GuidingRMS, GuidingRMSArcSec, GuidingRMSRA(ArcSec),
GuidingRMSDEC(ArcSec), FocuserPosition, FocuserTemp, RotatorPosition, PierSide, Airmass,
ExposureStartUTC, MountRA, MountDec; see docs/interop.md).

A row is joined to the frame whose file name is FilePath's last component (Windows or POSIX
separators); a row whose file is not catalogued under that name (renamed, converted) is joined by
time instead: the one frame whose DATE-OBS is within ``tolerance_s`` of ExposureStartUTC and whose
band is FilterName.  The file is only read.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from obsdb.errors import ObsdbError

NINA_MAX_BYTES = 64 << 20
"""A metadata file of more than this is not N.I.N.A.'s (a row is ~400 bytes: 160,000 frames)."""

REQUIRED_ANY = ("FilePath", "ExposureStartUTC")
"""A file without either column cannot be joined to anything."""

NUMBER_COLUMNS = {
    "hfr": "HFR", "hfr_stdev": "HFRStDev", "fwhm": "FWHM", "eccentricity": "Eccentricity",
    "guiding_rms": "GuidingRMS", "guiding_rms_arcsec": "GuidingRMSArcSec",
    "guiding_rms_ra_arcsec": "GuidingRMSRAArcSec", "guiding_rms_dec_arcsec": "GuidingRMSDECArcSec",
    "focuser_temp": "FocuserTemp", "camera_temp": "CameraTemp", "camera_target_temp": "CameraTargetTemp",
}
"""Catalog column -> the plugin's CSV column, for the real numbers."""

INTEGER_COLUMNS = {"exposure_number": "ExposureNumber", "detected_stars": "DetectedStars",
                   "focuser_position": "FocuserPosition", "gain": "Gain", "camera_offset": "Offset"}
"""Catalog column -> CSV column, for the whole numbers."""

ZERO_MEANS_NONE = {"guiding_rms", "guiding_rms_arcsec", "guiding_rms_ra_arcsec", "guiding_rms_dec_arcsec"}
"""The plugin writes 0 for the guiding RMS of an unguided frame (no RecordedRMS): stored as NULL."""


@dataclass
class NinaImportReport:
    """What ``obsdb import nina`` joined."""

    source: str
    rows: int = 0
    matched: int = 0
    by_name: int = 0
    by_time: int = 0
    unmatched: list[tuple[int, str, str]] = field(default_factory=list)
    """(CSV row number, its FilePath, why it joined no frame)."""


def _number(text) -> float | None:
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _utc(text) -> datetime | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def base_name(file_path: str) -> str:
    """FilePath's last component, whichever separator N.I.N.A.'s machine used."""
    return (file_path or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def parse_rows(text: str, source: str) -> list[dict]:
    """The CSV's rows as catalog values (``row``, ``file_path``, ``band``, ``exposure_start``, numbers).

    Raises
    ------
    ObsdbError
        When the header has neither FilePath nor ExposureStartUTC.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if not any(c in columns for c in REQUIRED_ANY):
        shown = ", ".join(columns[:6]) + (" ..." if len(columns) > 6 else "") if columns else "none"
        raise ObsdbError(f"{source}: not N.I.N.A.'s ImageMetaData.csv: no FilePath or ExposureStartUTC column "
                         f"(columns: {shown})")
    rows = []
    for number, raw in enumerate(reader, start=2):   # row 1 is the header
        values = {"row": number, "file_path": (raw.get("FilePath") or "").strip() or None,
                  "band": (raw.get("FilterName") or "").strip() or None,
                  "exposure_start": _utc(raw.get("ExposureStartUTC"))}
        for column, name in NUMBER_COLUMNS.items():
            value = _number(raw.get(name))
            values[column] = None if (value == 0 and column in ZERO_MEANS_NONE) else value
        for column, name in INTEGER_COLUMNS.items():
            value = _number(raw.get(name))
            values[column] = None if value is None else int(round(value))
        rows.append(values)
    return rows


def import_nina(db, csv_path: str | os.PathLike, *, tolerance_s: float = 2.0, nights=None,
                author: str | None = None) -> NinaImportReport:
    """Join an ImageMetaData.csv to the catalogued frames and store its values (table ``nina_image``).

    Parameters
    ----------
    db : obsdb.catalog.db.Database
    csv_path : path-like
        N.I.N.A.'s ImageMetaData.csv.
    tolerance_s : float
        Largest difference, seconds, between ExposureStartUTC and DATE-OBS for a join by time.
    nights : list of str, optional
        Only frames of these nights.

    Returns
    -------
    NinaImportReport
    """
    import hashlib

    from obsdb.catalog.nina import NinaStore, time_window
    from obsdb.config import login_name

    path = Path(csv_path).expanduser()
    try:
        if not path.is_file():
            raise ObsdbError(f"{path}: no such file" if not path.exists() else f"{path}: is not a regular file")
        if path.stat().st_size > NINA_MAX_BYTES:
            raise ObsdbError(f"{path}: {path.stat().st_size:,} bytes is too large for N.I.N.A.'s ImageMetaData.csv")
        payload = path.read_bytes()
    except OSError as exc:
        raise ObsdbError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ObsdbError(f"{path}: not a text file (not UTF-8)") from None
    source = str(path.resolve())
    rows = parse_rows(text, str(path))
    report = NinaImportReport(source=source, rows=len(rows))
    if not rows:
        raise ObsdbError(f"{path}: no rows below the header")
    store = NinaStore(db)
    by_name = store.candidates_by_name([base_name(r["file_path"]) for r in rows if r["file_path"]], nights=nights)
    window = time_window([r["exposure_start"] for r in rows if r["exposure_start"]], tolerance_s)
    in_time = store.candidates_in_time(*window, nights=nights) if window else []
    joined: dict[int, dict] = {}
    for row in rows:
        frame, how, why = _join(row, by_name, in_time, tolerance_s)
        if frame is None:
            report.unmatched.append((row["row"], row["file_path"] or "", why))
            continue
        if frame["id"] in joined:
            report.unmatched.append((row["row"], row["file_path"] or "",
                                     f"frame {frame['file_name']} was already joined to row {joined[frame['id']]['row']}"))
            continue
        joined[frame["id"]] = {**row, "frame_id": frame["id"], "matched_by": how}
        if how == "file name":
            report.by_name += 1
        else:
            report.by_time += 1
    report.matched = len(joined)
    sha = hashlib.sha256(payload).hexdigest()
    stored = [{k: v for k, v in row.items() if k not in ("row", "band")} | {"source": source, "source_sha256": sha}
              for row in joined.values()]
    if stored:
        store.store_rows(stored, source=source, author=author or login_name(),
                         summary=f"{report.matched} of {report.rows} rows of {path.name} joined "
                                 f"({report.by_name} by file name, {report.by_time} by time)")
    return report


def _join(row: dict, by_name: dict, in_time: list[dict], tolerance_s: float):
    """The frame a row describes, how it was found, or None and why not."""
    name = base_name(row["file_path"]) if row["file_path"] else ""
    named = by_name.get(name.lower(), []) if name else []
    when = row["exposure_start"]

    def close(frame) -> bool:
        return (when is not None and frame["date_obs"] is not None
                and abs((frame["date_obs"] - when).total_seconds()) <= tolerance_s)

    if len(named) == 1:
        return named[0], "file name", None
    if len(named) > 1:
        timed = [f for f in named if close(f)]
        if len(timed) == 1:
            return timed[0], "file name", None
        return None, None, (f"{len(named)} catalogued frames are named {name} "
                            f"({', '.join(sorted(f['night'] for f in named))}) and the time tells none apart")
    if when is None:
        return None, None, f"no catalogued frame named {name or '(no FilePath)'}, and no ExposureStartUTC"
    timed = [f for f in in_time if close(f) and (row["band"] is None or f["band"] is None
                                                 or f["band"].lower() == row["band"].lower())]
    if len(timed) == 1:
        return timed[0], "time", None
    if not timed:
        return None, None, (f"no catalogued frame named {name or '(no FilePath)'}, nor one of filter "
                            f"{row['band'] or '?'} within {tolerance_s:g} s of {when.isoformat()}")
    return None, None, f"{len(timed)} frames within {tolerance_s:g} s of {when.isoformat()}: ambiguous"
