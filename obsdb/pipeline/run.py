"""The whole night in one call: init, ingest, qa, align, group, render, stack, report."""

from __future__ import annotations

from obsdb.text import plural
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class RunSummary:
    """What `obsdb run` did, per step and per band."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    bands: list[dict] = field(default_factory=list)
    failed_files: list[tuple[str, str]] = field(default_factory=list)
    report_path: str | None = None
    catalog: str | None = None


def run_night(folder: str | Path, out: str | Path, *, db: str | None = None, workers: int = 1,
              stack: str = "median", render_outputs: bool = True, report: bool = True, thresholds: dict | None = None,
              reference: str | None = None, step: Callable[[str], None] | None = None,
              progress_factory=None, ingest_config=None, executor=None) -> RunSummary:
    """Process a folder of frames end to end into ``out``.

    Parameters
    ----------
    folder : path
        The night's FITS files (searched recursively).
    out : path
        Output folder: ``aligned/`` frames and stacks, ``report/``, and the
        catalog unless ``db`` is given.
    db : str, optional
        Catalog path or URL (default: ``out/obsdb.sqlite``).
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
    executor : obsdb.pipeline.executors.Executor, optional
        Where the per-frame work of ingest, align and render runs (default: ``workers`` local processes).

    Returns
    -------
    RunSummary
    """
    from contextlib import nullcontext

    from obsdb.catalog.catalog import Catalog
    from obsdb.errors import ObsdbError
    from obsdb.pipeline.align import align_each_target
    from obsdb.pipeline.groups import auto_groups
    from obsdb.pipeline.ingest import ingest
    from obsdb.pipeline.qa import run_qa
    from obsdb.pipeline.render import render

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    db = db or str(out / "obsdb.sqlite")
    summary = RunSummary(catalog=db)
    announce = step or (lambda name: None)
    progress = progress_factory or (lambda label: nullcontext(None))

    announce("init")
    catalog = Catalog.open(db, create=True)
    try:
        announce("ingest")
        with progress("ingest") as callback:
            ingested = ingest(catalog, [folder], recursive=True, workers=workers, config=ingest_config,
                              exclude=[Path(out) / "aligned", Path(out) / "report"], progress=callback,
                              executor=executor)
        summary.failed_files = list(ingested.failed)
        summary.steps.append(("ingest", f"{plural(ingested.n_files, 'file')} ({len(ingested.added)} new, "
                                        f"{len(ingested.failed)} unreadable) in {ingested.seconds:.1f} s"))
        if ingested.gone:
            summary.steps.append(("warning", f"{len(ingested.gone)} catalogued files are no longer on disk "
                                             f"(first: {ingested.gone[0]}); the catalog keeps their records"))
        if next(catalog.iter_frame_dicts(include_unreadable=False, light_only=True), None) is None:
            found = "no FITS files" if ingested.n_files == 0 else "no readable light frames"
            raise ObsdbError(f"{folder}: {found} (.fits .fit .fts, or .gz, in it or its sub-folders); "
                             "nothing to align")
        for key, count in sorted(ingested.shared_numbers.items()):
            hint = ingested.number_pattern_hint.get(key)
            summary.steps.append(("warning", f"frame number {key[1]} is shared by {count} files" + (
                f"; set [ingest] number_pattern = '{hint}' in obsdb.toml to tell them apart" if hint else "")))
        announce("qa")
        with progress("qa") as callback:
            assessed = run_qa(catalog, thresholds=thresholds, workers=workers, progress=callback)
        summary.steps.append(("qa", f"{plural(assessed.assessed, 'frame')} assessed, {plural(len(assessed.added), 'tag')} added, "
                                    f"{len(assessed.retracted)} retracted"))
        announce("align")
        with progress("align") as callback:
            runs = align_each_target(catalog, reference=reference, workers=workers, progress=callback,
                                     executor=executor)
        for aligned in runs:
            target = f" (target {_target_name(aligned)})" if len(runs) > 1 else ""
            summary.steps.append(("align", f"run {aligned.run_id}{target}: "
                                           f"{plural(len(aligned.results) - len(aligned.failures), 'frame')} aligned to "
                                           f"{aligned.reference_label}, {len(aligned.failures)} unregistered"))
        announce("group")
        try:
            # Pointing groups are offsets from one reference: that of the night's main target, whose
            # frames alone auto_groups then groups.
            grouped = auto_groups(catalog, reference=runs[0].reference_selector)
            of_target = f" of target {_target_name(runs[0])}" if len(runs) > 1 else ""
            summary.steps.append(("group", f"{plural(len(grouped.groups), 'pointing group')}{of_target}"))
        except ObsdbError as exc:
            # Groups serve the report and the staged method; the auto run above does not need them.
            summary.steps.append(("group", f"skipped: {exc}"))
        rendered = None
        if render_outputs:
            announce("render")
            with progress("render") as callback:
                # One target: exactly this run; several: each frame's run of this command (its current one).
                rendered = render(catalog, out / "aligned", run=runs[0].run_id if len(runs) == 1 else None,
                                  stack=stack, workers=workers, progress=callback, executor=executor)
            summary.steps.append(("render", f"{plural(len(rendered.frames), 'aligned frame')} and "
                                            f"{plural(len(rendered.stacks), stack + ' stack')} in {out / 'aligned'}"))
            summary.steps.extend(("stack", f"{frame}: {reason}") for frame, reason in rendered.skipped)
            summary.steps.extend(("not rendered", f"{frame}: {reason}") for frame, reason in rendered.failed)
        if report:
            from obsdb.pipeline.report import build_report

            announce("report")
            with progress("report") as callback:
                built = build_report(catalog, out / "report", workers=workers, progress=callback, executor=executor)
            summary.report_path = str(built.index_path)
        records = catalog.frame_dicts()
        summary.bands = band_table(records, runs, rendered.stacks if rendered else [])
    finally:
        catalog.close()
    return summary


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
            warnings.simplefilter("ignore")
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
        reasons = Counter()
        for record in members:
            if record["status"] == "rejected":
                names = sorted({t["name"] for t in record["tags"]}) or ["unreadable"]
                reasons.update(names)
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
