"""Frames out of obsdb, into the tools observers stack and publish with (``obsdb export``).

* :func:`export_siril`: one folder per target and band of links to a night's accepted lights (or
  their calibrated copies, where masters apply) and a Siril script (``stack.ssf``) that registers
  and stacks them with ``siril-cli``;
* :func:`export_wbpp`: a folder tree of links that PixInsight's WBPP groups by session, filter,
  exposure and binning, with the same as a CSV file list;
* :func:`export_astrobin`: AstroBin's acquisition CSV, one row per night, filter and exposure;
* :func:`export_verdicts`: every frame's verdict (status, reasons, who and when) as CSV or ECSV.

Inputs are never written: a link points at the user's file, a calibrated copy is a new file.  An
output folder is the user's: obsdb replaces there only what an earlier export wrote, as its
manifest (``.obsdb-export.json``) records it, with the bytes it wrote; everything is written
atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from obsdb.errors import ObsdbError
from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES

MANIFEST = ".obsdb-export.json"
"""The file in an export folder that lists what obsdb wrote there (name -> SHA-256, or the link target)."""

SIRIL_SEQUENCE = "light"
"""Base name of the Siril sequence of an exported folder (``light_00001.fit`` ... after ``convert``)."""

SIRIL_SCRIPT = "stack.ssf"
"""The Siril script written beside the links."""

SIRIL_SCRIPT_TEMPLATE = """\
# obsdb export siril: {what}
# {count} frames; run from anywhere:  siril-cli -d "{folder}" -s "{folder}/{script}"
# convert links the frames into the sequence {seq}_ (in process/, so that a second run does not
# convert its own output), setref makes image {reference} the reference ({reference_why}), register
# aligns the others on its stars (global star alignment) and stack takes their median after an
# additive normalisation; the stack is {stack}.fit beside this script.
requires 1.0.0
convert {seq} -out=process
cd process
setref {seq} {reference}
register {seq}
stack r_{seq} med -norm=add -out=../{stack}
"""
"""Siril 1.0 script syntax (Debian 12's siril-cli 1.0.6 runs it; see benchmarks/siril.py)."""

WBPP_LIST = "wbpp_files.csv"
"""The file list of a WBPP export: each link with the keywords WBPP groups by."""

ASTROBIN_COLUMNS = ("date", "filter", "number", "duration", "iso", "binning", "gain", "sensorCooling", "fNumber",
                    "darks", "flats", "flatDarks", "bias", "bortle", "meanSqm", "meanFwhm", "temperature")
"""AstroBin's long-exposure acquisition fields, in the order of its CSV import page
(welcome.astrobin.com/importing-acquisitions-from-csv)."""

VERDICT_COLUMNS = ("night", "frame", "path", "sha256", "status", "reasons", "decided_by", "author", "time")
"""Columns of ``obsdb export verdicts``."""

ARCSEC_PER_RADIAN = 206264.806
"""For the pixel scale from XPIXSZ (micron) and FOCALLEN (mm): scale = 206.265 * pixel / focal."""


@dataclass
class ExportReport:
    """What an export wrote."""

    out: str
    frames: int = 0
    written: list[str] = field(default_factory=list)
    """Files and links written (or replaced)."""
    unchanged: list[str] = field(default_factory=list)
    """Links already there, pointing where they should: left as they were."""
    folders: list[dict] = field(default_factory=list)
    """Siril: one entry per stacking folder (``folder``, ``script``, ``frames``, ``calibrated``)."""
    rows: int = 0
    """CSV exports: data rows written."""
    failed: list[str] = field(default_factory=list)
    """Frames left out, each with its reason."""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the output folder

class ExportFolder:
    """An output folder that obsdb writes into without touching anything it did not write.

    Every planned output is checked first (:meth:`claim`); nothing is written until all of them
    pass.  Files are written atomically; the manifest is updated at the end.
    """

    def __init__(self, root: str | os.PathLike, *, command: str):
        root = Path(root).expanduser()
        if root.exists() and not root.is_dir():
            raise ObsdbError(f"--out {root}: is a file, not a folder")
        self.root = root.resolve()
        self.command = command
        self.owned = self._read_manifest()
        self.claimed: dict[str, str] = {}

    def _read_manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.is_file() or path.is_symlink():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ObsdbError(f"{path}: not readable as obsdb's export manifest; move it, or choose another "
                             "--out") from None
        return data.get("files", {}) if isinstance(data, dict) else {}

    def claim(self, relative: str, *, link_to: str | None = None) -> bool:
        """Check that ``relative`` may be written; False when it is already the link wanted.

        Raises
        ------
        ObsdbError
            When a file or link is there that an earlier export did not write, or that was changed since.
        """
        from obsdb.pipeline.outputs import file_sha256

        target = self.root / relative
        self.claimed[relative] = f"link:{link_to}" if link_to else ""
        if not target.exists() and not target.is_symlink():
            return True
        mine = self.owned.get(relative)
        if target.is_symlink():
            current = os.readlink(target)
            if link_to is not None and current == link_to:
                return False
            if mine == f"link:{current}":
                return True
            raise ObsdbError(f"{target}: a link obsdb did not make is there; refusing to replace it "
                             "(move it, or choose another --out)")
        if not target.is_file():
            raise ObsdbError(f"{target}: exists and is not a file; refusing to replace it (choose another --out)")
        if not mine or mine.startswith("link:"):
            raise ObsdbError(f"{target}: exists and was not written by obsdb export; refusing to replace it "
                             "(move it, or choose another --out)")
        if file_sha256(target) != mine:
            raise ObsdbError(f"{target}: was written by obsdb export but changed since; refusing to replace it "
                             "(move it, or choose another --out)")
        return True

    def write_bytes(self, relative: str, payload: bytes) -> str:
        """Write a file atomically (after :meth:`claim`); returns its path."""
        from obsdb.imaging.fitsio import atomic_write_bytes

        target = self.root / relative
        if target.is_symlink():
            target.unlink()
        self.owned[relative] = atomic_write_bytes(target, payload)
        return str(target)

    def link(self, relative: str, source: str) -> str:
        """Make ``relative`` a symbolic link to ``source`` atomically (after :meth:`claim`)."""
        import tempfile

        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # A link made under a temporary name, then renamed over the target: never a moment without one.
        tmp = tempfile.mktemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.symlink(source, tmp)
        try:
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.owned[relative] = f"link:{source}"
        return str(target)

    def adopt(self, relative: str, sha256: str) -> None:
        """Record a file written by another obsdb function (a calibrated light) as this export's."""
        self.owned[relative] = sha256

    def remove_owned(self, relative: str) -> None:
        """Remove a file or link this export wrote before (to write it anew)."""
        target = self.root / relative
        if relative in self.owned and (target.is_symlink() or target.is_file()):
            target.unlink()

    def finish(self) -> None:
        """Write the manifest (what obsdb export wrote here), atomically."""
        from obsdb.imaging.fitsio import atomic_write_bytes

        document = {"written_by": f"obsdb {self.command}", "files": dict(sorted(self.owned.items()))}
        atomic_write_bytes(self.root / MANIFEST, (json.dumps(document, indent=1) + "\n").encode())


def _claim_file(path: Path, command: str) -> ExportFolder:
    """The folder of a one-file export, with the file checked (see :class:`ExportFolder`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ObsdbError(f"--out {path}: is a folder; give a file name, e.g. {path / 'out.csv'}")
    folder = ExportFolder(path.parent if str(path.parent) else ".", command=command)
    folder.claim(path.name)
    return folder


# --------------------------------------------------------------------------- selection

def _select(store, *, nights, status: str, band, where, image_type: str | None = "light") -> list[dict]:
    """The readable frames an export hands over, in natural order."""
    records = store.frame_dicts(night=nights, band=band, where=where, image_type=image_type,
                                status=None if status == "any" else status, include_unreadable=False)
    return records


def _value(cards: dict, *keys):
    for key in keys:
        value = cards.get(key)
        if value not in (None, ""):
            return value
    return None


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _binning(cards: dict) -> int:
    number = _number(_value(cards, "XBINNING", "BINNING", "XBIN"))
    return int(number) if number and number >= 1 else 1


def _file_safe(name) -> str:
    """A band, target or night as one file-name part (no separators WBPP or a shell would misread)."""
    import re

    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(name or "")).strip("-") or "none"


def _exptime_text(seconds) -> str:
    number = _number(seconds)
    if number is None:
        return "unknown"
    return f"{number:g}"


# --------------------------------------------------------------------------- Siril

def export_siril(db, out: str | os.PathLike, *, night: str, status: str = "accepted", band: str | None = None,
                 where: str | None = None, calibrated: bool = True, executor=None) -> ExportReport:
    """Export one night for Siril: per target and band, links (or calibrated copies) and ``stack.ssf``.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The open catalog's handle.
    out : path-like
        The export folder: ``OUT/<band>/`` (``OUT/<target>/<band>/`` for a night of several targets).
    night : str
        The night (``obsdb nights`` names them).
    status, band, where
        Which lights: accepted by default (``any`` for all).
    calibrated : bool
        Where masters apply (``obsdb calibrate``), write the light calibrated by them (as
        ``obsdb calibrate --write-lights`` does) instead of linking the raw file.
    executor : optional
        Where the calibrated copies are written (serial by default).

    Returns
    -------
    ExportReport
    """
    from obsdb.catalog.exports import ExportStore

    store = ExportStore(db)
    records = _select(store, nights=[night], status=status, band=band, where=where)
    if not records:
        raise ObsdbError(f"night {night}: no {status} light frames to export")
    folder = ExportFolder(out, command="export siril")
    report = ExportReport(out=str(folder.root), frames=len(records))
    masters = store.light_calibrations([r["id"] for r in records]) if calibrated else {}
    shas = store.frame_shas([r["id"] for r in records])
    references = store.run_references({r["shift"]["run"] for r in records if r.get("shift")})
    targets = sorted({r["object"] or "" for r in records})
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["object"] or "", record["band"] or "")].append(record)
    plans = []
    for (target, band_name), members in sorted(groups.items()):
        sub = _file_safe(band_name) if len(targets) == 1 else f"{_file_safe(target)}/{_file_safe(band_name)}"
        items = []
        for index, record in enumerate(members, start=1):
            # Siril 1.0 reads no XISF: those frames, like calibrated ones, are written as FITS copies.
            copied = record["id"] in masters or _fits_suffix(record["path"]) == ".xisf"
            suffix = ".fits" if copied else _fits_suffix(record["path"])
            relative = f"{sub}/{SIRIL_SEQUENCE}_{index:05d}{suffix}"
            link_to = None if copied else record["path"]
            items.append((relative, record, link_to, folder.claim(relative, link_to=link_to)))
        script = f"{sub}/{SIRIL_SCRIPT}"
        folder.claim(script)
        plans.append((sub, target, band_name, items, script))
    jobs = []
    for sub, target, band_name, items, script in plans:
        for relative, record, link_to, needed in items:
            if link_to is not None:
                if needed:
                    report.written.append(folder.link(relative, link_to))
                else:
                    report.unchanged.append(str(folder.root / relative))
            else:
                folder.remove_owned(relative)
                jobs.append({"frame_id": record["id"], "path": record["path"], "sha256": shas.get(record["id"]),
                             "rows": masters.get(record["id"], []), "target": str(folder.root / relative),
                             "relative": relative})
    results = executor.map(_siril_copy, jobs) if executor is not None else ((job, _siril_copy(job)) for job in jobs)
    bad = set()
    for job, result in results:
        if not isinstance(result, dict) or "error" in result:
            report.failed.append(result["error"] if isinstance(result, dict) else str(result))
            bad.add(job["relative"])
        else:
            folder.adopt(job["relative"], result["sha256"])
            report.written.append(result["path"])
    for sub, target, band_name, items, script in plans:
        what = " ".join(p for p in (night, target, band_name) if p)
        stack = f"stack_{_file_safe(band_name)}"
        reference, why = _siril_reference([record for _rel, record, _link, _needed in items], references)
        text = SIRIL_SCRIPT_TEMPLATE.format(what=what, count=len(items), folder=folder.root / sub,
                                            script=SIRIL_SCRIPT, seq=SIRIL_SEQUENCE, stack=stack,
                                            reference=reference, reference_why=why)
        report.written.append(folder.write_bytes(script, text.encode()))
        report.folders.append({"folder": str(folder.root / sub), "script": str(folder.root / script),
                               "target": target or None, "band": band_name or None, "frames": len(items),
                               "calibrated": sum(1 for _rel, record, link, _needed in items
                                                 if link is None and record["id"] in masters),
                               "stack": str(folder.root / sub / f"{stack}.fit"), "reference": reference})
    if bad:
        report.notes.append(f"{len(bad)} calibrated copies failed: those sequences have gaps; see the errors")
    folder.finish()
    return report


def _siril_copy(job: dict) -> dict:
    """A frame of a Siril export written as FITS: calibrated by its masters (``rows``), or, without any,
    an XISF frame's pixels and header as they are (runs in a worker; one-line errors)."""
    from obsdb.pipeline.calibrate import write_calibrated_light

    if job["rows"]:
        return write_calibrated_light(job)
    from astropy.io import fits

    from obsdb.imaging.fitsio import FitsReadError, atomic_write_fits, read_fits_image

    try:
        image = read_fits_image(job["path"], hash_mode="inline")
        if job["sha256"] and image.sha256 != job["sha256"]:
            return {"frame_id": job["frame_id"], "error": f"{job['path']}: changed since it was catalogued "
                                                          "(SHA-256 differs); ingest it again"}
        header = image.header.copy()
        header["OBSDBFID"] = (job["frame_id"], "obsdb catalog id of the frame")
        header.add_history(f"obsdb export siril: FITS copy of {Path(job['path']).name}"[:72])
        digest = atomic_write_fits(job["target"], fits.HDUList([fits.PrimaryHDU(image.data, header=header)]))
    except (OSError, ValueError, FitsReadError) as exc:
        return {"frame_id": job["frame_id"], "error": f"{job['path']}: {exc}"}
    return {"frame_id": job["frame_id"], "path": job["target"], "sha256": digest}


def _siril_reference(members: list[dict], references: dict[int, int | None]) -> tuple[int, str]:
    """The 1-based image of the sequence Siril registers onto, and why.

    obsdb's own reference frame when it is among the members (the frames' current alignment run), so
    that Siril's stack lies on obsdb's pixel grid; else the first image, Siril 1.0's default.
    """
    for index, record in enumerate(members, start=1):
        shift = record.get("shift") or {}
        if shift.get("run") is not None and references.get(shift["run"]) == record["id"]:
            return index, f"obsdb's reference frame {record['label']}, so that the stack lies on obsdb's grid"
    return 1, "the first frame: obsdb's reference frame is not among these (or they are not aligned)"


def _fits_suffix(path: str) -> str:
    """The input's FITS suffix (``.fits``, ``.fit``, ``.fts``, ``.fits.gz``), kept on its link."""
    name = Path(path).name.lower()
    for suffix in (".fits.gz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts", ".xisf"):
        if name.endswith(suffix):
            return suffix
    return ".fits"


# --------------------------------------------------------------------------- WBPP

WBPP_KEYS = ("SESSION", "FILTER", "EXPTIME", "XBINNING")
"""The keywords a WBPP export names in its folder tree, each folder a ``KEYWORD_value`` token."""


def export_wbpp(db, out: str | os.PathLike, *, nights=None, status: str = "accepted", band: str | None = None,
                where: str | None = None, calibration: bool = True) -> ExportReport:
    """Export lights (and the nights' bias, dark and flat frames) as a tree WBPP groups by.

    Lights go to ``OUT/<target>/SESSION_<night>/FILTER_<band>/EXPTIME_<s>/XBINNING_<n>/<file>``,
    calibration frames to ``OUT/calibration/SESSION_<night>/<type>/...`` (flats under their filter),
    each a link to the catalogued file.  ``OUT/wbpp_files.csv`` lists every link with its keywords.
    """
    from obsdb.catalog.exports import ExportStore

    store = ExportStore(db)
    lights = _select(store, nights=nights, status=status, band=band, where=where)
    if not lights:
        raise ObsdbError(f"no {status} light frames to export")
    frames = list(lights)
    if calibration:
        lit_nights = sorted({r["night"] for r in lights})
        for kind in CALIBRATION_IMAGE_TYPES:
            frames += _select(store, nights=lit_nights, status="any", band=None, where=None, image_type=kind)
    cards = store.header_cards([r["id"] for r in frames], ["XBINNING", "BINNING", "XBIN"])
    folder = ExportFolder(out, command="export wbpp")
    report = ExportReport(out=str(folder.root), frames=len(lights))
    rows, plans, names = [], [], set()
    for record in frames:
        keys = {"SESSION": record["night"], "FILTER": record["band"] or "none",
                "EXPTIME": _exptime_text(record["exptime"]), "XBINNING": _binning(cards.get(record["id"], {}))}
        if record["type"] == "light":
            parts = [_file_safe(record["object"] or "no-target"), f"SESSION_{_file_safe(keys['SESSION'])}",
                     f"FILTER_{_file_safe(keys['FILTER'])}", f"EXPTIME_{_file_safe(keys['EXPTIME'])}",
                     f"XBINNING_{keys['XBINNING']}"]
        else:
            parts = ["calibration", f"SESSION_{_file_safe(keys['SESSION'])}", record["type"]]
            if record["type"] == "flat":
                parts.append(f"FILTER_{_file_safe(keys['FILTER'])}")
            if record["type"] != "bias":
                parts.append(f"EXPTIME_{_file_safe(keys['EXPTIME'])}")
            parts.append(f"XBINNING_{keys['XBINNING']}")
        relative = "/".join(parts + [record["file_name"]])
        if relative in names:   # one file name twice in a folder: the catalog id tells them apart
            relative = "/".join(parts + [f"{record['id']}-{record['file_name']}"])
        names.add(relative)
        plans.append((relative, record, folder.claim(relative, link_to=record["path"])))
        rows.append({"link": relative, "path": record["path"], "type": record["type"],
                     "target": record["object"] or "", **keys})
    folder.claim(WBPP_LIST)
    for relative, record, needed in plans:
        if needed:
            report.written.append(folder.link(relative, record["path"]))
        else:
            report.unchanged.append(str(folder.root / relative))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["link", "path", "type", "target", *WBPP_KEYS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    report.written.append(folder.write_bytes(WBPP_LIST, buffer.getvalue().encode()))
    report.rows = len(rows)
    folder.finish()
    return report


# --------------------------------------------------------------------------- AstroBin

def pixel_scale(cards: dict) -> float | None:
    """Arcsec per pixel from the header: SCALE/PIXSCALE, else 206.265 * XPIXSZ (micron) / FOCALLEN (mm).

    XPIXSZ is the binned pixel in the convention of N.I.N.A., MaxIm DL and SGP (the FITS keyword
    dictionary of SBIG), so binning is not applied again.
    """
    scale = _number(_value(cards, "SCALE", "PIXSCALE", "SECPIX"))
    if scale and scale > 0:
        return scale
    pixel, focal = _number(_value(cards, "XPIXSZ", "PIXSIZE1")), _number(_value(cards, "FOCALLEN"))
    if pixel and focal and pixel > 0 and focal > 0:
        return ARCSEC_PER_RADIAN * pixel * 1e-3 / focal
    return None


ASTROBIN_CARDS = ("XBINNING", "BINNING", "XBIN", "GAIN", "CCD-TEMP", "CCD_TEMP", "SET-TEMP", "SCALE", "PIXSCALE",
                  "SECPIX", "XPIXSZ", "PIXSIZE1", "FOCALLEN", "FOCRATIO", "AMBTEMP", "FOCTEMP", "ISOSPEED")
"""Header cards an AstroBin row is made from."""


def astrobin_rows(lights: list[dict], cards: dict[int, dict], nina: dict[int, dict],
                  calibration_counts: dict, filter_ids: dict[str, str]) -> list[dict]:
    """AstroBin acquisition rows: one per night, filter, exposure, binning and gain.  Pure.

    Parameters
    ----------
    lights : list of dict
        Frame records (``obsdb frames --format json`` shape).
    cards : dict
        Frame id -> header cards (:data:`ASTROBIN_CARDS`).
    nina : dict
        Frame id -> N.I.N.A.'s imported values (``camera_temp``, ``focuser_temp``, ``gain``).
    calibration_counts : dict
        ``(night, type, band or None) -> count`` of bias, dark and flat frames.
    filter_ids : dict
        Band -> AstroBin's numeric filter id (its equipment database); bands without one get an
        empty ``filter`` (AstroBin ignores what it cannot validate).
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in lights:
        card = cards.get(record["id"], {})
        extra = nina.get(record["id"], {})
        gain = _number(_value(card, "GAIN"))
        if gain is None:
            gain = _number(extra.get("gain"))
        key = (record["night"], record["band"] or "", _number(record["exptime"]), _binning(card), gain)
        groups[key].append(record)
    rows = []
    for (night, band, exptime, binning, gain), members in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2] or 0, kv[0][3], kv[0][4] or 0)):
        temps, ambient, fwhms, ratios, isos = [], [], [], [], []
        for record in members:
            card, extra = cards.get(record["id"], {}), nina.get(record["id"], {})
            sensor = _number(_value(card, "CCD-TEMP", "CCD_TEMP", "SET-TEMP"))
            sensor = _number(extra.get("camera_temp")) if sensor is None else sensor
            if sensor is not None:
                temps.append(sensor)
            air = _number(_value(card, "AMBTEMP", "FOCTEMP"))
            air = _number(extra.get("focuser_temp")) if air is None else air
            if air is not None:
                ambient.append(air)
            scale, fwhm = pixel_scale(card), ((record.get("metrics") or {}).get("fwhm"))
            if scale and fwhm:
                fwhms.append(scale * fwhm)
            ratio, iso = _number(card.get("FOCRATIO")), _number(card.get("ISOSPEED"))
            if ratio:
                ratios.append(ratio)
            if iso:
                isos.append(iso)
        count = calibration_counts.get
        rows.append({
            "date": night, "filter": filter_ids.get(band, ""), "number": len(members),
            "duration": "" if exptime is None else f"{round(exptime, 4):g}",
            "iso": f"{statistics.median(isos):.0f}" if isos else "",
            "binning": binning if binning in (1, 2, 3, 4) else "",
            "gain": "" if gain is None else f"{round(gain, 2):g}",
            "sensorCooling": f"{round(statistics.median(temps)):.0f}" if temps else "",
            "fNumber": f"{round(statistics.median(ratios), 2):g}" if ratios else "",
            "darks": count((night, "dark", None), 0), "flats": count((night, "flat", band), 0), "flatDarks": "",
            "bias": count((night, "bias", None), 0), "bortle": "", "meanSqm": "",
            "meanFwhm": f"{statistics.fmean(fwhms):.2f}" if fwhms else "",
            "temperature": f"{statistics.fmean(ambient):.2f}" if ambient else "",
            "_band": band,
        })
    return rows


def export_astrobin(db, out: str | os.PathLike, *, nights=None, status: str = "accepted", band: str | None = None,
                    where: str | None = None, filter_ids: dict[str, str] | None = None) -> ExportReport:
    """Write AstroBin's acquisition CSV (:data:`ASTROBIN_COLUMNS`) for the selected lights.

    ``meanFwhm`` is in arcsec, from obsdb's FWHM and the header's pixel scale (:func:`pixel_scale`),
    left empty when the scale is unknown; ``sensorCooling`` is the median CCD-TEMP (or N.I.N.A.'s
    CameraTemp); ``darks``, ``flats`` (of the filter) and ``bias`` count the night's calibration frames.
    """
    from obsdb.catalog.exports import ExportStore

    store = ExportStore(db)
    lights = _select(store, nights=nights, status=status, band=band, where=where)
    if not lights:
        raise ObsdbError(f"no {status} light frames to export")
    target = Path(out).expanduser()
    folder = _claim_file(target, "export astrobin")
    ids = [r["id"] for r in lights]
    counts: dict[tuple, int] = defaultdict(int)
    for kind in CALIBRATION_IMAGE_TYPES:
        for record in _select(store, nights=sorted({r["night"] for r in lights}), status="any", band=None,
                              where=None, image_type=kind):
            counts[(record["night"], kind, record["band"] if kind == "flat" else None)] += 1
    rows = astrobin_rows(lights, store.header_cards(ids, ASTROBIN_CARDS), store.nina_values(ids), counts,
                         filter_ids or {})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ASTROBIN_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    report = ExportReport(out=str(folder.root / target.name), frames=len(lights), rows=len(rows))
    report.written.append(folder.write_bytes(target.name, buffer.getvalue().encode()))
    unmapped = sorted({r["_band"] for r in rows if not r["filter"] and r["_band"]})
    if unmapped:
        report.notes.append(f"no AstroBin filter id for {', '.join(unmapped)}: their filter column is empty "
                            "(give --filter-id BAND=ID, the number in the filter's AstroBin URL)")
    folder.finish()
    return report


# --------------------------------------------------------------------------- verdicts

def verdict_rows(records: list[dict]) -> list[dict]:
    """One row per frame: its status, reasons, and who decided it when.  Pure.

    The author and time are those of the tag that decided (a person's latest verdict, or the first
    rejecting rule); a frame that QA judged with nothing against it is ``obsdb``'s, without a time.
    """
    rows = []
    for record in records:
        decided = (record.get("verdict") or {}).get("decided_by", "none")
        tags = record.get("tags") or []
        deciding = None
        if decided == "person":
            people = [t for t in tags if not str(t["source"]).startswith("rule:")]
            deciding = people[-1] if people else None
        elif decided == "rules" and record.get("reasons"):
            first = record["reasons"][0].split(":", 1)[0]
            deciding = next((t for t in tags if t["name"] == first), None)
        rows.append({"night": record["night"], "frame": record["label"], "path": record["path"],
                     "sha256": record.get("sha256") or "", "status": record["status"],
                     "reasons": "; ".join(record.get("reasons") or []), "decided_by": decided,
                     "author": deciding["author"] if deciding else ("obsdb" if decided == "qa" else ""),
                     "time": deciding["created_at"] if deciding else ""})
    return rows


def export_verdicts(db, out: str | os.PathLike, *, nights=None, status: str = "any", band: str | None = None,
                    where: str | None = None) -> ExportReport:
    """Write every selected frame's verdict as CSV, or as ECSV when ``out`` ends in ``.ecsv``.

    ECSV (astropy's enhanced CSV) carries the column types and descriptions in its header, so
    that ``astropy.table.Table.read`` gets them back; plain CSV is for spreadsheets and other tools.
    """
    from obsdb.catalog.exports import ExportStore

    store = ExportStore(db)
    records = _select(store, nights=nights, status=status, band=band, where=where, image_type=None)
    if not records:
        raise ObsdbError(f"no {'' if status == 'any' else status + ' '}frames to export")
    shas = store.frame_shas([r["id"] for r in records])
    for record in records:
        record["sha256"] = shas.get(record["id"])
    target = Path(out).expanduser()
    folder = _claim_file(target, "export verdicts")
    rows = verdict_rows(records)
    if target.suffix.lower() == ".ecsv":
        payload = _ecsv(rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(VERDICT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        payload = buffer.getvalue().encode()
    report = ExportReport(out=str(folder.root / target.name), frames=len(records), rows=len(rows))
    report.written.append(folder.write_bytes(target.name, payload))
    folder.finish()
    return report


VERDICT_DESCRIPTIONS = {
    "night": "Night (local date at the start of the night)",
    "frame": "How obsdb names the frame (its number, or NIGHT:NUMBER, or its file name)",
    "path": "Absolute path of the file",
    "sha256": "SHA-256 of the file when catalogued",
    "status": "accepted, rejected or pending",
    "reasons": "The reasons, each naming its tag, separated by '; '",
    "decided_by": "person, rules, qa, unreadable or none",
    "author": "Who decided (login name, or obsdb for the rules)",
    "time": "When the deciding tag was set, UTC (ISO 8601)",
}


def _ecsv(rows: list[dict]) -> bytes:
    from astropy.table import Table

    table = Table(rows=[[str(row[c] if row[c] is not None else "") for c in VERDICT_COLUMNS] for row in rows],
                  names=VERDICT_COLUMNS, dtype=[str] * len(VERDICT_COLUMNS))
    for name, text in VERDICT_DESCRIPTIONS.items():
        table[name].description = text
    table.meta["written_by"] = "obsdb export verdicts"
    buffer = io.StringIO()
    table.write(buffer, format="ascii.ecsv")
    return buffer.getvalue().encode()
