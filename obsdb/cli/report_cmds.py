"""The report command: a static HTML page of the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obsdb.cli.common import (open_executor, with_executor_options, app, console, err_console, night_option, nights_arg, open_catalog, progress_bar, styled,
                              user_errors)


@app.command()
@with_executor_options
def report(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for index.html and its PNG files (created)."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails",
                                    help="Draw a thumbnail of every light frame (reads each frame once)."),
    size: int = typer.Option(160, "--thumbnail-size", min=16, max=1024,
                             help="Longest side of a thumbnail, pixels."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes for the thumbnails."),
    night: Optional[List[str]] = night_option(),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Write a static HTML report: quality against time per band, the shift track of every
    alignment run, a thumbnail grid, every rejected frame with all its reasons, and the stacks.

    The page is OUT/index.html; it needs no network and no JavaScript.  Thumbnails of
    unchanged frames are reused from an earlier report in the same folder."""
    with open_executor(executor_kind, workers, scheduler) as executor, open_catalog() as catalog, \
            progress_bar("report") as progress, user_errors():
        result = catalog.report(out, thumbnails=thumbnails, workers=workers, executor=executor,
                                thumbnail_size=size, progress=progress, nights=nights_arg(night))
    for warning in result.warnings:
        err_console.print(styled("warning:", "yellow", f" {warning}"), soft_wrap=True)
    console.print(f"report: {result.index_path} ({result.n_images} images, "
                  f"{result.n_thumbnails_drawn} thumbnails drawn now, "
                  f"{len(result.rejected_numbers)} rejected frames listed)", soft_wrap=True)
