"""`obsdb calibrate`: master bias, dark and flat frames from the night's own frames, and which of them
calibrates each light, with the reason.

Per night and instrument, the calibration frames are grouped by what must match (instrument with its
shape and binning, read-out key; the exposure for darks; the band for flats).  Frames the catalog
rejects (a calibration check's tag, a person's reject) never enter a master.  A group of at least
:data:`MIN_FRAMES` frames is combined (:func:`obsdb.imaging.calibration.combine`) after overscan and
trim; darks less the master bias, flats less bias and dark and normalised by their median.  Masters
are built bias first, then darks, then flats, each stage mapped through the executor; each is
recorded before its file is written (a write-ahead row), written atomically, and names its members
with their SHA-256 in its header.  Then every light is matched (:mod:`obsdb.pipeline.calib_match`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from obsdb.errors import ObsdbError
from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES

MIN_FRAMES = 3
"""Frames a master needs: fewer cannot be sigma-clipped, so a cosmic ray, or a star in a sky flat,
would go straight into the master.  A lone flat is refused, with this reason."""

VALIDITY = {"bias": timedelta(days=7), "dark": timedelta(days=7), "flat": timedelta(hours=12)}
"""How far before the first and after the last member a master may calibrate a light.  Flats are
valid for their own night only by default (dust moves, filters are changed); bias and dark for a
week either side."""

DARK_SECONDS_DECIMALS = 1
"""Darks are grouped by exposure rounded to this many decimals of a second."""


@dataclass
class CalibrateReport:
    """What `obsdb calibrate` did."""

    built: list[dict] = field(default_factory=list)
    """Masters written now: ``id``, ``kind``, ``path``, ``n_frames``, ``key`` (text)."""
    reused: list[dict] = field(default_factory=list)
    """Masters already built from the same members by this algorithm: ``id``, ``kind``, ``key``."""
    refused: list[str] = field(default_factory=list)
    """Groups or frames left out, each with its reason."""
    failed: list[str] = field(default_factory=list)
    """Masters that could not be built, each with its reason (their rows are marked bad)."""
    matches: list[dict] = field(default_factory=list)
    """The calibration rows written (one per light and kind)."""
    bands: list[str] = field(default_factory=list)
    """Per band, the masters its lights use and how many have none (:func:`usage_by_band`)."""
    remeasured: int = 0
    """Lights whose stars and metrics were measured again, on their newly calibrated pixels."""
    not_remeasured: list = field(default_factory=list)
    """``(path, reason)`` of lights that could not be measured again."""
    lights_written: list[str] = field(default_factory=list)
    """Calibrated lights written (``--write-lights``)."""
    lights_unchanged: list[str] = field(default_factory=list)
    """Calibrated lights already written from the same raw file and masters, left as they were."""
    lights_failed: list[str] = field(default_factory=list)
    """Lights that could not be written calibrated, each with its reason."""
    unlike: list[tuple[str, str]] = field(default_factory=list)
    """Raw calibration frames unlike the previous master of their kind: ``(label, reason)``; they are
    tagged ``calib-unlike-master`` and left out of the new master."""
    compared: int = 0
    """Raw calibration frames compared with a previous master."""

    def uncalibrated(self) -> dict[str, int]:
        """Lights without a master, per kind."""
        counts = {"bias": 0, "dark": 0, "flat": 0}
        for row in self.matches:
            if row["master_id"] is None:
                counts[row["kind"]] += 1
        return counts


def _group_key(frame: dict) -> tuple:
    kind = frame["type"]
    detail = None
    if kind == "flat":
        detail = frame.get("band")
    elif kind == "dark":
        detail = None if frame.get("exptime") is None else round(float(frame["exptime"]), DARK_SECONDS_DECIMALS)
    return frame["night_id"], frame["instrument_id"], frame["readout"], kind, detail


def _key_text(frames: list[dict]) -> str:
    first = frames[0]
    kind = first["type"]
    what = {"flat": f" in {first.get('band') or '-'}", "dark": f" of {first.get('exptime')} s"}.get(kind, "")
    return f"{len(frames)} {kind}{what} of {first['night']} ({first['readout']})"


def plan_masters(frames: list[dict]) -> tuple[list[list[dict]], list[str]]:
    """The groups of calibration frames to combine, and what was left out with the reason.  Pure.

    Parameters
    ----------
    frames : list of dict
        As :meth:`obsdb.catalog.masters.MasterStore.calibration_inputs` gives them.

    Returns
    -------
    (list of list of dict, list of str)
        Groups (each of at least :data:`MIN_FRAMES` frames not rejected), and one line per rejected
        frame or too-small group.
    """
    groups: dict[tuple, list[dict]] = {}
    refused = []
    for frame in frames:
        if frame.get("status") == "rejected":
            refused.append(f"{frame['label']} ({frame['type']}): rejected in the catalog, left out of every master")
            continue
        if frame["type"] == "flat" and not frame.get("band"):
            refused.append(f"{frame['label']} (flat): no band in the header, left out")
            continue
        if frame["type"] == "dark" and frame.get("exptime") is None:
            refused.append(f"{frame['label']} (dark): no exposure time in the header, left out")
            continue
        groups.setdefault(_group_key(frame), []).append(frame)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(v) for v in k)):
        members = groups[key]
        if len(members) < MIN_FRAMES:
            refused.append(f"{_key_text(members)}: fewer than {MIN_FRAMES} frames, no master "
                           f"({', '.join(str(f['label']) for f in members)}; sigma clipping needs {MIN_FRAMES})")
            continue
        out.append(members)
    return out, refused


def _representative(members: list[dict]) -> dict:
    """A group as a "light" for :func:`obsdb.pipeline.calib_match.match_light` (the bias and dark a
    dark or flat group is corrected with)."""
    from obsdb.catalog.masters import median_or_none, median_time

    first = members[0]
    return {"id": None, "night_id": first["night_id"], "night": first["night"],
            "instrument_id": first["instrument_id"], "readout": first["readout"], "band": first.get("band"),
            "exptime": median_or_none(f.get("exptime") for f in members),
            "ccd_temp": median_or_none(f.get("ccd_temp") for f in members),
            "date_obs": median_time([f.get("date_obs") for f in members])}


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(text)).strip("_") or "x"


IN_MEMORY_BYTES = 256 * 2**20
"""A master's prepared inputs are held in memory up to this size (float32); beyond it they go to a
scratch file that is memory-mapped, so that a set of 50 frames of 4096^2 (3.2 GiB) does not have
to fit: the combine reads a band of rows of each at a time (:data:`obsdb.imaging.calibration.COMBINE_ROWS`)."""


def _read_corrections(job: dict) -> dict:
    """The bias and dark masters a job's members are corrected by, read and checked against their
    SHA-256; raises ValueError naming the file that changed."""
    import numpy as np

    from obsdb.imaging.fitsio import read_fits_image

    corrections = {}
    for which in ("bias", "dark"):
        ref = job.get(which)
        if ref is None:
            continue
        image = read_fits_image(ref["path"], hash_mode="inline")
        if image.sha256 != ref["sha256"]:
            raise ValueError(f"{ref['path']}: the master {which} changed since it was written (SHA-256 differs)")
        corrections[which] = np.asarray(image.data, dtype=np.float32)
    return corrections


def _prepared_member(member: dict, job: dict, corrections: dict):
    """One calibration frame prepared as its master's inputs are: overscan and trim, then the bias
    and (scaled) dark subtracted, a flat normalised by its median.  Returns (float32 array,
    sections); raises ValueError with the reason it cannot be."""
    import numpy as np

    from obsdb.imaging.calibration import overscan_and_trim, with_sections
    from obsdb.imaging.fitsio import read_fits_image

    image = read_fits_image(member["path"], hash_mode="inline")
    if member["sha256"] and image.sha256 != member["sha256"]:
        raise ValueError(f"{member['path']}: changed since it was catalogued (SHA-256 differs); ingest it again")
    data, sections = overscan_and_trim(image.data, with_sections(image.header, job.get("sections")))
    for which in ("bias", "dark"):
        if which in corrections:
            if corrections[which].shape != data.shape:
                raise ValueError(f"master {which} {job[which]['id']} is {corrections[which].shape}, "
                                 f"{member['file_name']} {data.shape} after trim")
            scale = 1.0 if which == "bias" else (member.get("exptime") or 0) / job["dark"]["exptime"]
            data = data - corrections[which] * np.float32(scale)
    if job["kind"] == "flat":
        level = float(np.nanmedian(data))
        if not level > 0:
            raise ValueError(f"{member['file_name']}: flat level {level:.1f} ADU after bias subtraction, "
                             "cannot normalise")
        data = data / np.float32(level)
    return data.astype(np.float32, copy=False), sections


def build_master(job: dict) -> dict:
    """Combine one master and write it (runs in a worker: a pure function of the job and the files).

    Parameters
    ----------
    job : dict
        ``id``, ``kind``, ``path``, ``members`` (dicts with ``frame_id``, ``path``, ``sha256``,
        ``file_name``, ``exptime``), ``bias`` and ``dark`` (None or dicts with ``id``, ``path``,
        ``sha256``, ``scale`` for a dark), ``cards`` (header cards to write), optionally
        ``in_memory_bytes`` (default :data:`IN_MEMORY_BYTES`).

    Returns
    -------
    dict
        ``id``, and ``sha256`` with ``stats``, or ``error`` (one line).
    """
    import tempfile

    import numpy as np
    from astropy.io import fits

    from obsdb.imaging.calibration import CLIP_ITERS, CLIP_SIGMA, MASTER_VERSION, combine, robust_noise
    from obsdb.imaging.fitsio import atomic_write_fits

    kind = job["kind"]
    try:
        with tempfile.TemporaryDirectory(prefix="obsdb-master-") as scratch:
            corrections = _read_corrections(job)
            prepared, sections, stack = [], None, None
            for index, member in enumerate(job["members"]):
                data, info = _prepared_member(member, job, corrections)
                sections = sections or info
                size = len(job["members"]) * data.size * 4
                if stack is None and size > job.get("in_memory_bytes", IN_MEMORY_BYTES):
                    stack = np.lib.format.open_memmap(os.path.join(scratch, "inputs.npy"), mode="w+",
                                                      dtype=np.float32, shape=(len(job["members"]), *data.shape))
                if stack is not None:
                    if data.shape != stack.shape[1:]:
                        raise ValueError(f"{member['file_name']}: {data.shape} after trim, the others "
                                         f"{stack.shape[1:]}")
                    stack[index] = data
                    prepared.append(stack[index])
                else:
                    prepared.append(data)
            per_input: list[int] = []
            master, rejected = combine(prepared, sigma=CLIP_SIGMA, maxiters=CLIP_ITERS, per_input=per_input)
            del prepared, stack
        norm = None
        if kind == "flat":
            norm = float(np.nanmedian(master))
            master = master / np.float32(norm)
        header = fits.Header()
        header["HIERARCH OBSDB_MID"] = (job["id"], "obsdb catalog id of this master")
        header["OBSDBKND"] = (kind, "master kind")
        header["NCOMBINE"] = (len(job["members"]), "frames combined")
        header["COMBMETH"] = ("sigma-clipped median", "combine method")
        header["CLIPSIG"] = (CLIP_SIGMA, "sigma clipping threshold (MAD-based sigma)")
        header["OBSDBALG"] = (MASTER_VERSION, "obsdb master algorithm")
        for key, (value, comment) in job.get("cards", {}).items():
            if value is not None:
                header[key] = (value, comment)
        if sections and sections.get("biassec"):
            header["OSCANSEC"] = (sections["biassec"], "overscan subtracted (BIASSEC of the members)")
        if sections and sections.get("trimsec"):
            header["TRIMSEC0"] = (sections["trimsec"], "trim section of the members")
        for which, card in (("bias", "OBSDBBIA"), ("dark", "OBSDBDRK")):
            if job.get(which):
                header[card] = (job[which]["id"], f"master {which} subtracted (catalog id)")
                header.add_history(f"{which} master {job[which]['id']}: {os.path.basename(job[which]['path'])}")
                header.add_history(f"sha256 {job[which]['sha256']}")
        for member in job["members"]:
            header.add_history(f"member {member['frame_id']}: {member['file_name']}"[:72])
            header.add_history(f"sha256 {member['sha256']}")
        digest = atomic_write_fits(job["path"], fits.HDUList([fits.PrimaryHDU(master, header=header)]))
        stats = {"median": float(np.nanmedian(master)), "noise": robust_noise(master), "rejected": rejected,
                 "rejected_per_input": {str(m["frame_id"]): n for m, n in zip(job["members"], per_input)},
                 "shape": list(master.shape), "biassec": (sections or {}).get("biassec"),
                 "trimsec": (sections or {}).get("trimsec"), "flat_level": norm,
                 "bias_master": (job.get("bias") or {}).get("id"), "dark_master": (job.get("dark") or {}).get("id")}
        return {"id": job["id"], "sha256": digest, "stats": stats}
    except (OSError, ValueError) as exc:
        return {"id": job["id"], "error": f"master {job['id']} ({kind}): {exc}"}


def compare_with_master(job: dict) -> dict:
    """BANZAI's check of new raw calibration frames against the previous master of their kind (runs
    in a worker).

    Parameters
    ----------
    job : dict
        As for :func:`build_master` (``kind``, ``members``, ``bias``, ``dark``), plus ``previous``:
        ``id``, ``path``, ``sha256`` and ``noise`` of the master to compare with.

    Returns
    -------
    dict
        ``results``: per member ``frame_id`` with :func:`obsdb.imaging.calibration.unlike_master`'s
        numbers, or ``error`` (one line: the check is then not made).
    """
    import numpy as np

    from obsdb.imaging.calibration import unlike_master
    from obsdb.imaging.fitsio import read_fits_image

    previous = job["previous"]
    try:
        image = read_fits_image(previous["path"], hash_mode="inline")
        if image.sha256 != previous["sha256"]:
            return {"error": f"{previous['path']}: the previous master changed since it was written"}
        master = np.asarray(image.data, dtype=np.float32)
        corrections = _read_corrections(job)
        results = []
        for member in job["members"]:
            data, _ = _prepared_member(member, job, corrections)
            if data.shape != master.shape:
                return {"error": f"{member['file_name']}: {data.shape} after trim, master {previous['id']} "
                                 f"{master.shape}"}
            results.append({"frame_id": member["frame_id"],
                            **unlike_master(data, master, master_noise=previous.get("noise") or 0.0)})
        return {"results": results}
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}


CALIBRATED_FOLDER = "calibrated"
"""Subfolder of ``--out`` that ``--write-lights`` writes calibrated lights to."""


def calibrated_name(file_name: str) -> str:
    """The calibrated light's file name: ``NAME_cal.fits`` (``.fits.gz``, ``.fit``, ``.fts``, ``.xisf`` dropped)."""
    stem = re.sub(r"\.(fits?|fts)(\.gz)?$|\.xisf$", "", file_name, flags=re.IGNORECASE)
    return f"{stem}_cal.fits"


