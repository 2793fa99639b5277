"""The colour-magnitude diagram command (`obsdb cmd`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from obsdb.cli.common import (OutputFormat, app, clean_nan, console, fmt, open_catalog, print_csv, print_json,
                              user_errors)
from obsdb.errors import ObsdbError

HINT = "--wide shows all, --format json has everything"


def parse_colour(text: str) -> tuple[str, str]:
    """``"B-V"`` -> ``("B", "V")``; a one-line error for anything else."""
    parts = [p.strip() for p in text.split("-")]
    if len(parts) != 2 or not all(parts):
        raise ObsdbError(f"--colour {text!r}: two bands joined by a dash, e.g. B-V")
    return parts[0], parts[1]


@app.command("cmd")
def cmd_command(
    night: Optional[str] = typer.Argument(None, help="The night (YYYY-MM-DD); default every night."),
    colour: str = typer.Option("B-V", "--colour", "-c", help="The colour, BLUE-RED (bands as in FILTER)."),
    mag: Optional[str] = typer.Option(None, "--mag", "-m", help="The magnitude axis's band (default the "
                                                                "colour's red band)."),
    standards: Optional[Path] = typer.Option(None, "--standards", help="CSV of RA, Dec and magnitudes: "
                                             "calibrate (zero point and colour term per band; needs a WCS)."),
    accepted_only: bool = typer.Option(True, "--accepted-only/--all", help="Combine only accepted frames "
                                                                            "(default), or every frame."),
    fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
    wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the CMD into FILE.svg or FILE.png."),
) -> None:
    """A colour-magnitude diagram: per source, the mean magnitude in each band over the (accepted)
    frames that measured it unflagged, with errors and frame counts, and the colour; instrumental
    magnitudes (on each band's ensemble zero point), or calibrated with --standards."""
    with user_errors():
        blue, red = parse_colour(colour)
        if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
            raise ObsdbError(f"--plot {plot}: a .svg or .png file")
    with open_catalog() as catalog, user_errors():
        table = catalog.cmd(night=night, blue=blue, red=red, magnitude=mag, standards=standards,
                            accepted_only=accepted_only)
        if plot is not None:
            _plot(table, plot)
    meta = table.meta
    bands = list(dict.fromkeys((meta["blue"], meta["red"], meta["magnitude"])))
    calibration = meta.get("calibration") or {}
    rows = [{name: (row[name].item() if hasattr(row[name], "item") else row[name]) for name in table.colnames}
            for row in table]
    if fmt_ is OutputFormat.json:
        print_json(clean_nan({"colour": meta["colour_name"], "magnitude": meta["magnitude"],
                              "accepted_only": meta["accepted_only"],
                              "frames": {b: len(v) for b, v in meta["frames"].items()},
                              "calibration": calibration, "rows": rows}))
        return
    if fmt_ is OutputFormat.csv:
        print_csv(rows, table.colnames)
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("id", "id", numeric=True, priority=0), Column("x", "x", numeric=True, priority=3),
            Column("y", "y", numeric=True, priority=3)]
    for b in bands:
        spec += [Column(f"mag_{b}", b, numeric=True, priority=0),
                 Column(f"mag_err_{b}", f"err {b}", numeric=True, priority=1),
                 Column(f"n_{b}", f"n {b}", numeric=True, priority=4)]
    spec += [Column("colour", meta["colour_name"], numeric=True, priority=0),
             Column("colour_err", "err", numeric=True, priority=1)]
    spec += [Column(f"cal_mag_{b}", f"{b} std", numeric=True, priority=2) for b in bands if b in calibration]
    cells = []
    for r in rows:
        cell = {"id": fmt(r["id"]), "x": fmt(r["x"], 1), "y": fmt(r["y"], 1), "colour": fmt(r["colour"], 3),
                "colour_err": fmt(r["colour_err"], 3)}
        for b in bands:
            cell.update({f"mag_{b}": fmt(r[f"mag_{b}"], 3), f"mag_err_{b}": fmt(r[f"mag_err_{b}"], 3),
                         f"n_{b}": fmt(r[f"n_{b}"]), f"cal_mag_{b}": fmt(r.get(f"cal_mag_{b}"), 3)})
        cells.append(cell)
    frames = ", ".join(f"{b} {len(v)}" for b, v in meta["frames"].items())
    kind = "accepted frames" if meta["accepted_only"] else "frames"
    print_table(cells, spec, title=f"CMD {meta['magnitude']} vs {meta['colour_name']}: {len(rows)} sources "
                                   f"({kind}: {frames})", wide=wide, hint=HINT)
    for band, fit in calibration.items():
        console.print(f"{band} = {band.lower()} {fit['zero_point']:+.4f} ± {fit['zero_point_err']:.4f} "
                      f"{fit['colour_term']:+.4f} ± {fit['colour_term_err']:.4f} ({fit['colour']}): "
                      f"{fit['n_standards']} of {fit['n_matched']} standards, RMS {_mmag(fit['rms'])}")
    if plot is not None:
        console.print(f"plot: {plot}")


def _mmag(value) -> str:
    return f"{1000 * value:.1f} mmag" if isinstance(value, float) and math.isfinite(value) else "-"


def _plot(table, path: Path) -> None:
    """Draw the CMD into ``path``, written atomically: SVG as the report draws it (calibrated when the table
    is), PNG with matplotlib."""
    from obsdb.imaging.fitsio.write import atomic_write_bytes
    from obsdb.present.photometry_views import cmd_svg, standalone_svg

    meta = table.meta
    calibrated = "cal_colour" in table.colnames and f"cal_mag_{meta['magnitude']}" in table.colnames
    rows = [{name: row[name] for name in table.colnames} for row in table]
    title = f"{meta['magnitude']} vs {meta['colour_name']}, {len(rows)} sources"
    if path.suffix.lower() == ".svg":
        figure = cmd_svg(rows, blue=meta["blue"], red=meta["red"], magnitude=meta["magnitude"],
                         calibrated=calibrated, title=title)
        atomic_write_bytes(path, standalone_svg(figure).encode())
        return
    import io

    from matplotlib.figure import Figure

    system = "standard" if calibrated else "instrumental"
    colour = table["cal_colour" if calibrated else "colour"]
    magnitude = table[("cal_mag_" if calibrated else "mag_") + meta["magnitude"]]
    figure = Figure(figsize=(5, 6), dpi=100)
    axes = figure.add_subplot()
    axes.errorbar(colour, magnitude, xerr=table["colour_err"], yerr=table[f"mag_err_{meta['magnitude']}"],
                  fmt="o", ms=3, elinewidth=0.6)
    axes.invert_yaxis()
    axes.set_xlabel(f"{meta['blue']} - {meta['red']} ({system})")
    axes.set_ylabel(f"{meta['magnitude']} ({system})")
    axes.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
