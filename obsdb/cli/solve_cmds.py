"""`obsdb solve`: plate-solve the references with astrometry.net, verified before anything is recorded."""

from __future__ import annotations

import getpass
from typing import List, Optional

import typer

from obsdb.cli.common import (OutputFormat, app, clean_nan, console, err_console, fmt, open_catalog, print_csv,
                              print_json, progress_bar, styled, user_errors)

SOLVE_COLUMNS = ["frame", "night", "outcome", "ra", "dec", "pixel_scale", "n_matched", "n_reference",
                 "residual_arcsec", "index", "cpu_seconds", "reason"]
"""The CSV columns, in order (JSON has the same keys and the frame's catalog id)."""


@app.command()
def solve(
    night: Optional[List[str]] = typer.Argument(None, help="Only these nights (YYYY-MM-DD; default: every night)."),
    frame: Optional[str] = typer.Option(None, "--frame", help="Solve these frames (a selector, e.g. 4056 or "
                                        "2026-03-14:1005) instead of the references."),
    reference: bool = typer.Option(True, "--reference/--all-frames",
                                   help="Each night's reference of each target (default), or every accepted "
                                        "light frame."),
    force: bool = typer.Option(False, "--force", help="Also solve frames whose header has a WCS, and solve "
                                                      "again frames already solved."),
    cpulimit: float = typer.Option(60.0, "--cpulimit", min=1.0, help="CPU seconds the solver may spend per frame."),
    fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
) -> None:
    """Plate-solve each night's reference frame with astrometry.net's solve-field, verify the
    solution against the index stars it matched, and record it with its provenance.

    Hints come from the header's pointing (RA/DEC, OBJCTRA/OBJCTDEC) and pixel scale (PIXSCALE,
    FOCALLEN with XPIXSZ).  A solution is recorded only when enough matched index stars land on
    catalogued stars close enough (docs/astrometry.md gives the thresholds); a frame whose header
    has a WCS keeps it.  Needs `apt-get install astrometry.net astrometry-data-tycho2-NN`."""
    with open_catalog() as catalog, user_errors(), progress_bar("solve") as progress:
        outcomes = catalog.solve(night=list(night) if night else None, frame=frame, all_frames=not reference,
                                 force=force, cpulimit=cpulimit, user=getpass.getuser(), progress=progress)
    rows = [o.to_dict() for o in outcomes]
    if fmt_ is OutputFormat.json:
        print_json(clean_nan(rows))
    elif fmt_ is OutputFormat.csv:
        print_csv(rows, SOLVE_COLUMNS)
    else:
        _print_table(rows)
    if any(o.outcome in ("failed", "refused") for o in outcomes):
        raise typer.Exit(1)


def _print_table(rows: list[dict]) -> None:
    from obsdb.cli.tables import Column, print_table

    columns = [Column("frame", "frame", priority=0, shrink=True, min_width=8, preferred_width=16),
               Column("outcome", "outcome", priority=1),
               Column("radec", "RA, Dec (deg)", priority=2),
               Column("scale", "\"/px", numeric=True, priority=4),
               Column("matched", "matched", numeric=True, priority=3),
               Column("residual", "resid \"", numeric=True, priority=3),
               Column("night", "night", priority=6),
               Column("index", "index", priority=7, shrink=True, min_width=10, preferred_width=22)]
    shown = [{"frame": r["frame"], "outcome": r["outcome"], "night": r["night"],
              "radec": "-" if r["ra"] is None else f"{r['ra']:.4f}, {r['dec']:+.4f}",
              "scale": fmt(r["pixel_scale"], 3),
              "matched": "-" if r["n_matched"] is None else f"{r['n_matched']}/{r['n_reference']}",
              "residual": fmt(r["residual_arcsec"], 2), "index": r["index"] or "-"} for r in rows]
    print_table(shown, columns, title="plate solutions", hint="--format json has everything")
    for row in rows:
        if row["outcome"] in ("failed", "refused"):
            err_console.print(styled(f"{row['outcome']}:", "red", f" {row['frame']}: {row['reason']}"),
                              soft_wrap=True)
    solved = sum(r["outcome"] == "solved" for r in rows)
    console.print(f"solve: {solved} of {len(rows)} frames solved and recorded"
                  + "".join(f"; {n} {what}" for what, n in _counts(rows).items() if n), soft_wrap=True)


def _counts(rows: list[dict]) -> dict[str, int]:
    labels = {"header-wcs": "kept their header's WCS", "current": "already solved", "no-stars": "without stars",
              "refused": "refused by verification", "failed": "not solved"}
    return {label: sum(r["outcome"] == outcome for r in rows) for outcome, label in labels.items()}
