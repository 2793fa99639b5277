"""The whole night in one call: init, ingest, qa, calibrate (with bias/dark/flat frames), align, group, render,
stack, report."""

from __future__ import annotations

from obsdb.text import plural
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES


NO_STACK_EXIT = 3
"""Exit code of `obsdb run` when every step ran but the night gave no stack (no frame aligned, with
--no-render): QA accepted nothing, or align or render found nothing it could work on.  The report
is written and says why, band by band; 1 stays for errors (bad input, unreadable files), 2 for bugs."""


@dataclass
class RunSummary:
    """What `obsdb run` did, per step and per band."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    bands: list[dict] = field(default_factory=list)
    failed_files: list[tuple[str, str]] = field(default_factory=list)
    report_path: str | None = None
    catalog: str | None = None
    catalog_state: str = ""
    """``new``, or ``existing, N frames``: what the catalog was before this run."""
    not_stacked: list[str] = field(default_factory=list)
    """One line per band (per target and band) of light frames that gave no stack, saying why."""
    stopped: list[str] = field(default_factory=list)
    """The steps that found nothing to work on (``align: no accepted frames to align``)."""
    causes: set[str] = field(default_factory=set)
    """Why bands gave no stack: ``qa`` (no frame accepted), ``align`` (none registered), ``render``."""
    example_rejected: str | None = None
    """How the user names one rejected light frame of a band that gave no stack (for the advice)."""
    rendered: bool = True
    """Stacks were asked for (``--render``)."""
    on_step: Callable[[str, str], None] | None = field(default=None, repr=False, compare=False)
    """Called with each step's result as it is known, so a long run shows its progress."""

    def add(self, name: str, text: str) -> None:
        """Record a step's result (and pass it to :attr:`on_step`)."""
        self.steps.append((name, text))
        if self.on_step is not None:
            self.on_step(name, text)

    @property
    def stacked(self) -> bool:
        """The run gave what it was asked for: a stack (with --no-render, an aligned frame)."""
        if self.rendered:
            return any(row["stack"] for row in self.bands)
        return any(row["aligned"] for row in self.bands)

    @property
    def exit_code(self) -> int:
        """:data:`NO_STACK_EXIT` when nothing was stacked, 1 when files were unreadable, else 0."""
        if not self.stacked:
            return NO_STACK_EXIT
        return 1 if self.failed_files else 0


