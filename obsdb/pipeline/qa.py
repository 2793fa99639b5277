"""QA: quality metrics for every light frame, transparency against the band's
reference, and automatic tags from the rules in :mod:`obsdb.pipeline.qa_rules`.

Re-running with other thresholds retracts the automatic tags that no longer
hold (the retraction names the new thresholds) and keeps them in the history.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

from obsdb.text import plural
from obsdb.errors import ObsdbError
from obsdb.config import login_name

RULE_AUTHOR = "obsdb"
"""Author recorded on automatic tags."""

from obsdb.pipeline.qa_rules import TAGS as QA_TAGS  # noqa: E402  (the rules own the names)

HISTORY_EXPTIME_TOLERANCE = 0.25
"""History frames count as the same exposure when within this fraction of the group's exposure time."""


@dataclass
class QaReport:
    """What a QA run did."""

    measured: int = 0
    assessed: int = 0
    added: list[tuple[str, str, str]] = field(default_factory=list)
    retracted: list[tuple[str, str, str]] = field(default_factory=list)
    references: dict[str, str | None] = field(default_factory=dict)
    """Transparency reference per judged group (``night band``, with the instrument and target when
    the night holds several)."""
    thresholds: dict = field(default_factory=dict)
    not_measured: list[tuple[str, str]] = field(default_factory=list)
    """Files whose metrics could not be computed now (gone or damaged since ingest), with the reason;
    they are judged on the metrics they had, if any."""
    nights: list[str] = field(default_factory=list)
    """The nights judged."""
    yardsticks: dict[str, str] = field(default_factory=dict)
    """What each judged group was measured against (its own night, or the instrument's history)."""
    kept: list[str] = field(default_factory=list)
    """Groups judged before against the instrument's history and left as they were (a plain `qa`
    never rewrites them; name the night with --recompute to re-judge)."""
    weighted: int = 0
    """Frames whose stacking weights were computed (:mod:`obsdb.pipeline.weights`)."""


def measure_missing(store, *, nights=None, band: str | None = None, recompute: bool = False, workers: int = 1,
                    progress: Callable | None = None, failed: list | None = None, executor=None,
                    calibration_only: bool = False) -> int:
    """Compute metrics and star lists for frames that lack them, or whose calibration changed since they
    were measured (one read each; lights with masters are measured on calibrated pixels); returns how many.

    ``store`` is QA's :class:`obsdb.catalog.stores.QualityStore`.  Files that cannot be read now are
    appended to ``failed`` as ``(path, reason)``.  With ``calibration_only`` only the lights whose
    calibration changed since they were measured.
    """
    from obsdb.catalog.masters import MasterStore
    from obsdb.config import IngestConfig
    from obsdb.pipeline.ingest import measure_many

    todo = {} if calibration_only else store.frames_needing_metrics(nights=nights, band=band, recompute=recompute)
    # Lights whose calibration changed since they were measured (or that gained one) are measured again,
    # on the pixels calibrated with their current masters.
    masters = MasterStore(store.db)
    todo.update(masters.lights_measured_otherwise(nights=nights, band=band))
    if not todo:
        return 0
    calibrations = masters.light_calibrations(todo.values())
    calibrations = {path: calibrations[fid] for path, fid in todo.items() if fid in calibrations}
    config = IngestConfig(measure_quality=True)
    batch = []
    measured = 0
    for done, measurement in enumerate(measure_many(list(todo), config, workers, executor=executor,
                                                    calibrations=calibrations), start=1):
        if measurement.ok and measurement.metrics:
            batch.append((todo[measurement.path], measurement))
            measured += 1
        elif failed is not None:
            failed.append((measurement.path, measurement.error or "no pixels to measure"))
        if progress:
            progress(done, len(todo), measurement.path.rsplit("/", 1)[-1])
        if len(batch) >= 25:
            store.store_quality(batch)
            batch.clear()
    if batch:
        store.store_quality(batch)
    return measured


REFERENCE_BRIGHTEST = 20
"""Brightest stars of a frame whose median flux per second ranks it as a transparency reference
(:func:`band_reference`)."""


