"""The whole night in one call: init, ingest, qa, align, render, stack, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class RunSummary:
    """What `obsdb run` did, per step and per band."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    bands: list[dict] = field(default_factory=list)
    failed_files: list[tuple[str, str]] = field(default_factory=list)


def run_night(folder: str | Path, out: str | Path, *, db: str | None = None, workers: int = 1,
              stack: str = "median", report: bool = True, thresholds: dict | None = None,
              step: Callable[[str], None] | None = None, progress_factory=None) -> RunSummary:
    """Process a folder of frames end to end into ``out``.

    Parameters
    ----------
    folder : path
        The night's FITS files (searched recursively).
    out : path
        Output folder: aligned frames, stacks, report; the catalog too unless ``db`` is given.
    db : str, optional
        Catalog path or URL [default: ``out/obsdb.sqlite``].
    workers : int
        Processes for the pixel work.
    stack : str
        Stack method (median, mean, sigma-clip).
    step : callable, optional
        Called with the name of each step as it starts.
    progress_factory : callable, optional
        ``progress_factory(label)`` returns a context manager giving a
        ``progress(done, total, item)`` callback.

    Returns
    -------
    RunSummary
    """
    from contextlib import nullcontext

    from obsdb.catalog.db import database_url, open_catalog, upgrade
    from obsdb.catalog.queries import band_summary
    from obsdb.pipeline.ingest import ingest
    from obsdb.pipeline.qa import run_qa

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    db = db or str(out / "obsdb.sqlite")
    summary = RunSummary()
    announce = step or (lambda name: None)
    progress = progress_factory or (lambda label: nullcontext(None))

    announce("init")
    upgrade(database_url(db))
    catalog = open_catalog(db)
    try:
        announce("ingest")
        with progress("ingest") as callback:
            report_ingest = ingest(catalog, [folder], recursive=True, workers=workers, progress=callback)
        summary.failed_files = list(report_ingest.failed)
        summary.steps.append(("ingest", f"{report_ingest.n_files} files, {len(report_ingest.failed)} unreadable"))
        announce("qa")
        with progress("qa") as callback:
            report_qa = run_qa(catalog, thresholds=thresholds, workers=workers, progress=callback)
        summary.steps.append(("qa", f"{report_qa.assessed} assessed, {len(report_qa.added)} tags added"))
        with catalog.session() as session:
            summary.bands = band_summary(session)
    finally:
        catalog.close()
    return summary