def run_night(catalog, folder: str | Path, out: str | Path, *, new: bool, workers: int = 1,
              stack: str = "median", render_outputs: bool = True, report: bool = True, thresholds: dict | None = None,
              reference: str | None = None, step: Callable[[str], None] | None = None,
              progress_factory=None, ingest_config=None, executor=None, calibration_sections: dict | None = None,
              on_step: Callable[[str, str], None] | None = None, photometry: bool = True) -> RunSummary:
    """Process a folder of frames end to end into ``out``.

    Every step runs and reports, whatever the night: when QA accepts
    nothing, or align or render finds nothing to work on
    (:class:`obsdb.errors.NothingToProcess`), that is the step's result, the
    later steps say what they could do, the report is written, and
    :attr:`RunSummary.not_stacked` says per band why no stack was made.

    :meth:`obsdb.Catalog.run` opens (or creates) the catalog and calls this with it.

    Parameters
    ----------
    catalog : obsdb.Catalog
        The open catalog, whose steps are run in turn.
    folder : path
        The night's FITS files (searched recursively).
    out : path
        Output folder (it exists): ``aligned/`` frames and stacks, ``report/``, ``masters/``
        (when the folder holds bias, dark or flat frames: the lights are then calibrated
        before QA judges them), and the catalog unless another was given.
    new : bool
        Whether the catalog was created for this run (said in the summary and the report).
    workers : int
        Processes for the pixel work.
    stack : str
        Stack method (median, mean, sigma-clip).
    render_outputs : bool
        Write the aligned frames and stacks (off: ingest, qa, align and groups only).
    report : bool
        Write the HTML report.
    thresholds : dict, optional
        QA threshold overrides.
    reference : str, optional
        Reference frame selector for the alignment.
    step : callable, optional
        Called with the name of each step as it starts.
    progress_factory : callable, optional
        ``progress_factory(label)`` returns a context manager giving a
        ``progress(done, total, item)`` callback.
    ingest_config : IngestConfig, optional
        Number pattern and type mapping for the ingest (e.g. from ``obsdb.toml``).
    calibration_sections : dict, optional
        ``biassec`` and ``trimsec`` of raw frames whose header gives none (``[calibration]`` of obsdb.toml).
    executor : obsdb.pipeline.executors.Executor, optional
        Where the per-frame work of ingest, align and render runs (default: ``workers`` local processes).
    on_step : callable, optional
        ``on_step(name, text)`` with each step's result as soon as it is known
        (the first is ``catalog``: which catalog is written, new or existing).
    photometry : bool
        Measure aperture photometry after the alignment, identify sources and fit zero points
        (:meth:`obsdb.Catalog.photometer`), so that light curves can be read at once.

    Returns
    -------
    RunSummary

    Raises
    ------
    ObsdbError
        The folder holds no readable light frame; or bad input (a bad option,
        an output folder holding foreign files).
    """
    from contextlib import nullcontext

    out = Path(out)
    summary = RunSummary(catalog=catalog.display_url, rendered=render_outputs, on_step=on_step)
    announce = step or (lambda name: None)
    progress = progress_factory or (lambda label: nullcontext(None))
    known = 0 if new else sum(night["frames"] for night in catalog.nights())
    summary.catalog_state = "new" if new else f"existing, {plural(known, 'frame')}"
    summary.add("catalog", f"{summary.catalog} ({summary.catalog_state})")
    ctx = _RunContext(catalog, summary, announce, progress, workers, executor)
    raw_night = _ingest_step(ctx, folder, out, ingest_config)
    _qa_step(ctx, out, raw_night, thresholds, calibration_sections)
    runs = _align_step(ctx, reference)
    _group_step(ctx, runs)
    if photometry:
        announce("photometry")
        _photometry_step(catalog, summary, workers=workers, executor=executor, progress=progress)
    rendered = _render_step(ctx, out, runs, stack) if render_outputs else None
    records = catalog.frame_dicts()
    summary.bands = band_table(records, runs, rendered.stacks if rendered else [])
    if render_outputs:
        _stack_advice(summary, records, runs, rendered)
    if report:
        announce("report")
        with progress("report") as callback:
            built = catalog.report(out / "report", workers=workers, progress=callback, executor=executor,
                                   run_outcome=_report_outcome(summary))
        summary.report_path = str(built.index_path)
    return summary


@dataclass
class _RunContext:
    """What every step of a run reports to and runs with."""

    catalog: object
    summary: RunSummary
    announce: Callable[[str], None]
    progress: Callable
    workers: int
    executor: object


