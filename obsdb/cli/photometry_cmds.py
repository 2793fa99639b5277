"""Photometry commands: measure (`photometry`), list the sources (`sources`), one star's light curve
(`lightcurve`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer

from obsdb.cli.common import (OutputFormat, app, clean_nan, console, err_console, fmt, night_option, nights_arg,
                              open_catalog, open_executor, print_csv, print_json, progress_bar, styled,
                              user_errors, with_executor_options)
from obsdb.errors import ObsdbError

HINT = "--wide shows all, --format json has everything"


@app.command()
@with_executor_options
def photometry(
    night: Optional[str] = typer.Argument(None, help="The night (YYYY-MM-DD); default every night."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Fixed aperture radius in pixels "
                                                                  "(default 1.5 x each frame's FWHM)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes."),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Measure aperture photometry of every light frame's stored stars (only frames not yet measured
    or changed), identify the same star across frames through the alignment, and fit each frame's
    ensemble zero point; print frames measured, sources, the median zero-point error and the
    repeatability of bright stars."""
    with open_executor(executor_kind, workers, scheduler) as executor, open_catalog() as catalog, user_errors(), \
            progress_bar("photometry") as progress:
        report = catalog.photometer(night=night, radius=radius, workers=workers, executor=executor,
                                    progress=progress)
    console.print(f"frames measured: {report.measured} ({report.current} already current, "
                  f"{len(report.failed)} failed)")
    console.print(f"sources: {report.sources} in {report.identified} identified frames"
                  + (f", {report.variables} flagged variable" if report.variables else ""))
    zp = report.median_zero_point_error
    console.print("median zero-point error: " + (f"{zp * 1000:.1f} mmag" if zp is not None else "-"))
    for band, spread in sorted(report.repeatability.items()):
        console.print(f"repeatability of bright stars (S/N > 100), {band}: {spread * 1000:.1f} mmag")
    if report.not_identified:
        err_console.print(styled("not identified:", "yellow",
                                 f" {len(report.not_identified)} frames: {report.not_identified[0][1]}"),
                          soft_wrap=True)
    for path, reason in report.failed:
        err_console.print(styled("not measured:", "red", f" {reason}"), soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def sources(
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only sources measured in this band."),
    fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
    wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """The identified sources: id, position in the reference's pixels (and RA, Dec with a WCS), frames,
    mean instrumental magnitude per band, and whether the star varies (reduced chi-square beyond
    the ensemble's limit)."""
    with open_catalog() as catalog, user_errors():
        table = catalog.sources(night=nights_arg(night), band=band)
    rows = _table_rows(table)
    bands = [name[4:] for name in table.colnames if name.startswith("mag_") and not name.startswith("mag_err_")]
    if fmt_ is OutputFormat.json:
        print_json(clean_nan(rows))
        return
    columns = ["id", "night", "reference", "x", "y", "ra", "dec", "n_frames", "variable"] + [
        f"{kind}_{b}" for b in bands for kind in ("mag", "mag_err", "chi2")]
    if fmt_ is OutputFormat.csv:
        print_csv(rows, columns)
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("id", "id", numeric=True, priority=0), Column("x", "x", numeric=True, priority=1),
            Column("y", "y", numeric=True, priority=1), Column("ra", "RA", numeric=True, priority=6),
            Column("dec", "Dec", numeric=True, priority=6), Column("n_frames", "n", numeric=True, priority=3),
            *[Column(f"mag_{b}", b, numeric=True, priority=2) for b in bands],
            Column("variable", "var", priority=4)]
    cells = [{"id": fmt(r["id"]), "x": fmt(r["x"], 1), "y": fmt(r["y"], 1), "ra": fmt(r["ra"], 5),
              "dec": fmt(r["dec"], 5), "n_frames": fmt(r["n_frames"]),
              "variable": "yes" if r["variable"] else "",
              **{f"mag_{b}": fmt(r[f"mag_{b}"], 3) for b in bands}} for r in rows]
    print_table(cells, spec, title=f"sources ({len(rows)})", wide=wide, hint=HINT)
    if any(cell[f"mag_{b}"] == "-" for cell in cells for b in bands):
        # Said once, not left for the user to guess: "-" is not "not measured".
        console.print("-: no unflagged measurement in that band (flags: obsdb lightcurve ID)")


@app.command()
def lightcurve(
    source: Optional[int] = typer.Argument(None, help="Source id (see `obsdb sources`)."),
    near: Optional[str] = typer.Option(None, "--near", help="X,Y in the reference frame's pixels (0-based): the "
                                                            "nearest source within 5 px."),
    radec: Optional[str] = typer.Option(None, "--radec", help="RA,DEC in degrees, when the reference has a WCS: "
                                                              "the nearest source within 10 arcsec."),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw it into FILE.png or FILE.svg."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """One star's light curve, one row per frame: band, time (MJD, UTC, mid-exposure; and BJD_TDB when the
    star has sky coordinates and the night a site), differential
    magnitude (instrumental less the frame's ensemble zero point), its error, airmass and the
    frame's verdict."""
    with user_errors():
        given = [v is not None for v in (source, near, radec)]
        if sum(given) != 1:
            raise ObsdbError("give one of SOURCE, --near X,Y or --radec RA,DEC")
        if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
            raise ObsdbError(f"--plot {plot}: a .png or .svg file")
        position = {"near": _pair("--near", near)} if near else ({"radec": _pair("--radec", radec)} if radec else {})
    with open_catalog() as catalog, user_errors():
        table = catalog.lightcurve(source, band=band, night=nights_arg(night), **position)
        if plot is not None:
            _plot(table, plot)
    rows = _table_rows(table)
    columns = ["frame", "band", "mjd_utc", *(["bjd_tdb"] if "bjd_tdb" in table.colnames else []), "mag",
               "mag_err", "airmass", "status", "flags"]
    if fmt_ is OutputFormat.json:
        print_json(clean_nan({"source": table.meta["id"], "x": table.meta["x"], "y": table.meta["y"],
                              "ra": table.meta["ra"], "dec": table.meta["dec"], "time": table.meta["time"],
                              "bjd_tdb": table.meta.get("bjd_tdb"), "rows": rows}))
        return
    if fmt_ is OutputFormat.csv:
        print_csv(rows, columns)
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("frame", "frame", priority=0), Column("band", "band", priority=1),
            Column("mjd_utc", "MJD UTC mid-exp", numeric=True, priority=0),
            *([Column("bjd_tdb", "BJD_TDB", numeric=True, priority=4)] if "bjd_tdb" in table.colnames else []),
            Column("mag", "diff mag", numeric=True, priority=0), Column("mag_err", "error", numeric=True, priority=0),
            Column("airmass", "airmass", numeric=True, priority=2), Column("status", "verdict", priority=1),
            Column("flags", "flags", numeric=True, priority=3)]
    cells = [{"frame": str(r["frame"]), "band": r["band"] or "-", "mjd_utc": _mjd(r["mjd_utc"]),
              "bjd_tdb": _mjd(r.get("bjd_tdb")), "mag": fmt(r["mag"], 4),
              "mag_err": fmt(r["mag_err"], 4), "airmass": fmt(r["airmass"], 3), "status": r["status"],
              "flags": fmt(r["flags"])} for r in rows]
    meta = table.meta
    where = f"x {meta['x']:.1f} y {meta['y']:.1f}" + (f", RA {meta['ra']:.5f} Dec {meta['dec']:.5f}"
                                                     if meta.get("ra") is not None else "")
    print_table(cells, spec, title=f"source {meta['id']} ({where}): {len(rows)} frames", hint=HINT)
    if plot is not None:
        console.print(f"plot: {plot}")


def _mjd(value) -> str:
    """An MJD to 1 s (5 decimals), without thousands separators; '-' when unknown."""
    return f"{value:.5f}" if isinstance(value, float) and math.isfinite(value) else "-"


def _pair(option: str, text: str) -> tuple[float, float]:
    """Two numbers from ``A,B``; a one-line error otherwise."""
    parts = text.replace(" ", "").split(",")
    try:
        a, b = (float(p) for p in parts)
    except ValueError:
        raise ObsdbError(f"{option} {text!r}: two numbers separated by a comma, e.g. 681.5,409.2") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ObsdbError(f"{option} {text!r}: finite numbers")
    return a, b


def _table_rows(table) -> list[dict]:
    """An astropy Table's rows as plain dicts (NaN kept; :func:`clean_nan` makes it null for JSON)."""
    rows = []
    for row in table:
        item = {}
        for name in table.colnames:
            value = row[name]
            item[name] = value.item() if hasattr(value, "item") else value
        rows.append(item)
    return rows


def _plot(table, path: Path) -> None:
    """Draw the light curve (differential magnitude against MJD, one colour per band) into a PNG or SVG,
    written atomically."""
    import io

    from matplotlib.figure import Figure

    from obsdb.imaging.fitsio.write import atomic_write_bytes

    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    for band in sorted(set(table["band"])):
        rows = table[table["band"] == band]
        axes.errorbar(rows["mjd_utc"], rows["mag"], yerr=rows["mag_err"], fmt="o", ms=3, label=band or "no band")
    axes.invert_yaxis()
    axes.set_xlabel("MJD (UTC, mid-exposure)")
    axes.set_ylabel("differential magnitude")
    axes.set_title(f"source {table.meta['id']}")
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lower()[1:])
    atomic_write_bytes(path, buffer.getvalue())