def _written_from(header, job: dict) -> bool:
    """True when a calibrated light obsdb wrote (``header``) came from this raw file and these masters:
    writing it again would give the same file."""
    from obsdb.imaging.calibration import CALIBRATION_CARDS

    history = {str(line) for line in header.get("HISTORY", [])}
    used = {row["kind"]: row for row in job["rows"] if row.get("master") is not None}
    for kind, card in CALIBRATION_CARDS.items():
        row = used.get(kind)
        if header.get(card) != (row["master"] if row else "none"):
            return False
        if row and f"sha256 {row['sha256']}" not in history:
            return False
    if "dark" in used and header.get("OBSDBDSC") != float(used["dark"].get("scale") or 1.0):
        return False
    return f"sha256 {job['sha256']}" in history


def write_calibrated_light(job: dict) -> dict:
    """Calibrate one light with its masters and write it, trimmed, atomically (runs in a worker).

    Parameters
    ----------
    job : dict
        ``frame_id``, ``path``, ``sha256`` (as catalogued), ``rows`` (its calibration rows that name
        a master), ``target``.

    Returns
    -------
    dict
        ``frame_id`` and ``path`` with ``sha256`` (written) or ``unchanged`` (the file there was written
        by obsdb from this raw file and these masters: left as it is), or ``error`` (one line naming
        the file).
    """
    import warnings

    from astropy.io import fits

    from obsdb.imaging.calibration import (add_calibration_cards, calibrate_with, master_sections, parse_section,
                                           with_sections)
    from obsdb.imaging.fitsio import FitsReadError, atomic_write_fits, read_fits_image

    target = Path(job["target"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if target.exists():
                # Only a calibrated light obsdb wrote for this frame is replaced.
                try:
                    theirs = fits.getheader(target)
                except (OSError, ValueError):
                    theirs = {}
                if theirs.get("OBSDBFID") != job["frame_id"]:
                    return {"frame_id": job["frame_id"], "error": f"{target}: exists and obsdb did not write it; "
                                                                  "not replaced"}
                if _written_from(theirs, job):
                    return {"frame_id": job["frame_id"], "path": str(target), "unchanged": True}
            image = read_fits_image(job["path"], hash_mode="inline")
            if job["sha256"] and image.sha256 != job["sha256"]:
                return {"frame_id": job["frame_id"], "error": f"{job['path']}: changed since it was catalogued "
                                                              "(SHA-256 differs); ingest it again"}
            data = calibrate_with(image.data, image.header, job["rows"], keep_geometry=False)
            own = with_sections(image.header, master_sections(job["rows"]))
            info = {"biassec": own.get("BIASSEC"), "trimsec": own.get("TRIMSEC") or own.get("DATASEC")}
            header = image.header.copy()
            for key in ("BZERO", "BSCALE", "BLANK", "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM",
                        "BIASSEC", "TRIMSEC", "DATASEC"):
                header.remove(key, ignore_missing=True, remove_all=True)
            if info["trimsec"]:
                rows, cols = parse_section(info["trimsec"], image.data.shape)
                # The trim moves the pixel origin: the WCS reference pixel follows, and LTV1/LTV2 say by
                # how much (IRAF's convention: physical = image - LTV).
                for axis, offset in (("1", cols.start), ("2", rows.start)):
                    if f"CRPIX{axis}" in header:
                        header[f"CRPIX{axis}"] = float(header[f"CRPIX{axis}"]) - offset
                    header[f"LTV{axis}"] = (-offset, "trim offset (physical = image - LTV)")
                header["OBSDBTRM"] = (info["trimsec"], "section of the raw frame kept")
            if info["biassec"]:
                header["OBSDBOSC"] = (info["biassec"], "overscan subtracted (median per line)")
            header["OBSDBFID"] = (job["frame_id"], "obsdb catalog id of the raw light")
            add_calibration_cards(header, job["rows"])
            header.add_history(f"obsdb: calibrated from {Path(job['path']).name}"[:72])
            header.add_history(f"sha256 {job['sha256']}")
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = atomic_write_fits(target, fits.HDUList([fits.PrimaryHDU(data, header=header)]))
        return {"frame_id": job["frame_id"], "path": str(target), "sha256": digest}
    except (OSError, ValueError, FitsReadError) as exc:
        return {"frame_id": job["frame_id"], "error": f"{job['path']}: {exc}"}


def usage_by_band(lights: list[dict], matches: list[dict]) -> list[str]:
    """One line per band: which masters its lights use, and how many lights have none of a kind.  Pure.

    E.g. ``'V: 5 lights; bias 1 (5), dark 2 (5, 2 scaled), flat 3 (5)'`` or ``'B: 2 lights; bias 1 (2),
    no dark (2), no flat (2: no flat for B)'``.
    """
    band_of = {light["id"]: light.get("band") or "-" for light in lights}
    per_band: dict[str, dict] = {}
    for row in matches:
        band = band_of.get(row["frame_id"], "-")
        entry = per_band.setdefault(band, {"lights": set(), "kinds": {}})
        entry["lights"].add(row["frame_id"])
        kind = entry["kinds"].setdefault(row["kind"], {"masters": {}, "none": [], "scaled": 0})
        if row["master_id"] is None:
            kind["none"].append(row["reason"].split(";")[0].removeprefix("uncalibrated: "))
        else:
            kind["masters"][row["master_id"]] = kind["masters"].get(row["master_id"], 0) + 1
            if row["kind"] == "dark" and row.get("scale") not in (None, 1.0):
                kind["scaled"] += 1
    lines = []
    for band in sorted(per_band):
        entry, parts = per_band[band], []
        for kind in CALIBRATION_IMAGE_TYPES:
            info = entry["kinds"].get(kind)
            if info is None:
                continue
            for master_id, count in sorted(info["masters"].items()):
                scaled = f", {info['scaled']} scaled" if kind == "dark" and info["scaled"] else ""
                parts.append(f"{kind} {master_id} ({count}{scaled})")
            if info["none"]:
                parts.append(f"no {kind} ({len(info['none'])}: {info['none'][0]})")
        lines.append(f"{band}: {len(entry['lights'])} lights; " + ", ".join(parts))
    return lines


MACHINE_BAD_PREFIXES = ("superseded by master", "not built:", "not written:")
"""Reasons obsdb itself gives when it marks a master bad (anything else is a person's verdict)."""


def _machine_bad(master: dict) -> bool:
    return (master.get("bad_reason") or "").startswith(MACHINE_BAD_PREFIXES)


def _reuse(existing: list[dict], members: list[dict], key: tuple, report: CalibrateReport) -> bool:
    """True (and the reuse reported) when a master of exactly these members, by this algorithm, is
    written and its file unchanged."""
    from obsdb.imaging.calibration import MASTER_VERSION
    from obsdb.pipeline.outputs import file_sha256

    same = [m for m in existing if not m["bad"] and m["written"] and m["algorithm"] == MASTER_VERSION
            and (m["night_id"], m["instrument_id"], m["readout"]) == key[:3]
            and _same_members(m, members) and Path(m["path"]).is_file()
            and file_sha256(m["path"]) == m["sha256"]]
    if same:
        report.reused.append({"id": same[-1]["id"], "kind": members[0]["type"], "key": _key_text(members)})
    return bool(same)


def _same_members(master: dict, members: list[dict]) -> bool:
    have = {(m["frame_id"], m["sha256"]) for m in master["members"]}
    return have == {(f["id"], f["sha256"]) for f in members}


def previous_master(members: list[dict], masters: list[dict]) -> dict | None:
    """The master a new set of calibration frames is compared with (BANZAI): of their kind and
    read-out, built before them from none of them, not bad, of the same exposure (darks) or band
    (flats), the nearest in time; None when there is none.  Its validity window does not matter
    here: last week's master bias still shows a light leak in tonight's frames."""
    from obsdb.pipeline.calib_match import EXPTIME_TOLERANCE, _gate

    kind = members[0]["type"]
    ids = {f["id"] for f in members}
    dates = [f["date_obs"] for f in members if f.get("date_obs") is not None]
    first = min(dates) if dates else None
    rep = _representative(members)
    chosen = []
    for master in masters:
        if master["kind"] != kind or ids & {m["frame_id"] for m in master["members"]}:
            continue
        if first is None or master.get("time") is None or master["time"] >= first:
            continue
        if kind == "dark" and abs((master.get("exptime") or 0) - (rep.get("exptime") or 0)) > EXPTIME_TOLERANCE:
            continue
        if _gate(rep, {**master, "valid_from": None, "valid_to": None}, has_bias=True) is None:
            chosen.append(master)
    return max(chosen, key=lambda m: (m["time"], m["id"])) if chosen else None


def _without_unlike_frames(db, kind: str, candidates: list, usable: list[dict], executor, report: CalibrateReport,
                           author: str, nights, sections: dict | None = None) -> list:
    """Compare each set about to become a master with the previous master of its kind, tag the
    frames unlike it (``calib-unlike-master``, with the numbers) and return the sets without the
    frames that are now rejected (a person's accept still wins); a set left too small is refused."""
    from obsdb.catalog.masters import MasterStore
    from obsdb.catalog.status import MASTER_COMPARISON_TAG
    from obsdb.catalog.stores import CalibrationStore
    from obsdb.imaging.calibration import UNLIKE_FRACTION
    from obsdb.pipeline.executors import TaskFailed

    jobs = []
    for members, corrections, _ in candidates:
        previous = previous_master(members, usable)
        if previous is None:
            continue
        jobs.append({"kind": kind, "bias": corrections.get("bias"), "dark": corrections.get("dark"), "sections": sections,
                     "previous": {"id": previous["id"], "path": previous["path"], "sha256": previous["sha256"],
                                  "noise": (previous.get("stats") or {}).get("noise"), "night": previous["night"]},
                     "members": [{"frame_id": f["id"], "path": f["path"], "sha256": f["sha256"],
                                  "file_name": f["file_name"], "exptime": f.get("exptime")} for f in members]})
    if not jobs:
        return candidates
    wanted, evidence, compared = {}, {}, []
    for job, result in executor.map(compare_with_master, jobs):
        if isinstance(result, (TaskFailed, Exception)) or "error" in result:
            reason = str(result) if not isinstance(result, dict) else result["error"]
            report.refused.append(f"not compared with master {job['previous']['id']}: {reason}")
            continue
        previous = job["previous"]
        for row in result["results"]:
            compared.append(row["frame_id"])
            if not row["fraction"] > UNLIKE_FRACTION:
                continue
            wanted[(row["frame_id"], MASTER_COMPARISON_TAG)] = (
                f"{MASTER_COMPARISON_TAG}: {100 * row['fraction']:.1f}% of its pixels lie more than "
                f"{row['sigma']:g} sigma ({row['sigma']:g} x {row['scatter']:.3g}) from master {kind} "
                f"{previous['id']} of {previous['night']} (limit {100 * UNLIKE_FRACTION:g}%)")
            evidence[(row["frame_id"], MASTER_COMPARISON_TAG)] = {
                "value": row["fraction"], "threshold": UNLIKE_FRACTION, "sigma": row["sigma"],
                "scatter": row["scatter"], "pixels": row["pixels"], "yardstick": {"master": previous["id"]}}
    report.compared += len(compared)
    checks = CalibrationStore(db)
    checks.apply_calibration_tags(compared, wanted, evidence, names=(MASTER_COMPARISON_TAG,), author=author,
                                  retract_reason="no longer holds: like the previous master")
    ids = {f["id"] for members, _, _ in candidates for f in members}
    status = {f["id"]: f for f in MasterStore(db).calibration_inputs(nights=nights) if f["id"] in ids}
    for (frame_id, _), reason in wanted.items():
        report.unlike.append((status[frame_id]["label"] if frame_id in status else str(frame_id), reason))
    kept = []
    for members, corrections, key in candidates:
        members = [f for f in members if status.get(f["id"], {}).get("status") != "rejected"]
        if len(members) < MIN_FRAMES:
            report.refused.append(f"{_key_text(members) if members else kind}: {len(members)} frames left after "
                                  f"the comparison with the previous master (at least {MIN_FRAMES} needed)")
            continue
        kept.append((members, corrections, key))
    return kept


def calibrate(db, out: str | os.PathLike, *, nights=None, executor=None, author: str = "obsdb",
              write_lights: bool = False, remeasure: bool = True, sections: dict | None = None) -> CalibrateReport:
    """Build the masters of ``nights`` into ``out`` and match every light of ``nights`` to them.

    Then the lights whose masters changed since their stars and metrics were measured are measured
    again on their calibrated pixels (``remeasure``; the same as `obsdb qa` would), and with
    ``write_lights`` every light with a master is written calibrated to ``out/calibrated/``.

    Masters already built from the same members by the same algorithm, whose files are unchanged,
    are reused; a group whose members changed gets a new master and the old one is marked bad
    ("superseded").  Files in ``out`` that obsdb did not write are never replaced.  ``sections``
    (``biassec``, ``trimsec``: ``[calibration]`` of obsdb.toml) stand in for the cards of frames whose
    header gives none; a master records the sections it was built with, and its lights use them.

    Returns
    -------
    CalibrateReport

    Raises
    ------
    ObsdbError
        When ``out`` holds a file obsdb did not write under a master's name, or is not a folder.
    """
    from obsdb.catalog.masters import MasterStore
    from obsdb.catalog.stores import QualityStore, RenderStore
    from obsdb.pipeline.calib_match import match_lights
    from obsdb.pipeline.executors import executor_for

    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ObsdbError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    store, outputs = MasterStore(db), RenderStore(db)
    executor = executor_for(executor, 1)
    report = CalibrateReport()
    groups, report.refused = plan_masters(store.calibration_inputs(nights=nights))

    # Biases first, then darks (bias-subtracted), then flats (both): each kind uses the masters before it.
    for kind in CALIBRATION_IMAGE_TYPES:
        existing = [m for m in store.masters() if m["kind"] == kind]
        usable = [m for m in store.masters() if not m["bad"] and m["written"]]
        candidates = _candidate_sets(kind, groups, existing, usable, report)
        candidates = _without_unlike_frames(db, kind, candidates, usable, executor, report, author, nights,
                                            sections)
        todo, jobs_meta = _new_master_rows(kind, candidates, existing, report, author)
        if not todo:
            continue
        ids = store.create_masters(todo)
        paths = _claim_master_paths(store, outputs, kind, ids, todo, jobs_meta, out, author)
        jobs = _master_jobs(kind, ids, todo, jobs_meta, paths, sections)
        _build_masters(store, executor, kind, jobs, jobs_meta, existing, report, author)

    lights = store.lights(nights=nights)
    # Bad masters too: the gates refuse them, and the reason then says so.
    report.matches = match_lights(lights, store.masters())
    store.store_matches(report.matches)
    report.bands = usage_by_band(lights, report.matches)
    if remeasure:
        from obsdb.pipeline.qa import measure_missing

        report.remeasured = measure_missing(QualityStore(db), nights=nights, executor=executor,
                                            calibration_only=True, failed=report.not_remeasured)
    if write_lights:
        _write_lights(store, lights, out / CALIBRATED_FOLDER, executor, report)
    uncalibrated = report.uncalibrated()
    outputs.record_event(author, "calibrate",
                         f"{len(report.built)} masters built, {len(report.reused)} reused, "
                         f"{len(report.failed)} failed; {len(lights)} lights matched "
                         f"({uncalibrated['bias']} without bias, {uncalibrated['dark']} without dark, "
                         f"{uncalibrated['flat']} without flat)",
                         details={"built": [b["id"] for b in report.built], "out": str(out),
                                  "remeasured": report.remeasured, "lights_written": len(report.lights_written),
                                  "refused": report.refused[:50], "failed": report.failed[:50]})
    return report


def _candidate_sets(kind: str, groups: list[list[dict]], existing: list[dict], usable: list[dict],
                    report: CalibrateReport) -> list[tuple]:
    """The sets of ``kind`` that need a master: ``(members, corrections, key)``, the corrections being
    the bias (and dark) masters a dark (a flat) is made with.  Sets whose master exists unchanged are
    reused; a set whose master a person marked bad is refused, with the reason."""
    from obsdb.imaging.calibration import MASTER_VERSION
    from obsdb.pipeline.calib_match import match_light

    candidates = []
    for members in (g for g in groups if g[0]["type"] == kind):
        key = _group_key(members[0])
        if _reuse(existing, members, key, report):
            continue
        # A person marked a master of exactly these frames bad: building it again would bring it back.
        judged = [m for m in existing if m["bad"] and not _machine_bad(m) and m["algorithm"] == MASTER_VERSION
                  and _same_members(m, members)]
        if judged:
            m = judged[-1]
            report.refused.append(f"{_key_text(members)}: master {m['id']} of these frames was marked bad by "
                                  f"{m['bad_by']} ({m['bad_reason']}); not rebuilt (reject a frame, or add "
                                  "frames, for another master)")
            continue
        corrections = {}
        if kind in ("dark", "flat"):
            wanted = ("bias",) if kind == "dark" else ("bias", "dark")
            for row in match_light(_representative(members), usable):
                if row["kind"] in wanted and row["master_id"] is not None:
                    ref = next(m for m in usable if m["id"] == row["master_id"])
                    corrections[row["kind"]] = {"id": ref["id"], "path": ref["path"], "sha256": ref["sha256"],
                                                "exptime": ref["exptime"]}
        candidates.append((members, corrections, key))
    return candidates


def _new_master_rows(kind: str, candidates: list[tuple], existing: list[dict], report: CalibrateReport,
                     author: str) -> tuple[list[dict], list[tuple]]:
    """The catalog rows of the masters to build (and their candidate sets, in the same order)."""
    from obsdb.catalog.masters import median_or_none
    from obsdb.imaging.calibration import CLIP_ITERS, CLIP_SIGMA, MASTER_VERSION

    method = f"sigma-clipped median ({CLIP_SIGMA:g} x MAD sigma floored at the typical std, {CLIP_ITERS} iterations)"
    todo, jobs_meta = [], []
    for members, corrections, key in candidates:
        if _reuse(existing, members, key, report):      # the set less its frames unlike the last master
            continue
        rep = _representative(members)
        dates = [f["date_obs"] for f in members if f.get("date_obs") is not None]
        todo.append({
            "kind": kind, "night_id": key[0], "instrument_id": key[1], "readout": key[2],
            "band": members[0].get("band") if kind == "flat" else None,
            "exptime": median_or_none(f.get("exptime") for f in members) if kind == "dark" else None,
            "ccd_temp": rep["ccd_temp"], "n_frames": len(members), "method": method,
            "algorithm": MASTER_VERSION,
            "valid_from": min(dates) - VALIDITY[kind] if dates else None,
            "valid_to": max(dates) + VALIDITY[kind] if dates else None,
            "author": author, "members": [(f["id"], f["sha256"]) for f in members]})
        jobs_meta.append((members, corrections, key))
    return todo, jobs_meta


def _claim_master_paths(store, outputs, kind: str, ids: list[int], todo: list[dict], jobs_meta: list[tuple],
                        out: Path, author: str) -> dict[int, str]:
    """Name each new master's file in ``out`` and claim the names, refusing (and marking the masters bad)
    where a catalogued frame or a file obsdb did not write holds one."""
    from obsdb.pipeline.outputs import refuse_foreign, remove_own_leftovers

    paths = {}
    for master_id, row, (members, _, _) in zip(ids, todo, jobs_meta):
        detail = row["band"] if kind == "flat" else (f"{row['exptime']:g}s" if kind == "dark" else None)
        name = "-".join(_slug(p) for p in ("master", kind, members[0]["night"], detail, master_id) if p)
        paths[master_id] = str(out / f"{name}.fits")
    # What obsdb wrote there before, read before these masters' own rows name the paths (a pending
    # row of our own would make a user's file there look like our half-done work).
    owned = store.owned_files(list(paths.values()))
    for path, digests in outputs.written_outputs(list(paths.values())).items():
        owned.setdefault(path, set()).update(digests)
    inputs = outputs.catalogued_among(list(paths.values()))
    if inputs:
        store.mark_bad(ids, "not written: its path is a catalogued input frame", by=author)
        raise ObsdbError(f"{sorted(inputs)[0]}: is a catalogued frame; refusing to write a master over it")
    try:
        refuse_foreign(paths.values(), owned, what="calibrate")
    except ObsdbError:
        store.mark_bad(ids, "not written: a file obsdb did not write holds its name", by=author)
        raise
    store.set_paths(paths)
    remove_own_leftovers(paths.values())
    return paths


def _master_jobs(kind: str, ids: list[int], todo: list[dict], jobs_meta: list[tuple], paths: dict[int, str],
                 sections: dict | None) -> list[dict]:
    """What a worker needs to build each master (:func:`build_master`)."""
    jobs = []
    for master_id, row, (members, corrections, key) in zip(ids, todo, jobs_meta):
        cards = {"IMAGETYP": (f"MASTER {kind.upper()}", "obsdb master calibration frame"),
                 "FILTER": (row["band"], "band of the flats") if kind == "flat" else (None, ""),
                 "EXPTIME": (row["exptime"], "exposure of the darks, s") if kind == "dark" else (None, ""),
                 "CCD-TEMP": (row["ccd_temp"], "median detector temperature of the members, C"),
                 "OBSDBRDO": (row["readout"][:68], "read-out key")}
        jobs.append({"id": master_id, "kind": kind, "path": paths[master_id], "cards": cards, "sections": sections,
                     "bias": corrections.get("bias"), "dark": corrections.get("dark"),
                     "members": [{"frame_id": f["id"], "path": f["path"], "sha256": f["sha256"],
                                  "file_name": f["file_name"], "exptime": f.get("exptime")} for f in members]})
    return jobs


def _build_masters(store, executor, kind: str, jobs: list[dict], jobs_meta: list[tuple], existing: list[dict],
                   report: CalibrateReport, author: str) -> None:
    """Build the masters through the executor; record each, or mark it bad with the reason; mark the
    masters each one supersedes bad."""
    from obsdb.pipeline.executors import TaskFailed

    by_id = {job["id"]: (job, members, key) for job, (members, _, key) in zip(jobs, jobs_meta)}
    for job, result in executor.map(build_master, jobs):
        if isinstance(result, (TaskFailed, Exception)) or "error" in result:
            reason = str(result) if not isinstance(result, dict) else result["error"]
            store.mark_bad([job["id"]], f"not built: {reason}", by=author)
            report.failed.append(reason)
            continue
        store.finish_master(job["id"], result["sha256"], result["stats"])
        key = by_id[job["id"]][2]
        older = [m["id"] for m in existing if not m["bad"] and m["kind"] == kind
                 and (m["night_id"], m["instrument_id"], m["readout"]) == key[:3]
                 and (m["band"] if kind == "flat" else None) == (key[4] if kind == "flat" else None)
                 and (kind != "dark" or round(m["exptime"] or 0, DARK_SECONDS_DECIMALS) == key[4])]
        if older:
            store.mark_bad(older, f"superseded by master {job['id']} (rebuilt from the current members)",
                           by=author)
        report.built.append({"id": job["id"], "kind": kind, "path": job["path"],
                             "n_frames": len(job["members"]), "key": _key_text(by_id[job["id"]][1])})


def _write_lights(store, lights: list[dict], folder: Path, executor, report: CalibrateReport) -> None:
    """Write every light that has a master calibrated into ``folder`` (through the executor)."""
    from obsdb.pipeline.executors import TaskFailed

    calibrations = store.light_calibrations([light["id"] for light in lights])
    jobs, names = [], {}
    for light in lights:
        rows = calibrations.get(light["id"])
        if not rows:
            continue
        name = calibrated_name(light["file_name"])
        if name in names:       # two nights' files of one name: the frame id tells them apart
            name = calibrated_name(f"{Path(name).stem}-{light['id']}")
        names[name] = light["id"]
        jobs.append({"frame_id": light["id"], "path": light["path"], "sha256": light["sha256"], "rows": rows,
                     "target": str(folder / name)})
    for job, result in executor.map(write_calibrated_light, jobs):
        if isinstance(result, (TaskFailed, Exception)) or "error" in result:
            report.lights_failed.append(str(result) if not isinstance(result, dict) else result["error"])
        elif result.get("unchanged"):
            report.lights_unchanged.append(result["path"])
        else:
            report.lights_written.append(result["path"])