def _ingest_step(ctx: _RunContext, folder, out: Path, ingest_config) -> bool:
    """Ingest the folder (leaving out obsdb's own output folders); True when it holds calibration frames."""
    from obsdb.errors import ObsdbError

    catalog, summary = ctx.catalog, ctx.summary
    ctx.announce("ingest")
    skip = [out / "aligned", out / "report", out / "masters"]
    # Bias, dark or flat frames in the folder: the lights are measured once, on calibrated pixels, after
    # the masters are built (not raw at ingest and again after calibrate).
    raw_night = holds_calibration_frames(folder, skip, ingest_config)
    if raw_night:
        from dataclasses import replace

        from obsdb.config import IngestConfig

        ingest_config = replace(ingest_config or IngestConfig(), measure_quality=False)
    with ctx.progress("ingest") as callback:
        ingested = catalog.ingest([folder], recursive=True, workers=ctx.workers, config=ingest_config,
                                  exclude=skip, progress=callback, executor=ctx.executor)
    summary.failed_files = list(ingested.failed)
    summary.add("ingest", f"{plural(ingested.n_files, 'file')} ({len(ingested.added)} new, "
                          f"{len(ingested.failed)} unreadable) in {ingested.seconds:.1f} s")
    if ingested.gone:
        summary.add("warning", f"{len(ingested.gone)} catalogued files are no longer on disk "
                               f"(first: {ingested.gone[0]}); the catalog keeps their records")
    if next(catalog.iter_frames(include_unreadable=False, light_only=True), None) is None:
        found = "no FITS files" if ingested.n_files == 0 else "no readable light frames"
        raise ObsdbError(f"{folder}: {found} (.fits .fit .fts, or .gz, in it or its sub-folders); "
                         "nothing to align")
    for key, count in sorted(ingested.shared_numbers.items()):
        hint = ingested.number_pattern_hint.get(key)
        summary.add("warning", f"frame number {key[1]} is shared by {count} files" + (
            f"; set [ingest] number_pattern = '{hint}' in obsdb.toml to tell them apart" if hint else ""))
    return raw_night


def _qa_step(ctx: _RunContext, out: Path, raw_night: bool, thresholds, calibration_sections) -> None:
    """QA, with calibration first on a raw night (or after, when other nights' masters apply)."""
    catalog = ctx.catalog

    def judge():
        ctx.announce("qa")
        with ctx.progress("qa") as callback:
            return catalog.qa(thresholds=thresholds, workers=ctx.workers, progress=callback)

    if raw_night:
        # The calibration frames' own checks first, so that a rejected frame makes no master.
        catalog.check_calibration()
        _calibrate(catalog, out, ctx.executor, ctx.summary, ctx.announce, calibration_sections)
        assessed = judge()
    else:
        assessed = judge()
        # Masters from other nights in the catalog may apply to these lights: matched, and the lights
        # measured again on their calibrated pixels, then judged on those.
        if _has_calibration_frames(catalog) and _calibrate(catalog, out, ctx.executor, ctx.summary, ctx.announce,
                                                           calibration_sections).remeasured:
            with ctx.progress("qa") as callback:
                assessed = catalog.qa(thresholds=thresholds, workers=ctx.workers, progress=callback)
    light = catalog.frame_dicts(include_unreadable=False, light_only=True)
    ctx.summary.add("qa", f"{plural(assessed.assessed, 'frame')} assessed, {plural(len(assessed.added), 'tag')} "
                          f"added, {len(assessed.retracted)} retracted; {_verdicts(light)}")


def _align_step(ctx: _RunContext, reference) -> list:
    """Align each target; the runs made (none when there was nothing to align, said in the summary)."""
    from obsdb.errors import NothingToProcess

    ctx.announce("align")
    runs = []
    try:
        with ctx.progress("align") as callback:
            runs = ctx.catalog.align(reference=reference, workers=ctx.workers, progress=callback,
                                     executor=ctx.executor)
    except NothingToProcess as exc:
        ctx.summary.stopped.append(f"align: {exc.fact}")
        ctx.summary.add("align", f"nothing aligned: {exc.fact}")
    for aligned in runs:
        target = f" (target {_target_name(aligned)})" if len(runs) > 1 else ""
        ctx.summary.add("align", f"run {aligned.run_id}{target}: "
                                 f"{plural(len(aligned.results) - len(aligned.failures), 'frame')} aligned to "
                                 f"{aligned.reference_label}, {len(aligned.failures)} unregistered")
    return runs


