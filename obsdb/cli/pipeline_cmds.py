"""Whole-night commands: run and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from obsdb.cli.common import (app, console, err_console, fmt, frames_text, open_executor, progress_bar, state,
                              styled, user_errors, with_executor_options, with_qa_threshold_options)
from obsdb.cli.tables import Column, print_table


RUN_COLUMNS = [Column("target", "target", priority=5, shrink=True, min_width=8, preferred_width=16),
               Column("band", "band", priority=0), Column("frames", "frames", numeric=True, priority=1),
               Column("rejected", "rejected", numeric=True, priority=2),
               Column("rejected_by", "rejected by reason", priority=4, shrink=True, min_width=14,
                      preferred_width=30),
               Column("aligned", "aligned", numeric=True, priority=3),
               Column("median_rms", "fit rms px", numeric=True, priority=6),
               Column("stack", "stack", priority=7, shrink=True, min_width=12, preferred_width=30)]
"""The run summary's columns: at 80 columns the counts and reasons come first, the stack's file last."""


def _print_step(name: str, text: str) -> None:
    """One step's result, as soon as it is known (a long night shows how far it got)."""
    console.print(styled(name, "bold", f": {text}"))


def _run_catalog(out: Path, command: str) -> str | None:
    """The catalog `run` and `demo` write: one named with --db on the command line, else OUT/obsdb.sqlite.

    OBSDB_DB from the environment is not used: an export left from an earlier
    exploration must not send a new night into an old catalog.  When it names
    another catalog, one line says it was ignored and how to use it on purpose.
    """
    from obsdb.catalog.db import database_url

    if state.db and not state.db_from_env:
        return state.db
    if state.db and database_url(state.db) != database_url(str(out / "obsdb.sqlite")):
        err_console.print(styled("note:", "yellow", f" OBSDB_DB={state.db} is ignored: `obsdb {command}` writes "
                                 f"{out / 'obsdb.sqlite'} unless --db is given on its command line; to write that "
                                 f'catalog on purpose: obsdb --db "$OBSDB_DB" {command} ...'), soft_wrap=True)
    return None


def _advice(summary, rerun: str) -> None:
    """Which bands gave no stack and why, then what to do: advice true for `run` (catalog and rerun spelled out)."""
    from obsdb.pipeline.run import advice

    if summary.not_stacked:
        console.print(styled("nothing was stacked:" if not summary.stacked else "not stacked:", "bold yellow"))
        for line in summary.not_stacked:
            console.print(f"  {line}")
    elif not summary.stacked:
        console.print(styled("nothing was aligned:", "bold yellow", " " + "; ".join(summary.stopped)))
    for line in advice(summary, rerun):
        console.print(line, soft_wrap=True)


def _rerun(db: str | None, folder: Path, out: Path, options: list[str] = ()) -> str:
    """The `obsdb run` command that processes this night again into the same catalog, with ``options``."""
    import shlex

    words = (["obsdb"] + (["--config", state.config] if state.config and not state.config_from_env else [])
             + (["--db", db] if db else []) + ["run", str(folder), "--out", str(out), *options])
    return "`" + " ".join(shlex.quote(str(word)) for word in words) + "`"


def _print_run(summary) -> None:
    if summary.on_step is None:
        for name, text in summary.steps:
            _print_step(name, text)
    per_target = any(row.get("target") is not None for row in summary.bands)
    rows = []
    for row in summary.bands:
        rows.append({"target": row.get("target") or "-", "band": row["band"], "frames": fmt(row["frames"]),
                     "rejected": fmt(row["rejected"]),
                     "rejected_by": ", ".join(f"{name} {count}" for name, count in row["rejected_by"].items()) or "-",
                     "aligned": fmt(row["aligned"]), "median_rms": fmt(row["median_rms"], 4),
                     "stack": f"{Path(row['stack']).name} ({frames_text(row['stack_frames'])})" if row["stack"]
                     else "-"})
    columns = [c for c in RUN_COLUMNS if per_target or c.key != "target"]
    print_table(rows, columns, title="night summary by target and band" if per_target else "night summary by band",
                hint="a wider terminal shows them; the render line above names the stacks")
    if summary.report_path:
        console.print(f"report: {summary.report_path}")
    for path, reason in summary.failed_files:
        err_console.print(styled("unreadable:", "red", f" {path}: {reason}"), soft_wrap=True)


