"""QA: quality metrics for every light frame, transparency against the band's
reference, and automatic tags from the rules in :mod:`obsdb.pipeline.qa_rules`.

Re-running with other thresholds retracts the automatic tags that no longer
hold (the retraction names the new thresholds) and keeps them in the history.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from obsdb.catalog.models import Frame, FrameMetrics, utcnow
from obsdb.errors import ObsdbError
from obsdb.pipeline.ingest import login_name

RULE_AUTHOR = "obsdb"
"""Author recorded on automatic tags."""

QA_TAGS = ("cloud", "trail", "focus", "few-stars")
"""The automatic tags QA writes (and may retract)."""

QA_TYPES = ("light", "unknown")
"""Image types that get quality tags (calibration frames have no stars to judge)."""


@dataclass
class QaReport:
    """What a QA run did."""

    measured: int = 0
    assessed: int = 0
    added: list[tuple[int | None, str, str]] = field(default_factory=list)
    retracted: list[tuple[int | None, str, str]] = field(default_factory=list)
    references: dict[str, int | None] = field(default_factory=dict)
    """Transparency reference per band (``band/object`` when a band holds several targets)."""
    thresholds: dict = field(default_factory=dict)
    not_measured: list[tuple[str, str]] = field(default_factory=list)
    """Files whose metrics could not be computed now (gone or damaged since ingest), with the reason;
    they are judged on the metrics they had, if any."""


def measure_missing(catalog, *, band: str | None = None, recompute: bool = False, workers: int = 1,
                    progress: Callable | None = None, failed: list | None = None) -> int:
    """Compute metrics for frames that lack them (one read each); returns how many were measured.

    Files that cannot be read now are appended to ``failed`` as ``(path, reason)``.
    """
    from obsdb.config import IngestConfig
    from obsdb.pipeline.ingest import measure_many

    with catalog.session() as session:
        query = select(Frame.id, Frame.path).outerjoin(FrameMetrics).where(
            Frame.readable.is_(True), Frame.image_type.in_(QA_TYPES))
        if band:
            query = query.where(Frame.band == band)
        if not recompute:
            query = query.where(FrameMetrics.frame_id.is_(None))
        todo = dict((path, frame_id) for frame_id, path in session.execute(query))
    if not todo:
        return 0
    config = IngestConfig(measure_quality=True)
    done = 0
    batch = []

    def flush():
        with catalog.session() as session:
            frames = {f.id: f for f in session.scalars(
                select(Frame).where(Frame.id.in_([todo[m.path] for m in batch])))}
            for m in batch:
                frame = frames[todo[m.path]]
                if m.ok and m.metrics:
                    frame.metrics = FrameMetrics(measured_at=utcnow(), **m.metrics)
        batch.clear()

    measured = 0
    for measurement in measure_many(list(todo), config, workers):
        batch.append(measurement)
        done += 1
        if measurement.ok:
            measured += 1
        elif failed is not None:
            failed.append((measurement.path, measurement.error))
        if progress:
            progress(done, len(todo), measurement.path.rsplit("/", 1)[-1])
        if len(batch) >= 25:
            flush()
    if batch:
        flush()
    return measured


def band_reference(frames: list[Frame]) -> Frame | None:
    """The band's transparency reference: among frames with a background no higher
    than the band median (clear sky), the one whose brightest stars are brightest
    per second of exposure."""
    candidates = [f for f in frames if f.metrics and f.metrics.stars]
    if not candidates:
        return None
    median_bkg = statistics.median(f.stats.background for f in candidates if f.stats)
    clear = [f for f in candidates if f.stats and f.stats.background <= median_bkg] or candidates
    # Trailed or defocused stars spread their flux and lose faint stars: prefer round, sharp ones.
    sharp = [f for f in clear if (f.metrics.elongation or 1.0) < 1.3]
    if sharp:
        best = min(f.metrics.fwhm or float("inf") for f in sharp)
        clear = [f for f in sharp if (f.metrics.fwhm or float("inf")) <= 1.3 * best] or sharp

    def brightness(frame: Frame) -> float:
        fluxes = sorted((s[2] for s in frame.metrics.stars), reverse=True)[:20]
        return statistics.median(fluxes) / (frame.exptime or 1.0) if fluxes else 0.0

    return max(clear, key=brightness)


def run_qa(catalog, *, band: str | None = None, thresholds: dict | None = None,
           recompute: bool = False, workers: int = 1, user: str | None = None,
           progress: Callable | None = None) -> QaReport:
    """Measure, compute transparency, apply the rules and write the automatic tags.

    Parameters
    ----------
    catalog : Catalog
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
    from obsdb.catalog.tags import sync_rule_tags
    from obsdb.catalog.writes import record_event
    from obsdb.imaging.stars import transparency
    from obsdb.pipeline.qa_rules import FrameMetricsInput, QaThresholds, evaluate

    user = user or login_name()
    try:
        limits = QaThresholds.from_mapping(thresholds or {})
    except ValueError as exc:
        raise ObsdbError(f"[qa] thresholds: {exc}") from None
    report = QaReport(thresholds=_as_dict(limits))
    report.measured = measure_missing(catalog, band=band, recompute=recompute, workers=workers,
                                      failed=report.not_measured,
                                      progress=progress)
    with catalog.session() as session:
        query = (select(Frame).options(selectinload(Frame.metrics), selectinload(Frame.stats))
                 .where(Frame.readable.is_(True), Frame.image_type.in_(QA_TYPES)))
        if band:
            query = query.where(Frame.band == band)
        frames = [f for f in session.scalars(query) if f.metrics is not None]
        by_band: dict[str | None, list[Frame]] = {}
        for frame in frames:
            by_band.setdefault(frame.band, []).append(frame)
        inputs = []
        for band_name, members in by_band.items():
            # Transparency compares the same stars: one reference per target within the band.
            by_object: dict[str | None, list[Frame]] = {}
            for frame in members:
                by_object.setdefault(frame.object, []).append(frame)
            reference_of: dict[int, Frame | None] = {}
            for object_name, group in by_object.items():
                reference = band_reference(group)
                key = band_name or "-"
                if len(by_object) > 1:
                    key = f"{key}/{object_name or '-'}"
                report.references[key] = reference.label if reference else None
                reference_of.update((f.id, reference) for f in group)
            for frame in members:
                reference = reference_of[frame.id]
                if reference is None or not frame.metrics.stars:
                    frame.metrics.transparency = None
                else:
                    ratio = transparency(frame.metrics.stars, reference.metrics.stars)
                    scale = (reference.exptime or 1.0) / (frame.exptime or 1.0)
                    frame.metrics.transparency = ratio * scale if ratio == ratio else None
                m = frame.metrics
                inputs.append(FrameMetricsInput(
                    key=frame.id, band=band_name, n_stars=m.n_stars, fwhm=_nan(m.fwhm), hfd=_nan(m.hfd),
                    elongation=_nan(m.elongation),
                    background=_nan(frame.stats.background if frame.stats else m.background),
                    transparency=_nan(m.transparency)))
        decisions = evaluate(inputs, limits)
        now = utcnow()
        for frame in frames:
            frame.metrics.assessed_at = now
        wanted: dict[tuple[int, str], str] = {(d.key, d.tag): d.reason for d in decisions}
        by_id = {f.id: f for f in frames}
        # Bring the active QA tags in line with the decisions (other automatic tags, such as
        # align's `unregistered`, are not QA's to retract).
        change = sync_rule_tags(session, by_id, wanted, names=QA_TAGS, author=RULE_AUTHOR,
                                retract_reason=f"no longer holds with thresholds {_brief(report.thresholds)}")
        report.retracted.extend((by_id[t.frame_id].label, t.name, t.reason) for t in change.retracted
                                if (t.frame_id, t.name) not in wanted)
        report.added.extend((by_id[t.frame_id].label, t.name, t.reason) for t in change.added)
        report.assessed = len(frames)
        record_event(session, user, "qa",
                     f"{len(frames)} frames assessed, {len(report.added)} tags added, "
                     f"{len(report.retracted)} retracted",
                     details={"band": band, "thresholds": report.thresholds, "references": report.references})
    return report


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _as_dict(limits) -> dict:
    from dataclasses import asdict

    return asdict(limits)


def _brief(thresholds: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in thresholds.items())