def _group_step(ctx: _RunContext, runs: list) -> None:
    """Pointing groups of the main target, against its run's reference."""
    from obsdb.errors import ObsdbError

    ctx.announce("group")
    if not runs:
        ctx.summary.add("group", "skipped: no alignment run to group against")
        return
    try:
        # Pointing groups are offsets from one reference: that of the night's main target, whose
        # frames alone auto_groups then groups.
        grouped = ctx.catalog.auto_groups(reference=runs[0].reference_selector)
        of_target = f" of target {_target_name(runs[0])}" if len(runs) > 1 else ""
        ctx.summary.add("group", f"{plural(len(grouped.groups), 'pointing group')}{of_target}")
    except ObsdbError as exc:
        # Groups serve the report and the staged method; the auto run above does not need them.
        ctx.summary.add("group", f"skipped: {exc}")


def _render_step(ctx: _RunContext, out: Path, runs: list, stack: str):
    """Aligned frames and stacks into ``out/aligned``; the render's report, or None."""
    from obsdb.errors import NothingToProcess

    summary = ctx.summary
    ctx.announce("render")
    if not runs:
        summary.add("render", "nothing to render: no frame was aligned")
        return None
    try:
        with ctx.progress("render") as callback:
            # One target: exactly this run; several: each frame's run of this command (its current one).
            rendered = ctx.catalog.render(out / "aligned", run=runs[0].run_id if len(runs) == 1 else None,
                                          stack=stack, workers=ctx.workers, progress=callback,
                                          executor=ctx.executor)
    except NothingToProcess as exc:
        summary.stopped.append(f"render: {exc.fact}")
        summary.add("render", exc.fact)
        return None
    summary.add("render", f"{plural(len(rendered.frames), 'aligned frame')} and "
                          f"{plural(len(rendered.stacks), stack + ' stack')} in {out / 'aligned'}")
    for frame, reason in rendered.skipped:
        summary.add("stack", f"{frame}: {reason}")
    for frame, reason in rendered.failed:
        summary.add("not rendered", f"{frame}: {reason}")
    return rendered


def _stack_advice(summary: RunSummary, records: list[dict], runs: list, rendered) -> None:
    """Why each band without a stack has none, and a rejected frame to name in the advice."""
    from obsdb.imaging.header import LIGHT_IMAGE_TYPES

    rows = light_rows(records, runs, rendered.stacks if rendered else [])
    missing = not_stacked(rows, summary.stopped)
    summary.not_stacked = [line for _, line in missing]
    summary.causes = {cause for cause, _ in missing}
    # An example for the advice "accept by hand": a frame of a band that QA left empty.
    bare = {(row["target"], row["band"]) for row in rows if not row["stack"] and not row["accepted"]
            and not row["rejected_by"].get("unregistered")}
    per_target = any(row["target"] is not None for row in rows)
    summary.example_rejected = next(
        (r["label"] for r in records if r["status"] == "rejected" and r.get("readable", True)
         and (r.get("type") or "unknown") in LIGHT_IMAGE_TYPES
         and ((r["object"] if per_target else None), r["band"] or "none") in bare), None)


def _calibrate(catalog, out: Path, executor, summary: RunSummary, announce, sections: dict | None = None):
    """The calibrate step of a run: masters into ``out/masters``, lights matched; its summary lines."""
    announce("calibrate")
    calibrated = catalog.calibrate(out / "masters", executor=executor, sections=sections)
    summary.add("calibrate", f"{plural(len(calibrated.built), 'master')} built, {len(calibrated.reused)} "
                             f"reused, {len(calibrated.failed)} failed; {calibrated.remeasured} lights "
                             f"measured again on calibrated pixels (masters in {out / 'masters'})")
    for line in calibrated.bands:
        summary.add("calibrate", line)
    for label, reason in calibrated.unlike:
        summary.add("calibrate", f"rejected {label}: {reason}")
    for line in calibrated.refused + calibrated.failed:
        summary.add("calibrate", f"left out: {line}")
    return calibrated


CALIBRATION_TYPE_CARDS = ("IMAGETYP", "IMAGETYPE", "OBSTYPE", "FRAMETYP", "PICTTYPE")
"""The cards :func:`obsdb.imaging.header.normalise_image_type` reads."""


