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

QA_TAGS = ("cloud", "trail", "focus", "few-stars")
"""The automatic tags QA writes (and may retract)."""


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


def measure_missing(catalog, *, nights=None, band: str | None = None, recompute: bool = False, workers: int = 1,
                    progress: Callable | None = None, failed: list | None = None) -> int:
    """Compute metrics and star lists for frames that lack them (one read each); returns how many.

    Files that cannot be read now are appended to ``failed`` as ``(path, reason)``.
    """
    from obsdb.config import IngestConfig
    from obsdb.pipeline.ingest import measure_many

    todo = catalog.frames_needing_metrics(nights=nights, band=band, recompute=recompute)
    if not todo:
        return 0
    config = IngestConfig(measure_quality=True)
    batch = []
    measured = 0
    for done, measurement in enumerate(measure_many(list(todo), config, workers), start=1):
        if measurement.ok and measurement.metrics:
            batch.append((todo[measurement.path], measurement))
            measured += 1
        elif failed is not None:
            failed.append((measurement.path, measurement.error or "no pixels to measure"))
        if progress:
            progress(done, len(todo), measurement.path.rsplit("/", 1)[-1])
        if len(batch) >= 25:
            catalog.store_quality(batch)
            batch.clear()
    if batch:
        catalog.store_quality(batch)
    return measured


def band_reference(frames: list):
    """The group's transparency reference: among frames with a background no higher
    than the group median (clear sky), the one whose brightest stars are brightest
    per second of exposure (frames are :class:`obsdb.catalog.catalog.QaFrame`)."""
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
        fluxes = sorted((float(v) for v in frame.stars["flux"]), reverse=True)[:20]
        return statistics.median(fluxes) / (frame.exptime or 1.0) if fluxes else 0.0

    return max(clear, key=brightness)


def run_qa(catalog, *, night=None, band: str | None = None, thresholds: dict | None = None,
           recompute: bool = False, workers: int = 1, user: str | None = None,
           progress: Callable | None = None) -> QaReport:
    """Measure, compute transparency, apply the rules and write the automatic tags.

    Frames are judged in groups of one night, one instrument, one band and
    one target: every yardstick (clear background, best FWHM, transparency
    reference) comes from the frame's own group, so frames of another night
    or camera never change a frame's verdict, and nights not selected are
    left exactly as they were.

    Parameters
    ----------
    catalog : obsdb.Catalog
    night : str or list of str, optional
        Only these nights (default: every night, each on its own).
    band : str, optional
        Only this band.
    thresholds : dict, optional
        Overrides of :class:`obsdb.pipeline.qa_rules.QaThresholds` (from obsdb.toml or a plan).
    recompute : bool
        Re-measure metrics even where they exist.
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
    from obsdb.imaging.stars import transparency
    from obsdb.pipeline.metrics import transparency_stars
    from obsdb.pipeline.qa_rules import FrameMetricsInput, QaThresholds, evaluate

    user = user or login_name()
    try:
        limits = QaThresholds.from_mapping(thresholds or {})
    except ValueError as exc:
        raise ObsdbError(f"[qa] thresholds: {exc}") from None
    report = QaReport(thresholds=_as_dict(limits))
    report.measured = measure_missing(catalog, nights=night, band=band, recompute=recompute, workers=workers,
                                      failed=report.not_measured, progress=progress)
    frames = catalog.qa_frames(nights=night, band=band)
    groups: dict[tuple, list] = {}
    for frame in frames:
        groups.setdefault(frame.group_key, []).append(frame)
    instruments, targets = {}, {}
    for night_name, instrument, _, target in groups:
        instruments.setdefault(night_name, set()).add(instrument)
        targets.setdefault(night_name, set()).add(target)
    results = []
    wanted: dict[tuple[int, str], str] = {}
    for key, members in sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0])):
        night_name, instrument, band_name, target = key
        reference = band_reference(members)
        label = f"{night_name} {band_name or '-'}"
        if len(instruments[night_name]) > 1:
            label += f" {instrument or 'unknown instrument'}"
        if len(targets[night_name]) > 1:
            label += f" {target or '-'}"
        report.references[label] = reference.label if reference else None
        reference_stars = transparency_stars(reference.stars) if reference else None
        inputs = []
        for frame in members:
            value = None
            if reference is not None and frame.stars is not None and len(frame.stars):
                ratio = transparency(transparency_stars(frame.stars), reference_stars)
                scale = (reference.exptime or 1.0) / (frame.exptime or 1.0)
                value = ratio * scale if ratio == ratio else None
            results.append((frame.id, value, reference.id if reference else None))
            inputs.append(FrameMetricsInput(
                key=frame.id, band=band_name, n_stars=frame.n_stars, fwhm=_nan(frame.fwhm), hfd=_nan(frame.hfd),
                elongation=_nan(frame.elongation), background=_nan(frame.background),
                transparency=_nan(value)))
        wanted.update(((d.key, d.tag), d.reason) for d in evaluate(inputs, limits))
    from obsdb.pipeline.streak_rules import SATELLITE_TAG, satellite_decisions  # issue 20 (streaks helper)

    for frame_id, tag, reason, _evidence in satellite_decisions(catalog.frame_streaks([f.id for f in frames])):
        wanted[(frame_id, tag)] = reason
    change = catalog.apply_qa(results, wanted, names=QA_TAGS + (SATELLITE_TAG,), author=RULE_AUTHOR,
                              retract_reason=f"no longer holds with thresholds {_brief(report.thresholds)}")
    labels = {f.id: f.label for f in frames}
    report.retracted.extend((labels[frame_id], name, reason) for frame_id, name, reason in change.retracted
                            if (frame_id, name) not in wanted)
    report.added.extend((labels[frame_id], name, reason) for frame_id, name, reason in change.added)
    report.assessed = len(frames)
    from obsdb.pipeline.calib_checks import check_calibration  # bias, dark, flat: their own rules

    calibration = check_calibration(catalog, nights=night, author=RULE_AUTHOR)
    report.added.extend(calibration.added)
    report.retracted.extend(calibration.retracted)
    report.nights = sorted(instruments)
    catalog.record_event(user, "qa", f"{plural(len(frames), 'frame')} assessed, {plural(len(report.added), 'tag')} added, "
                                     f"{len(report.retracted)} retracted",
                         details={"nights": report.nights, "band": band, "thresholds": report.thresholds,
                                  "references": report.references})
    return report


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _as_dict(limits) -> dict:
    from dataclasses import asdict

    return asdict(limits)


def _brief(thresholds: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in thresholds.items())