@app.command()
@with_qa_threshold_options
@with_executor_options
def run(
    folder: Path = typer.Argument(..., help="Folder of the night's FITS frames (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (aligned frames, stacks, report)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes for the pixel work."),
    stack: str = typer.Option("median", "--stack", help="Stack method: median, mean or sigma-clip."),
    render_: bool = typer.Option(True, "--render/--no-render", help="Write aligned frames and stacks."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report."),
    photometry: bool = typer.Option(True, "--photometry/--no-photometry",
                                    help="Measure aperture photometry, sources and zero points (then `obsdb "
                                         "lightcurve` works)."),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
    qa_thresholds: dict = None,
) -> None:
    """Do the whole night: init, ingest, qa, align, render, stack and report, with a summary per band.

    The catalog is OUT/obsdb.sqlite, or the one given with --db on this command line
    (`obsdb --db CATALOG run ...`); OBSDB_DB from the environment is not used.  The [ingest]
    and [qa] sections of obsdb.toml (or --config) apply, as they do to ingest and qa; the
    threshold options below override [qa].

    Every step reports even when QA accepts nothing or nothing can be aligned; the report
    then says, per band, why nothing was stacked.  Exit status: 0 stacks written (bands
    without one are listed), 3 the night ran but gave no stack (with --no-render: no frame
    aligned), 1 an error or unreadable files."""
    from obsdb.api import Catalog
    from obsdb.cli.common import load_config_verbosely

    if not folder.is_dir():
        with user_errors():
            from obsdb.errors import ObsdbError

            raise ObsdbError(f"{folder}: not a folder")
    db = _run_catalog(out, "run")
    with open_executor(executor_kind, workers, scheduler) as executor, user_errors():
        config = load_config_verbosely(data_folders=[folder])
        summary = Catalog.run(folder, out, db=db, workers=workers, stack=stack, render_outputs=render_,
                              executor=executor, photometry=photometry,
                              report=report, thresholds={**config.qa, **(qa_thresholds or {})},
                              ingest_config=config.ingest, calibration_sections=config.calibration.sections(),
                              step=lambda name: err_console.print(f"» {name}", style="cyan"),
                              progress_factory=progress_bar, on_step=_print_step)
    _print_run(summary)
    if summary.not_stacked or not summary.stacked:
        given = [word for name, value in (qa_thresholds or {}).items()
                 for word in (f"--{name.replace('_', '-')}", value)]
        given += (["--stack", stack] if stack != "median" else []) + ([] if render_ else ["--no-render"])
        _advice(summary, _rerun(db, folder, out, given))
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command()
def demo(
    out: Path = typer.Option(Path("obsdb-demo"), "--out", "-o", help="Folder for the demo night and its outputs."),
    frames_: int = typer.Option(36, "--frames", "-n", min=6, help="Frames in the simulated night."),
    size: int = typer.Option(512, "--size", min=128, help="Frame size in pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the night."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes for the pixel work."),
) -> None:
    """Simulate a night (several bands, pointing groups, cloud, trails, defocus) and run the whole pipeline on it.

    The catalog is OUT/obsdb.sqlite, or the one given with --db on this command line;
    OBSDB_DB from the environment is not used."""
    from obsdb.api import Catalog
    from obsdb.pipeline.allocator import tune_for_frames
    from obsdb.simulate import simulate_night

    tune_for_frames()  # as every command on pixels does (open_executor)
    night = out / "night"
    db = _run_catalog(out, "demo")
    with user_errors():
        err_console.print(styled("» simulate", "cyan", f" {frames_} frames of {size}x{size} into {night}"))
        with progress_bar("simulate") as progress:
            simulate_night(night, seed=seed, size=size, n_frames=frames_, progress=progress)
        summary = Catalog.run(night, out, db=db, workers=workers,
                              step=lambda name: err_console.print(f"» {name}", style="cyan"),
                              progress_factory=progress_bar, on_step=_print_step)
    _print_run(summary)
    if summary.not_stacked:
        _advice(summary, _rerun(db, night, out))
    console.print(f"catalog: {summary.catalog}", soft_wrap=True)
    console.print(f"try: obsdb --db {summary.catalog} rejected", soft_wrap=True)
    console.print(f"review it in a browser: obsdb --db {summary.catalog} serve", soft_wrap=True)