def holds_calibration_frames(folder, exclude, ingest_config=None) -> bool:
    """Whether ``folder`` (recursively, less ``exclude``) holds a bias, dark or flat frame not yet
    catalogued as such, from a glance at each file's first header blocks
    (:func:`obsdb.imaging.fitsio.peek.peek_cards`); stops at the first one found."""
    import warnings

    from obsdb.imaging.fitsio import FitsWarning
    from obsdb.imaging.fitsio.peek import peek_cards
    from obsdb.imaging.header import normalise_image_type
    from obsdb.pipeline.ingest import IngestError, discover

    mapping = getattr(ingest_config, "image_types", None)
    picttypes = getattr(ingest_config, "picttypes", None)
    skip = [Path(p).resolve() for p in exclude]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitsWarning)       # the ingest that follows warns once
            files = discover([folder], recursive=True)
    except IngestError:
        return False                     # the ingest says what is wrong with the folder
    for path in files:
        resolved = Path(path).resolve()
        if any(resolved == s or s in resolved.parents for s in skip):
            continue
        if normalise_image_type(peek_cards(path, CALIBRATION_TYPE_CARDS), mapping,
                                picttypes) in CALIBRATION_IMAGE_TYPES:
            return True
    return False


def _photometry_step(catalog, summary: RunSummary, *, workers: int, executor, progress) -> None:
    """Photometry of the night's light frames, summarised in one line (frames, sources, zero-point error)."""
    with progress("photometry") as callback:
        measured = catalog.photometer(workers=workers, executor=executor, progress=callback)
    zp = measured.median_zero_point_error
    summary.add("photometry", f"{plural(measured.measured, 'frame')} measured ({measured.current} current, "
                              f"{len(measured.failed)} failed), {plural(measured.sources, 'source')} in "
                              f"{plural(measured.identified, 'identified frame')}"
                              + (f", median zero-point error {zp * 1000:.1f} mmag" if zp is not None else ""))
    for path, reason in measured.failed:
        summary.add("photometry", f"not measured: {reason}")


def _has_calibration_frames(catalog) -> bool:
    """Whether the catalog holds a readable bias, dark or flat frame (for `run` to build masters)."""
    from obsdb.catalog.masters import MasterStore

    return bool(MasterStore(catalog.db).calibration_inputs())


CATALOG_RULE = ("`obsdb run FOLDER --out DIR` writes DIR/obsdb.sqlite, unless a catalog is given with --db on "
                "its own command line (`obsdb --db CATALOG run ...`); OBSDB_DB from the environment is not used.")
"""Which catalog `run` and `demo` write, in the words the report and the docs use."""


def _report_outcome(summary: RunSummary) -> dict:
    """What the report shows of this run: its steps, the catalog rule, why bands were not stacked and
    what to do about it."""
    missing = bool(summary.not_stacked) or not summary.stacked
    return {"steps": list(summary.steps), "catalog_rule": CATALOG_RULE, "not_stacked": list(summary.not_stacked),
            "stacked": summary.stacked, "advice": advice(summary) if missing else []}


def advice(summary: RunSummary, rerun: str = "the same `obsdb run` command") -> list[str]:
    """What to do when bands gave no stack, true for `obsdb run`: the catalog named (OBSDB_DB may name
    another), and the fix that matches the cause (accept by hand for QA, another reference for align).

    Parameters
    ----------
    summary : RunSummary
    rerun : str
        How to name the command to run again (the CLI spells it out, with its options).
    """
    import shlex

    db = shlex.quote(summary.catalog or "")
    lines = [f"why, frame by frame: obsdb --db {db} rejected"]
    if summary.causes & {"align", "render"}:
        lines.append(f"why a frame was not registered: obsdb --db {db} show FRAME; to align onto a reference "
                     f"of your choice: obsdb --db {db} align --reference FRAME")
    if summary.example_rejected and "qa" in summary.causes:
        lines.append(f"to stack rejected frames anyway, accept them by hand (obsdb --db {db} tag "
                     f"{shlex.quote(summary.example_rejected)} accept --reason WHY; names, numbers and ranges as "
                     f"`rejected` lists them), then run {rerun} again")
    return lines


