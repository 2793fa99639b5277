"""Frames in and out of other tools: ``obsdb export siril|wbpp|astrobin|verdicts`` and ``obsdb import nina``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obsdb.cli.common import (OutputFormat, app, console, err_console, fail, night_option, nights_arg, open_catalog,
                              print_csv, print_json, styled, user_errors)
from obsdb.text import plural

export_app = typer.Typer(help="Hand frames to Siril, PixInsight's WBPP and AstroBin, and verdicts to other tools.",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")
import_app = typer.Typer(help="Join what capture software recorded (N.I.N.A.'s ImageMetaData.csv) to the frames.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

STATUS_HELP = "Frames to export: accepted (default), rejected, pending or any."


def _status(value: str) -> str:
    if value not in ("accepted", "rejected", "pending", "any"):
        fail(f"--status {value!r}: expected accepted, rejected, pending or any")
    return value


def _finish(report, what: str) -> None:
    for line in report.notes:
        err_console.print(styled("note:", "yellow", f" {line}"), soft_wrap=True)
    for line in report.failed:
        err_console.print(styled("not exported:", "red", f" {line}"), soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@export_app.command("siril")
def export_siril(
    night: str = typer.Argument(..., help="The night (YYYY-MM-DD, as `obsdb nights` lists them)."),
    out: Path = typer.Option(..., "--out", "-o", help="Export folder: OUT/<band>/ (OUT/<target>/<band>/ for "
                                                       "several targets) with links and stack.ssf."),
    status: str = typer.Option("accepted", "--status", help=STATUS_HELP),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    where: Optional[str] = typer.Option(None, "--where", "-w", help="Only frames matching this expression "
                                                                   "(see obsdb frames)."),
    raw: bool = typer.Option(False, "--raw", help="Link the raw lights even where masters apply (default: "
                                                  "write those calibrated, as calibrate --write-lights does)."),
) -> None:
    """A night's lights as Siril sequences: links named light_00001.fits ... (or calibrated copies where
    masters apply) and a script per target and band; stack with `siril-cli -d FOLDER -s FOLDER/stack.ssf`."""
    with open_catalog() as catalog, user_errors():
        report = catalog.export_siril(out, night=night, status=_status(status), band=band, where=where,
                                      calibrated=not raw)
    for entry in report.folders:
        name = " ".join(p for p in (entry["target"], entry["band"]) if p) or "frames"
        calibrated = f", {entry['calibrated']} calibrated" if entry["calibrated"] else ""
        console.print(f"{name}: {plural(entry['frames'], 'frame')}{calibrated} -> {entry['folder']}")
        console.print(f"  siril-cli -d {entry['folder']} -s {entry['script']}")
    _finish(report, "siril")


@export_app.command("wbpp")
def export_wbpp(
    out: Path = typer.Option(..., "--out", "-o", help="Export folder for the tree of links and wbpp_files.csv."),
    status: str = typer.Option("accepted", "--status", help=STATUS_HELP),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    where: Optional[str] = typer.Option(None, "--where", "-w", help="Only frames matching this expression."),
    calibration: bool = typer.Option(True, "--calibration/--no-calibration",
                                     help="Also link the nights' bias, dark and flat frames (default: yes)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Lights as a folder tree PixInsight's WBPP groups by: TARGET/SESSION_<night>/FILTER_<band>/EXPTIME_<s>/
    XBINNING_<n>/, links to the catalogued files, and the same as a CSV file list."""
    with open_catalog() as catalog, user_errors():
        report = catalog.export_wbpp(out, nights=nights_arg(night), status=_status(status), band=band, where=where,
                                     calibration=calibration)
    console.print(f"linked {plural(report.rows, 'frame')} ({report.frames} lights) under {report.out}; "
                  f"{len(report.unchanged)} already there")
    _finish(report, "wbpp")


def _filter_ids(values: list[str] | None) -> dict[str, str]:
    ids = {}
    for value in values or []:
        band, sep, number = value.partition("=")
        if not sep or not band or not number.strip().isdigit():
            fail(f"--filter-id {value!r}: expected BAND=NUMBER, e.g. Ha=4663 (the number in the filter's "
                 "AstroBin URL)")
        ids[band] = number.strip()
    return ids


@export_app.command("astrobin")
def export_astrobin(
    out: Path = typer.Option(..., "--out", "-o", help="The CSV file to write."),
    status: str = typer.Option("accepted", "--status", help=STATUS_HELP),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    where: Optional[str] = typer.Option(None, "--where", "-w", help="Only frames matching this expression."),
    filter_id: Optional[List[str]] = typer.Option(None, "--filter-id",
                                                  help="BAND=ID: AstroBin's numeric id of a band's filter "
                                                       "(repeatable); without one the filter column is empty."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """AstroBin's acquisition CSV (its import dialog's columns): one row per night, filter and exposure."""
    ids = _filter_ids(filter_id)
    with open_catalog() as catalog, user_errors():
        report = catalog.export_astrobin(out, nights=nights_arg(night), status=_status(status), band=band,
                                         where=where, filter_ids=ids)
    console.print(f"wrote {plural(report.rows, 'row')} ({report.frames} lights) to {report.out}")
    _finish(report, "astrobin")


@export_app.command("verdicts")
def export_verdicts(
    out: Path = typer.Option(..., "--out", "-o", help="FILE.csv, or FILE.ecsv for astropy's typed CSV."),
    status: str = typer.Option("any", "--status", help="Frames: any (default), accepted, rejected or pending."),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    where: Optional[str] = typer.Option(None, "--where", "-w", help="Only frames matching this expression."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Each frame's verdict: night, frame, path, sha256, status, reasons, who decided and when."""
    with open_catalog() as catalog, user_errors():
        report = catalog.export_verdicts(out, nights=nights_arg(night), status=_status(status), band=band,
                                         where=where)
    console.print(f"wrote {plural(report.rows, 'verdict')} to {report.out}")
    _finish(report, "verdicts")


@import_app.command("nina")
def import_nina(
    csv_file: Path = typer.Argument(..., help="N.I.N.A.'s ImageMetaData.csv (Session Metadata plugin)."),
    tolerance: float = typer.Option(2.0, "--tolerance", help="Seconds between ExposureStartUTC and DATE-OBS "
                                                             "for a row matched by time (no file of its name)."),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f",
                                               help="table, json or csv: the rows that matched no frame."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Join N.I.N.A.'s per-frame HFR, star count, guiding RMS, focuser position and temperatures to the
    catalogued frames, by file name, else by time and filter.  Usable in --where: nina_hfr, nina_stars,
    guiding_rms (arcsec), focuser_position, focuser_temp, camera_temp."""
    with open_catalog() as catalog, user_errors():
        report = catalog.import_nina(csv_file, tolerance_s=tolerance, nights=nights_arg(night))
    unmatched = [{"row": r, "file": f, "reason": why} for r, f, why in report.unmatched]
    if output_format == OutputFormat.json:
        print_json({"matched": report.matched, "by_name": report.by_name, "by_time": report.by_time,
                    "unmatched": unmatched, "source": report.source})
        return
    if output_format == OutputFormat.csv:
        print_csv(unmatched, ["row", "file", "reason"])
        return
    console.print(f"joined {plural(report.matched, 'row')} of {report.source} to frames "
                  f"({report.by_name} by file name, {report.by_time} by time)")
    for item in unmatched[:20]:
        err_console.print(styled("not matched:", "yellow", f" row {item['row']} {item['file']}: {item['reason']}"),
                          soft_wrap=True)
    if len(unmatched) > 20:
        err_console.print(f"... and {len(unmatched) - 20} more (--format csv lists them all)")
