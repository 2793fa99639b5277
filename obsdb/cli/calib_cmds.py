"""Calibration commands: `obsdb calibrate` (build the masters, match every light) and `obsdb masters`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import List, Optional

import typer

from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES

from obsdb.cli.common import (ReportFormat, app, clean_nan, console, err_console, night_option, nights_arg,
                              open_catalog, open_executor, print_json, state, styled, user_errors,
                              with_executor_options)


@app.command()
@with_executor_options
def calibrate(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the master FITS files (created)."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes building masters."),
    night: Optional[List[str]] = night_option(),
    write_lights: bool = typer.Option(False, "--write-lights", help="Also write each light with a master, "
                                      "calibrated and trimmed, to OUT/calibrated/NAME_cal.fits."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Build master bias, dark and flat frames from the night's own calibration frames, and record
    which master of each kind calibrates every light, and why (or why none does).

    Rejected frames (a calibration check's tag, a person's reject) never enter a master; a set of
    fewer than 3 frames gets no master.  Masters name their members and SHA-256 in their header;
    files in --out that obsdb did not write are never replaced.  Lights whose masters changed are
    measured again (stars, metrics) on their calibrated pixels.  See docs/calibration.md."""
    from obsdb.config import load_config

    with open_executor(executor_kind, workers, scheduler) as executor, open_catalog() as catalog, user_errors():
        sections = load_config(state.config).calibration.sections()
        report = catalog.calibrate(out, nights=nights_arg(night), executor=executor, author=getpass.getuser(),
                                   write_lights=write_lights, sections=sections)
    if fmt_ is ReportFormat.json:
        print_json(clean_nan({"built": report.built, "reused": report.reused, "refused": report.refused,
                              "failed": report.failed, "matches": report.matches,
                              "uncalibrated": report.uncalibrated(), "remeasured": report.remeasured,
                              "not_remeasured": report.not_remeasured, "lights_written": report.lights_written,
                              "lights_unchanged": report.lights_unchanged, "compared": report.compared,
                              "unlike": [{"frame": label, "reason": reason} for label, reason in report.unlike],
                              "lights_failed": report.lights_failed}))
        return
    for master in report.built:
        console.print(f"built master {master['id']}: {master['key']} -> {master['path']}", soft_wrap=True)
    for master in report.reused:
        console.print(f"reused master {master['id']}: {master['key']} (same members, unchanged)", soft_wrap=True)
    for label, reason in report.unlike:
        console.print(styled("rejected:", "yellow", f" {label}: {reason}"), soft_wrap=True)
    for line in report.refused:
        console.print(styled("left out:", "yellow", f" {line}"), soft_wrap=True)
    for line in report.failed:
        err_console.print(styled("failed:", "red", f" {line}"), soft_wrap=True)
    for path, reason in report.not_remeasured:
        err_console.print(styled("not measured again:", "red", f" {path}: {reason}"), soft_wrap=True)
    for line in report.lights_failed:
        err_console.print(styled("light not written:", "red", f" {line}"), soft_wrap=True)
    lights = len({row["frame_id"] for row in report.matches})
    missing = report.uncalibrated()
    console.print(f"calibrate: {len(report.built)} masters built, {len(report.reused)} reused; {lights} lights "
                  f"matched: {missing['bias']} without bias, {missing['dark']} without dark, "
                  f"{missing['flat']} without flat (obsdb show FRAME says why); {report.remeasured} measured "
                  "again on calibrated pixels"
                  + (f"; {len(report.lights_written)} calibrated lights written to {Path(out) / 'calibrated'}"
                     + (f" ({len(report.lights_unchanged)} unchanged)" if report.lights_unchanged else "")
                     if write_lights else "")
                  + (f"; {len(report.unlike)} calibration frames unlike the previous master"
                     if report.unlike else ""), soft_wrap=True)


@app.command()
def masters(
    night: Optional[List[str]] = night_option(),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    mark_bad: Optional[List[int]] = typer.Option(None, "--mark-bad", help="Mark this master bad (repeatable): "
                                                 "it is never matched to a light again (run calibrate to rematch)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, with --mark-bad (required)."),
) -> None:
    """The library of master calibration frames: kind, night, band/exposure, frames, file, and
    whether it is bad (never used) and why."""
    if mark_bad and not (reason or "").strip():
        err_console.print("error: --mark-bad needs --reason (why the master must not be used)")
        raise typer.Exit(2)
    with open_catalog() as catalog, user_errors():
        if mark_bad:
            changed = catalog.mark_masters_bad(mark_bad, reason.strip(), author=getpass.getuser())
            err_console.print(f"{changed} masters marked bad; run obsdb calibrate to match the lights again")
        rows = catalog.masters(nights=nights_arg(night))
        coverage = catalog.calibration_coverage(nights=nights_arg(night))
    if fmt_ is ReportFormat.json:
        print_json(clean_nan(rows))
        return
    from obsdb.cli.tables import Column, print_table

    columns = [Column("id", "id", numeric=True, priority=0), Column("kind", "kind", priority=0),
               Column("night", "night", priority=1), Column("detail", "band/exp", priority=1),
               Column("n", "frames", numeric=True, priority=1), Column("temp", "temp C", numeric=True, priority=3),
               Column("state", "state", priority=2, shrink=True, min_width=8, preferred_width=24),
               Column("file", "file", priority=2, shrink=True, min_width=12, preferred_width=40)]
    table = []
    for m in rows:
        detail = m["band"] if m["kind"] == "flat" else (f"{m['exptime']:g} s" if m["exptime"] is not None else "")
        state = ("bad: " + (m["bad_reason"] or "")) if m["bad"] else ("ok" if m["written"] else "pending")
        table.append({"id": str(m["id"]), "kind": m["kind"], "night": m["night"], "detail": detail or "",
                      "n": str(m["n_frames"]), "temp": "" if m["ccd_temp"] is None else f"{m['ccd_temp']:.1f}",
                      "state": state, "file": m["path"]})
    print_table(table, columns, title=f"{len(rows)} masters")
    for line in coverage_lines(coverage):
        console.print(line, soft_wrap=True)


def coverage_lines(coverage: list[dict]) -> list[str]:
    """One line per night and band that has lights: how many lack a master of each kind."""
    lines = []
    for row in coverage:
        gaps = [f"{row['without_' + kind]} without {kind}" for kind in CALIBRATION_IMAGE_TYPES
                if row["without_" + kind]]
        if row["unmatched"]:
            gaps.append(f"{row['unmatched']} not matched yet (run obsdb calibrate)")
        lights = f"{row['lights']} light" + ("" if row["lights"] == 1 else "s")
        lines.append(f"{row['night']} {row['band'] or '-'}: {lights}; " + ("; ".join(gaps) if gaps else "all matched"))
    return lines