MAIN_REASONS = 3
"""Rejection reasons named in the qa line (the most frequent first); the table and the report give all."""


def _rejections(members: list[dict]) -> Counter:
    """Frames rejected per tag name (a frame rejected with no tag is ``unreadable``)."""
    reasons = Counter()
    for record in members:
        if record["status"] == "rejected":
            reasons.update(sorted({t["name"] for t in record["tags"]} - {"accept"}) or ["unreadable"])
    return reasons


def _reasons_text(reasons: Counter, limit: int | None = None) -> str:
    """``focus 12, few-stars 5`` (most frequent first; ``limit`` of them, then ``...``)."""
    ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    shown = ranked[:limit] if limit else ranked
    return ", ".join(f"{name} {count}" for name, count in shown) + (", ..." if len(shown) < len(ranked) else "")


def _verdicts(light: list[dict]) -> str:
    """``0 of 17 light frames accepted, 17 rejected (few-stars 17)`` for the qa line."""
    statuses = Counter(record["status"] for record in light)
    text = (f"{statuses['accepted']} of {plural(len(light), 'light frame')} accepted, "
            f"{statuses['rejected']} rejected")
    reasons = _rejections(light)
    if reasons:
        text += f" ({_reasons_text(reasons, MAIN_REASONS)})"
    if statuses["pending"]:
        text += f", {statuses['pending']} pending"
    return text


