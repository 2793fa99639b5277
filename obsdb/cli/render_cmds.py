"""Commands that write outputs: render (aligned frames and stacks) and collect."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obsdb.text import plural
from obsdb.cli.common import (open_executor, with_executor_options, app, console, err_console, night_option, nights_arg, open_catalog, progress_bar, styled,
                              status_option, user_errors)


@app.command()
@with_executor_options
def render(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (never an input folder)."),
    run: Optional[int] = typer.Option(None, "--run", help="Alignment run (default: each frame's current run)."),
    interp: str = typer.Option("spline3", "--interp",
        help="spline3 (default: keeps centroids to 0.01 px and flux to 0.1%), linear, nearest or fourier."),
    status: str = status_option(what="Frames to render"),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    where: Optional[str] = typer.Option(None, "--where", "-w",
        help="Only frames matching this expression (see obsdb frames)."),
    stack: Optional[str] = typer.Option(None, "--stack",
        help="Also stack each band (each target's bands, when there are several): median, mean or sigma-clip."),
    previews: bool = typer.Option(False, "--previews",
        help="PNG preview of every aligned frame (stacks always get one)."),
    weight: Optional[str] = typer.Option(None, "--weight",
        help="Weigh the mean stack's frames: noise, fwhm, stars, snr, or a weight defined with "
             "`obsdb weight define`."),
    workers: int = typer.Option(1, "--workers", "-j", min=1,
        help="Processes (with one: two threads of this process; --executor serial keeps to one)."),
    memory_mb: float = typer.Option(512, "--memory-mb", help="Working memory budget of the stack, MiB."),
    night: Optional[List[str]] = night_option(),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Resample each frame once with its total shift from the catalog; optionally stack per band.

    Each output is OUT/<input file name> with OBSDB_DX/DY/RUN/REF, the interpolation and one
    HISTORY line per shift step; stacks are OUT/stack_<band>.fits with a coverage map
    (OUT/<target>/stack_<band>.fits when the frames belong to several targets)."""
    with open_executor(executor_kind, workers, scheduler) as executor, open_catalog() as catalog, user_errors(), \
            progress_bar("render") as progress:
        report = catalog.render(out, run=run, interpolation=interp, status=status, band=band, where=where,
                                stack=stack, nights=nights_arg(night), previews=previews, workers=workers,
                                weight=weight,
                                memory_limit_mb=memory_mb, progress=progress, executor=executor)
    console.print(f"wrote {len(report.frames)} aligned frames to {out}")
    for s in report.stacks:
        name = f"{s['target']} {s['band']}" if s.get("target") else s["band"]
        console.print(f"  stack {name}: {plural(s['frames'], 'frame')}, {s['exptime']:.0f} s -> {s['path']}")
    for frame, reason in report.skipped:
        err_console.print(styled("warning:", "yellow", f" {frame}: {reason}"), soft_wrap=True)
    for frame, reason in report.failed:
        err_console.print(styled("not rendered:", "red", f" {frame}: {reason}"), soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def collect(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the copies."),
    status: str = status_option(what="Frames to copy"),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    link: bool = typer.Option(False, "--link", help="Hard-link instead of copying."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Copy (or hard-link) the selected input frames into a folder, like the notebook's selected/."""
    with open_catalog() as catalog, user_errors():
        done = catalog.collect(out, status=status, band=band, link=link, nights=nights_arg(night))
    verb = "linked" if link else "copied"
    line = f"{verb} {len(done.written)} frame{'' if len(done.written) == 1 else 's'} to {out}"
    if done.present:
        line += f"; {len(done.present)} already there (same bytes), left as they were"
    console.print(line)
    if done.copied_not_linked:
        err_console.print(f"note: {done.copied_not_linked} copied instead of linked: --out is on another "
                          "filesystem, where a hard link cannot reach")
