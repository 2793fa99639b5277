"""`obsdb doctor`: checks and repairs of the catalog's derived data."""

from __future__ import annotations

import typer

from obsdb.cli.common import app, console, fail, open_catalog, user_errors


@app.command()
def doctor(
    rebuild_summaries: bool = typer.Option(
        False, "--rebuild-summaries",
        help="Recompute every frame's status and every night's summary rows from what the catalog records."),
) -> None:
    """Check or repair the catalog's derived data.

    The status of each frame and the per-night summaries (counts, medians, exposure) are kept at
    write time; --rebuild-summaries recomputes them all in one transaction and says how many
    statuses were wrong (none, unless something wrote to the catalog behind obsdb's back).
    """
    if not rebuild_summaries:
        fail("doctor: say what to do (--rebuild-summaries)", code=2)
    with open_catalog() as catalog, user_errors():
        report = catalog.rebuild_summaries()
    console.print(f"rebuilt the summaries of {report['nights']:,} nights; {report['frames']:,} frames, "
                  f"{report['changed']:,} statuses corrected")