def compared_stars(stars):
    """The stars of a stored list that QA compares: the :data:`REFERENCE_BRIGHTEST` brightest (the
    reference's ranking) and those :func:`obsdb.pipeline.metrics.transparency_stars` takes, in their
    stored order, as a copy.

    QA holds a night's frames until it has judged them; kept whole, their lists grew the process by
    26 kB a frame of 2048 px (13 MB for 500 frames) for the 60-80 stars per frame it looks at.
    """
    import numpy as np

    from obsdb.pipeline.metrics import TRANSPARENCY_STARS

    if stars is None or len(stars) == 0:
        return stars
    flux = np.asarray(stars["flux"], dtype=float)
    usable = np.flatnonzero(~stars["saturated"]) if "saturated" in stars.dtype.names else np.arange(len(stars))
    brightest_usable = usable[np.argsort(flux[usable])[::-1][:TRANSPARENCY_STARS]]
    brightest = np.argsort(flux)[::-1][:REFERENCE_BRIGHTEST]
    return stars[np.union1d(brightest_usable, brightest)]


def band_reference(frames: list):
    """The group's transparency reference: among frames with a background no higher
    than the group median (clear sky), the one whose brightest stars are brightest
    per second of exposure (frames are :class:`obsdb.catalog.records.QaFrame`)."""
    candidates = [f for f in frames if f.stars is not None and len(f.stars)]
    if not candidates:
        return None
    backgrounds = [f.background for f in candidates if f.background is not None]
    median_bkg = statistics.median(backgrounds) if backgrounds else None
    clear = [f for f in candidates if median_bkg is None or (f.background is not None
                                                             and f.background <= median_bkg)] or candidates
    # Trailed or defocused stars spread their flux and lose faint stars: prefer round, sharp ones.
    sharp = [f for f in clear if (f.elongation or 1.0) < 1.3]
    if sharp:
        best = min(f.fwhm or float("inf") for f in sharp)
        clear = [f for f in sharp if (f.fwhm or float("inf")) <= 1.3 * best] or sharp

    def brightness(frame) -> float:
        fluxes = sorted((float(v) for v in frame.stars["flux"]), reverse=True)[:REFERENCE_BRIGHTEST]
        return statistics.median(fluxes) / (frame.exptime or 1.0) if fluxes else 0.0

    return max(clear, key=brightness)