def light_rows(records: list[dict], runs: list, stacks: list[dict]) -> list[dict]:
    """The light frames per band (per target and band when they have several OBJECTs): frames, accepted,
    rejected by reason, aligned, the stack made of them (None: none), and the first registration failure.

    Rows are per target whenever the frames have several targets, even when only one target was
    stacked (render then names its stacks by band alone): a target QA left empty must not hide
    behind another's stack of the same band.
    """
    from obsdb.imaging.header import LIGHT_IMAGE_TYPES

    light = [r for r in records if (r.get("type") or "unknown") in LIGHT_IMAGE_TYPES]
    aligned = {r.frame_id for report in runs for r in report.results if r.ok}
    failures = {r.frame_id: r.reason for report in runs for r in report.failures}
    per_target = len({r["object"] for r in light}) > 1
    groups: dict[tuple[str | None, str], list[dict]] = defaultdict(list)
    for record in light:
        groups[(record["object"] if per_target else None, record["band"] or "none")].append(record)
    rows = []
    for (target, band), members in sorted(groups.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        n_aligned = sum(1 for r in members if r["id"] in aligned)
        # A stack named by band alone holds the band's aligned frames, whichever target they are of.
        stack = next((s["path"] for s in stacks if s["band"] == band and (
            s.get("target") == target or (s.get("target") is None and n_aligned))), None)
        rows.append({
            "band": band, "target": target, "frames": len(members),
            "accepted": sum(r["status"] == "accepted" for r in members),
            "rejected_by": dict(sorted(_rejections(members).items())),
            "aligned": n_aligned, "stack": stack,
            # The first clause of the first failure's reason: "too few stars (1 in frame, 1 in reference)".
            "unregistered_reason": next((failures[r["id"]].split(";")[0] for r in members
                                         if failures.get(r["id"])), None),
        })
    return rows


def not_stacked(rows: list[dict], stopped: list[str]) -> list[tuple[str, str]]:
    """One ``(cause, line)`` per band (of :func:`light_rows`) that gave no stack, saying why.

    The cause is ``qa`` (no frame accepted), ``align`` (accepted frames, none
    registered) or ``render``; the line reads e.g.
    ``V: 0 of 17 frames accepted (focus 12, few-stars 5): nothing to align or stack``.
    """
    lines = []
    for row in rows:
        if row["stack"]:
            continue
        name = f"{row['target']} {row['band']}" if row["target"] else row["band"]
        frames = row["frames"]
        unregistered = row["rejected_by"].get("unregistered", 0)
        if unregistered and not row["aligned"]:
            # align tags the frames it could not register: they are rejected now, but not by QA.
            others = _reasons_text(Counter({k: v for k, v in row["rejected_by"].items() if k != "unregistered"}))
            first = f", e.g. {row['unregistered_reason']}" if row.get("unregistered_reason") else ""
            lines.append(("align", f"{name}: {unregistered} of {plural(frames, 'frame')} could not be registered "
                                   f"onto the reference{first}" + (f" (rejected otherwise: {others})" if others else "")
                                   + ": nothing to stack"))
        elif not row["accepted"]:
            why = f"0 of {plural(frames, 'frame')} accepted"
            reasons = _reasons_text(Counter(row["rejected_by"]))
            lines.append(("qa", f"{name}: {why}" + (f" ({reasons})" if reasons else "")
                          + ": nothing to align or stack"))
        elif not row["aligned"]:
            cause = next((s for s in stopped if s.startswith("align:")), None)
            if cause is None:
                cause = "registration failed for every one" + (
                    f", e.g. {row['unregistered_reason']}" if row.get("unregistered_reason") else "")
            lines.append(("align", f"{name}: {row['accepted']} of {plural(frames, 'frame')} accepted, "
                                   f"none aligned ({cause}): nothing to stack"))
        else:
            cause = next((s for s in stopped if s.startswith("render:")), "no aligned frame could be rendered")
            lines.append(("render", f"{name}: {row['aligned']} of {plural(frames, 'frame')} aligned, "
                                    f"none stacked ({cause})"))
    return lines


def _target_name(report) -> str:
    """The OBJECT of an alignment run's frames, for messages.

    A run of a night with a single target is not restricted to it (``report.target`` is None), yet its
    frames have an OBJECT: that of its reference, whose header is read (one header, no pixels)."""
    if report.target:
        return report.target
    try:
        import warnings

        from astropy.io import fits

        from obsdb.imaging.header import _text_source, header_to_json

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="astropy.io.fits")  # card notes
            name, _ = _text_source(header_to_json(fits.getheader(report.reference_path)), "OBJECT", "OBJNAME")
    except Exception:  # noqa: BLE001 - a message must not fail a run: a file gone since is "no OBJECT"
        name = None
    return name or "no OBJECT"


def band_table(records: list[dict], runs: list, stacks: list[dict]) -> list[dict]:
    """Per band (per target and band when stacks were made per target): frames ingested, rejected by
    reason, aligned, alignment residual RMS, stack written."""
    residuals = {r.frame_id: r.residual_rms for aligned in runs for r in aligned.results if r.ok}
    # A reference is not fitted (it is the frame others are fitted to): its zero would flatter the median.
    fitted = {r.frame_id for aligned in runs for r in aligned.results if r.ok and r.method != "reference"}
    per_target = any(s.get("target") is not None for s in stacks)
    stacked = {(s.get("target"), s["band"]): s for s in stacks}
    bands: dict[tuple[str | None, str], list[dict]] = defaultdict(list)
    for record in records:
        bands[(record["object"] if per_target else None, record["band"] or "none")].append(record)
    rows = []
    for (target, band), members in sorted(bands.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        reasons = _rejections(members)
        rms = [residuals[r["id"]] for r in members if r["id"] in fitted and residuals.get(r["id"]) is not None]
        rows.append({
            "band": band, "target": target, "frames": len(members),
            "rejected": sum(r["status"] == "rejected" for r in members),
            "rejected_by": dict(sorted(reasons.items())),
            "aligned": sum(1 for r in members if r["id"] in residuals),
            "median_rms": statistics.median(rms) if rms else None,
            "stack": stacked.get((target, band), {}).get("path"),
            "stack_frames": stacked.get((target, band), {}).get("frames"),
        })
    return rows