def run_qa(db, *, night=None, band: str | None = None, thresholds: dict | None = None,
           recompute: bool = False, workers: int = 1, user: str | None = None,
           progress: Callable | None = None) -> QaReport:
    """Measure, compute transparency, apply the rules and write the automatic tags with their evidence.

    Frames are judged in groups of one night, one instrument, one band and
    one target.  A group of at least :data:`obsdb.pipeline.qa_rules.MIN_YARDSTICK_FRAMES`
    frames is its own yardstick (clear background, best FWHM, typical star count,
    transparency reference); a smaller one is judged against itself plus the
    instrument's history in the catalog (other nights, same instrument and band, and the
    same exposure time within :data:`HISTORY_EXPTIME_TOLERANCE`), and the evidence says so.
    Judging one night never rewrites another's tags: a plain run (no ``night``, no
    ``recompute``) leaves a small group that was judged before as it was.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The open catalog's database handle (:attr:`obsdb.Catalog.db`).
    night : str or list of str, optional
        Only these nights (default: every night, each on its own).
    band : str, optional
        Only this band.
    thresholds : dict, optional
        Overrides of :class:`obsdb.pipeline.qa_rules.QaThresholds` (from obsdb.toml or a plan).
    recompute : bool
        Re-measure metrics even where they exist, and re-judge small groups judged before.
    workers : int
        Processes for the pixel work.

    Returns
    -------
    QaReport

    Raises
    ------
    ObsdbError
        For an unknown threshold or a value of the wrong type or range.
    """
    from obsdb.catalog.nina import NinaStore
    from obsdb.catalog.stores import CalibrationStore, QualityStore
    from obsdb.imaging.stars import transparency
    from obsdb.pipeline.metrics import transparency_stars
    from obsdb.pipeline.qa_rules import MIN_YARDSTICK_FRAMES, QaThresholds, evaluate

    store = QualityStore(db)
    user = user or login_name()
    try:
        limits = QaThresholds.from_mapping(thresholds or {})
    except ValueError as exc:
        raise ObsdbError(f"[qa] thresholds: {exc}") from None
    report = QaReport(thresholds=_as_dict(limits))
    report.measured = measure_missing(store, nights=night, band=band, recompute=recompute, workers=workers,
                                      failed=report.not_measured, progress=progress)
    frames = store.qa_frames(nights=night, band=band, keep_stars=compared_stars)
    # N.I.N.A.'s FocuserPosition (obsdb import nina) stands in for a focuser card the header lacks.
    nina = NinaStore(db)
    nina_focus = nina.focuser_positions(f.id for f in frames)
    groups: dict[tuple, list] = {}
    for frame in frames:
        groups.setdefault(frame.group_key, []).append(frame)
    instruments, targets = {}, {}
    for night_name, instrument, _, target in groups:
        instruments.setdefault(night_name, set()).add(instrument)
        targets.setdefault(night_name, set()).add(target)
    histories: dict[tuple, list] = {}
    results = []
    judged = []
    wanted: dict[tuple[int, str], str] = {}
    evidence: dict[tuple[int, str], dict] = {}
    for key, members in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        night_name, instrument, band_name, target = key
        label = f"{night_name} {band_name or '-'}"
        if len(instruments[night_name]) > 1:
            label += f" {instrument or 'unknown instrument'}"
        if len(targets[night_name]) > 1:
            label += f" {target or '-'}"
        small = len(members) < MIN_YARDSTICK_FRAMES
        if small and night is None and not recompute and all(f.assessed for f in members):
            report.kept.append(label)
            continue
        history = []
        if small:
            if (instrument, band_name) not in histories:
                # Metrics only: star lists are read below for the frames of the same target alone.
                histories[(instrument, band_name)] = store.qa_frames(
                    instrument=instrument, band=band_name, stars=False) if instrument is not None else []
            history = _same_exposure([h for h in histories[(instrument, band_name)] if h.night != night_name
                                      and h.band == band_name], members)
        same_target = [h for h in history if h.object == target]
        if same_target:
            wanted_ids = {h.id for h in same_target}
            same_target = [h for h in store.qa_frames(nights=sorted({h.night for h in same_target}),
                                                      instrument=instrument, band=band_name,
                                                      keep_stars=compared_stars)
                         if h.id in wanted_ids]
        candidates = members + same_target
        reference = band_reference(candidates)
        report.references[label] = reference.label if reference else None
        reference_stars = transparency_stars(reference.stars) if reference else None
        inputs = []
        for frame, sky in zip(members, _sun_and_moon(members)):
            value = None
            if reference is not None and frame.stars is not None and len(frame.stars) and (
                    reference.id != frame.id or len(candidates) > 1):
                ratio = transparency(transparency_stars(frame.stars), reference_stars)
                scale = (reference.exptime or 1.0) / (frame.exptime or 1.0)
                value = ratio * scale if ratio == ratio else None
            results.append((frame.id, value, reference.id if reference else None))
            inputs.append(_rule_input(frame, band_name, value, sky, nina_focus))
        if history:
            nina_focus.update(nina.focuser_positions(h.id for h in history if h.id not in nina_focus))
        pool = inputs + [_rule_input(h, band_name, None, {}, nina_focus) for h in history] if small else None
        yardstick = _yardstick(members, history, band_name)
        report.yardsticks[label] = yardstick["text"]
        judged.append(night_name)
        for d in evaluate(inputs, limits, yardstick=pool, yardstick_text=yardstick["text"] if small else None):
            wanted[(d.key, d.tag)] = d.reason
            evidence[(d.key, d.tag)] = {**d.evidence, "yardstick": {k: v for k, v in yardstick.items()
                                                                     if k != "text"}}
    from obsdb.pipeline.streak_rules import SATELLITE_TAG, satellite_decisions

    # Streaks were found at ingest; the frames judged now get (or lose) their satellite tag.
    for frame_id, tag, reason, proof in satellite_decisions(store.frame_streaks([r[0] for r in results])):
        wanted[(frame_id, tag)] = reason
        evidence[(frame_id, tag)] = proof
    change = store.apply_qa(results, wanted, names=QA_TAGS + (SATELLITE_TAG,), author=RULE_AUTHOR,
                            retract_reason=f"no longer holds with thresholds {_brief(report.thresholds)}",
                            evidence=evidence)
    labels = {f.id: f.label for f in frames}
    report.retracted.extend((labels[frame_id], name, reason) for frame_id, name, reason in change.retracted
                            if (frame_id, name) not in wanted)
    report.added.extend((labels[frame_id], name, reason) for frame_id, name, reason in change.added)
    report.assessed = len(results)
    from obsdb.pipeline.calib_checks import check_calibration  # bias, dark, flat: their own rules

    calibration = check_calibration(CalibrationStore(db), nights=night, author=RULE_AUTHOR)
    report.added.extend(calibration.added)
    report.retracted.extend(calibration.retracted)
    report.nights = sorted(set(judged))
    from obsdb.pipeline.weights import compute_weights  # relative to each set: after its metrics are final

    report.weighted = compute_weights(db, nights=night)
    store.record_event(user, "qa", f"{plural(report.assessed, 'frame')} assessed, "
                                   f"{plural(len(report.added), 'tag')} added, {len(report.retracted)} retracted",
                       details={"nights": report.nights, "band": band, "thresholds": report.thresholds,
                                "references": report.references, "yardsticks": report.yardsticks,
                                "kept": report.kept})
    return report


def _same_exposure(history: list, members: list) -> list:
    """The history frames with the group's exposure time (within the tolerance); all when unknown."""
    times = [f.exptime for f in members if f.exptime]
    if not times:
        return history
    exptime = statistics.median(times)
    return [h for h in history if h.exptime and abs(h.exptime - exptime) <= HISTORY_EXPTIME_TOLERANCE * exptime]


def _yardstick(members: list, history: list, band_name) -> dict:
    """What a group is judged against, for the evidence and the reasons."""
    from obsdb.pipeline.qa_rules import MIN_YARDSTICK_FRAMES

    times = sorted({f.exptime for f in members if f.exptime})
    exptime = times[0] if len(times) == 1 else None
    nights = sorted({f.night for f in members})
    band = band_name or "-"
    if len(members) >= MIN_YARDSTICK_FRAMES:
        return {"kind": "night", "nights": nights, "n_frames": len(members), "band": band_name,
                "exptime": exptime, "text": f"band {band}"}
    if not history:
        kind = "night" if len(members) > 1 else "none"
        text = (f"night {nights[0]} band {band} ({len(members)} frames, no instrument history)" if len(members) > 1
                else "none")
        return {"kind": kind, "nights": nights, "n_frames": len(members), "band": band_name, "exptime": exptime,
                "text": text}
    others = sorted({h.night for h in history})
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    seconds = f", {exptime:g} s" if exptime else ""
    return {"kind": "instrument-history", "nights": nights + others, "n_frames": len(members) + len(history),
            "band": band_name, "exptime": exptime,
            "text": f"the instrument's history (band {band}{seconds}: {plural(len(history), 'frame')} of {shown} "
                    f"with this night's {len(members)})"}


def _sun_and_moon(members: list) -> list[dict]:
    """Sun and Moon for each frame ({} with a ``sky_note`` when they cannot be computed)."""
    from obsdb.imaging.sky import site_from_header, sun_and_moon, target_from_header

    out: list[dict] = [{} for _ in members]
    by_site: dict[tuple, list[int]] = {}
    for i, frame in enumerate(members):
        site = frame.site or site_from_header(frame.header)
        if site is None:
            out[i] = {"sky_note": "no site: no SITELAT/SITELONG-like card and no site for the night"}
        elif frame.date_obs is None:
            out[i] = {"sky_note": "no time of observation"}
        else:
            by_site.setdefault(tuple(site), []).append(i)
    for site, indices in by_site.items():
        try:
            skies = sun_and_moon([members[i].date_obs for i in indices], *site,
                                 targets=[target_from_header(members[i].header, members[i].shape) for i in indices])
        except Exception as exc:  # an unusable site or time: say so, judge without the Sun and Moon
            for i in indices:
                out[i] = {"sky_note": f"Sun and Moon not computable ({exc})"}
            continue
        for i, sky in zip(indices, skies):
            out[i] = sky
    return out


NINA_FOCUS_CARD = "N.I.N.A. FocuserPosition"
"""How a focuser position imported from N.I.N.A.'s ImageMetaData.csv is named in a reason."""


def _rule_input(frame, band_name, transparency_value, sky: dict, nina_focus: dict | None = None):
    from obsdb.imaging.sky import focus_from_header
    from obsdb.pipeline.qa_rules import FrameMetricsInput

    focus = focus_from_header(frame.header)
    if focus is None and nina_focus and frame.id in nina_focus:
        focus = (NINA_FOCUS_CARD, float(nina_focus[frame.id]))
    when = frame.date_obs.timestamp() if frame.date_obs is not None else None
    return FrameMetricsInput(
        key=frame.id, band=band_name, n_stars=frame.n_stars, fwhm=_nan(frame.fwhm), hfd=_nan(frame.hfd),
        elongation=_nan(frame.elongation), background=_nan(frame.background),
        transparency=_nan(transparency_value), airmass=frame.airmass, exptime=frame.exptime, time=when,
        focus_position=focus[1] if focus else None, focus_card=focus[0] if focus else None,
        saturation=frame.saturation, n_streaks=frame.n_streaks, **sky)


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _as_dict(limits) -> dict:
    from dataclasses import asdict

    return asdict(limits)


def _brief(thresholds: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in thresholds.items())
