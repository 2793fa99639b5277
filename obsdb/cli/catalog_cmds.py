"""Commands that build and query the catalog: init, ingest, frames, show, summary, simulate."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obsdb.text import not_one_of, plural
from obsdb.cli.common import (open_executor, with_executor_options, ReportFormat, OutputFormat, app, clean_nan, console, err_console, fail, fmt, night_option,
                              nights_arg, open_catalog, filter_hints, print_csv, print_json, print_json_stream, progress_bar,
                              state, status_option, image_type_option, styled,
                              user_errors)


@app.command()
def init() -> None:
    """Create the catalog, or upgrade it to the current schema (Alembic upgrade to head)."""
    from obsdb.api import Catalog

    with user_errors():
        url, before, after = Catalog.upgrade(state.db)
    if before == after:
        console.print(f"catalog {url} is up to date (revision {after})")
    elif before is None:
        console.print(f"created catalog {url} (revision {after})")
    else:
        console.print(f"upgraded catalog {url} from revision {before} to {after}")


def _load_config(data_folders=()):
    from obsdb.cli.common import load_config_verbosely

    return load_config_verbosely(data_folders=data_folders)


@app.command()
@with_executor_options
def ingest(
    paths: List[Path] = typer.Argument(..., help="FITS files or folders (.fits .fit .fts, gzipped too)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes for the pixel work."),
    number_pattern: Optional[str] = typer.Option(
        None, "--number-pattern", help="Regex for the frame number in file names "
                                       "(default: the last run of 3+ digits)."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Skip star/PSF metrics (stats only)."),
    night: Optional[str] = typer.Option(None, "--night", help="Put every file in this night (default: the "
                                        "local date at the start of the night, from DATE-OBS)."),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Record every FITS file: header, hash, pixel statistics and quality metrics.

    Re-ingesting unchanged files changes nothing; changed files are re-measured
    and the change is logged.  Unreadable files are recorded with the reason and
    named at the end (exit code 1)."""
    import re

    config = _load_config(paths)
    if number_pattern:
        try:
            re.compile(number_pattern)
        except re.error as exc:
            fail(f"--number-pattern {number_pattern!r}: {exc}")
        config.ingest.number_pattern = number_pattern
    if no_metrics:
        config.ingest.measure_quality = False
    import warnings

    from obsdb.imaging.fitsio import FitsWarning

    with warnings.catch_warnings(record=True) as noticed:
        # What ingest doubted or skipped in a file (an implausible DATE-OBS, a FIFO): printed below.
        warnings.simplefilter("always", FitsWarning)
        with open_executor(executor_kind, workers, scheduler) as executor, open_catalog() as catalog, \
                progress_bar("ingest") as progress:
            report = catalog.ingest(paths, recursive=recursive, workers=workers, executor=executor,
                                    config=config.ingest, progress=progress, night=night)
    console.print(f"ingested {plural(report.n_files, 'file')} in {report.seconds:.1f} s: "
                  f"{len(report.added)} added, {len(report.changed)} changed, "
                  f"{len(report.unchanged)} unchanged, {len(report.failed)} unreadable")
    for note in noticed:
        if issubclass(note.category, FitsWarning):
            err_console.print(styled("warning:", "yellow", f" {note.message}"), soft_wrap=True)
        else:
            warnings.showwarning(note.message, note.category, note.filename, note.lineno)
    if report.own_outputs:
        console.print(f"left out {plural(len(report.own_outputs), 'file')} obsdb wrote itself (aligned frames, stacks)")
    if report.unnamable:
        from obsdb.pipeline.ingest import printable_path

        for path in report.unnamable:
            err_console.print(styled("skipped:", "yellow", f" {printable_path(path)}: the file name is not "
                                                           "valid UTF-8 and a catalog stores names as text; rename "
                                                           "the file to catalogue it"), soft_wrap=True)
    if report.gone:
        shown = ", ".join(Path(path).name for path in report.gone[:5]) + (" ..." if len(report.gone) > 5 else "")
        err_console.print(styled("warning:", "yellow", f" {len(report.gone)} catalogued files are no longer "
                                                       f"on disk ({shown}); the catalog keeps their records"),
                          soft_wrap=True)
    if report.n_files == 0:
        hint = "" if recursive else "; add --recursive to look in sub-folders"
        err_console.print(styled("warning:", "yellow", f" no FITS files (.fits .fit .fts, or .gz) in "
                                                       f"{', '.join(map(str, paths))}{hint}"), soft_wrap=True)
    if report.stale:
        console.print(f"re-measured {report.stale} unchanged files whose measurements were made by an older "
                      f"algorithm")
    for name in sorted(report.folder_nights):
        err_console.print(styled("note:", "yellow", f" files without a usable DATE-OBS were put in night "
                                                    f"{name!r}, named after their folder (--night sets one)"),
                          soft_wrap=True)
    with open_catalog() as catalog:
        _print_summary(catalog.summary())
    _print_shared_numbers(report)
    if report.failed:
        for path, reason in report.failed:
            err_console.print(styled("unreadable:", "red", f" {path}: {reason}"), soft_wrap=True)
        raise typer.Exit(1)


def _print_shared_numbers(report) -> None:
    """Once per folder: how numbers were taken from file names, which several files share, and the
    pattern that would tell them apart."""
    import os

    from obsdb.imaging.header import DEFAULT_NUMBER_PATTERN

    by_folder: dict[str, list[tuple[str, int, int]]] = {}
    for (night_name, number), paths in sorted(report.shared_paths.items()):
        for folder in sorted({os.path.dirname(p) for p in paths}):
            by_folder.setdefault(folder, []).append((night_name, number, len(paths)))
    pattern = report.number_pattern or DEFAULT_NUMBER_PATTERN
    how = ("the last run of 3 or more digits in the file name" if pattern == DEFAULT_NUMBER_PATTERN
           else f"the pattern {pattern!r}")
    for folder, clashes in by_folder.items():
        hints = {report.number_pattern_hint.get((n, k)) for n, k, _ in clashes} - {None}
        shown = ", ".join(f"{k} ({count} files)" for _, k, count in clashes[:8]) + (" ..." if len(clashes) > 8 else "")
        fix = (f"re-ingest with --number-pattern '{hints.pop()}' to tell them apart" if len(hints) == 1
               else "no number pattern tells them apart")
        err_console.print(styled("warning:", "yellow", f" {folder}: numbers are {how}; {len(clashes)} "
                                                       f"{'is' if len(clashes) == 1 else 'are'} shared by several "
                                                       f"files of one night: {shown}. Those frames are named by "
                                                       f"file name; {fix}"), soft_wrap=True)


SHORT_HINT = "--wide shows all, --format json has everything"
"""How to see the columns a listing without ``--columns`` leaves out at the terminal's width."""


def _print_summary(rows: list[dict], *, wide: bool = False) -> None:
    from obsdb.cli.tables import Column, print_table

    spec = [Column("band", "band", priority=0), Column("type", "type", priority=1),
            Column("frames", "frames", numeric=True, priority=2),
            Column("unreadable", "unreadable", numeric=True, priority=8),
            Column("accepted", "accepted", numeric=True, priority=3),
            Column("rejected", "rejected", numeric=True, priority=4),
            Column("pending", "pending", numeric=True, priority=5),
            Column("median_background", "sky ADU", numeric=True, priority=7),
            Column("median_fwhm", "FWHM px", numeric=True, priority=6),
            Column("exptime", "exp s", numeric=True, priority=9)]
    cells = [{"band": row["band"] or "-", "type": row["type"] or "-", "frames": fmt(row["frames"]),
              "unreadable": fmt(row["unreadable"]), "accepted": fmt(row["accepted"]),
              "rejected": fmt(row["rejected"]), "pending": fmt(row["pending"]),
              "median_background": fmt(row["median_background"]), "median_fwhm": fmt(row["median_fwhm"], 2),
              "exptime": fmt(row["exptime"], 0)} for row in rows]
    print_table(cells, spec, title="catalog by band and type", wide=wide, hint=SHORT_HINT)


@app.command()
def summary(fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
            wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
            night: Optional[List[str]] = night_option()) -> None:
    """Frames per band and type, with status counts and typical sky and seeing."""
    with open_catalog(lite=True) as catalog, user_errors():
        rows = catalog.summary(night=nights_arg(night))
        if fmt_ is OutputFormat.table:
            from obsdb.cli.quality_cmds import calibration_problems, print_calibration_problems

            calibration = calibration_problems(catalog, night=nights_arg(night))
    if fmt_ is OutputFormat.json:
        print_json(clean_nan(rows))
    elif fmt_ is OutputFormat.csv:
        print_csv(rows, list(rows[0]) if rows else [])
    else:
        _print_summary(rows, wide=wide)
        if calibration:  # apart from the light frames' counts above
            print_calibration_problems(calibration, wide=wide)


FRAME_COLUMNS = ["number", "file_name", "band", "type", "exptime", "date_obs", "status",
                 "median", "background", "n_stars", "fwhm", "elongation", "group", "dx", "dy", "reasons",
                 "w_noise", "w_fwhm", "w_stars", "w_snr"]
"""The CSV columns (with path and night)."""

FIELD_COLUMNS = [*FRAME_COLUMNS, "path", "night", "label", "cards"]
"""The names ``--columns`` takes with ``--format csv`` or ``json``: raw values, as CSV writes them."""


def _frame_columns():
    from obsdb.cli.tables import Column

    return [Column("number", "number", priority=0), Column("file_name", "file", priority=15, shrink=True),
            Column("band", "band", priority=1), Column("type", "type", priority=12),
            Column("exptime", "exp s", numeric=True, priority=10),
            Column("date_obs", "date_obs (UTC)", priority=14), Column("status", "status", priority=2),
            Column("median", "median", numeric=True, priority=11),
            Column("background", "sky ADU", numeric=True, priority=4),
            Column("n_stars", "stars", numeric=True, priority=5),
            Column("fwhm", "FWHM px", numeric=True, priority=3),
            Column("elongation", "elong", numeric=True, priority=9), Column("group", "group", priority=13),
            Column("dx", "dx", numeric=True, priority=7), Column("dy", "dy", numeric=True, priority=8),
            Column("reasons", "reasons", priority=6, shrink=True, min_width=16),
            Column("cards", "from cards", priority=16, shrink=True, min_width=16),
            Column("w_noise", "w_noise", numeric=True, priority=17),
            Column("w_fwhm", "w_fwhm", numeric=True, priority=18),
            Column("w_stars", "w_stars", numeric=True, priority=19),
            Column("w_snr", "w_snr", numeric=True, priority=20)]


CARD_COLUMNS = {"band": "band", "type": "image_type", "exptime": "exptime", "date_obs": "date_obs"}
"""Listing columns whose header card(s) ``--columns ...,cards`` names (listing key -> ``frame.keywords`` key)."""


def cards_text(keywords: dict | None, shown: list[str] | None = None) -> str:
    """``date_obs=DATE-OBS+UTCSTART band=FILTNAME``: the cards behind the columns ``shown`` (listing keys),
    or behind every column when none of them has cards."""
    keywords = keywords or {}
    wanted = [CARD_COLUMNS[key] for key in (shown or []) if key in CARD_COLUMNS]
    chosen = [(k, keywords[k]) for k in wanted if k in keywords] if wanted else list(keywords.items())
    return " ".join(f"{column}={card}" for column, card in chosen) or "-"


def _flat(record: dict) -> dict:
    stats = record.get("stats") or {}
    metrics = record.get("metrics") or {}
    shift = record.get("shift") or {}
    weights = record.get("weights") or {}
    return {**record, **{f"w_{k}": weights.get(k) for k in ("noise", "fwhm", "stars", "snr")}, "median": stats.get("median"), "background": stats.get("background"),
            "n_stars": metrics.get("n_stars"), "fwhm": metrics.get("fwhm"),
            "elongation": metrics.get("elongation"), "dx": shift.get("dx"), "dy": shift.get("dy"),
            "reasons": "; ".join(record.get("reasons") or [])}


def _fields(records, columns: list[str] | None):
    """Records as the flat rows of CSV (and of JSON with ``--columns``), with ``cards`` when it is asked for."""
    for record in records:
        row = _flat(record)
        if columns and "cards" in columns:
            row["cards"] = cards_text(record.get("keywords"), columns)
        yield row


def _frame_cells(record: dict, *, all_reasons: bool, columns: list[str] | None = None) -> dict:
    """One frame as the table's text: numbers formatted, the first reason (and how many more), and the
    header cards behind the ``columns`` shown (:func:`cards_text`)."""
    row = _flat(record)
    reasons = record.get("reasons") or []
    if not all_reasons and len(reasons) > 1:
        shown_reasons = f"{reasons[0]} (+{len(reasons) - 1} more)"
    else:
        shown_reasons = "; ".join(reasons)
    return {"number": row["label"] if row.get("label") else "-", "file_name": row["file_name"],
            "band": row["band"] or "-", "type": row["type"] or "-", "exptime": fmt(row["exptime"], 0),
            "date_obs": (row["date_obs"] or "-")[:19], "status": row["status"], "median": fmt(row["median"]),
            "background": fmt(row["background"]), "n_stars": fmt(row["n_stars"]), "fwhm": fmt(row["fwhm"], 2),
            "elongation": fmt(row["elongation"], 2), "group": row["group"] or "-", "dx": fmt(row["dx"], 3),
            "dy": fmt(row["dy"], 3), "reasons": shown_reasons,
            **{f"w_{k}": fmt(row[f"w_{k}"], 2) for k in ("noise", "fwhm", "stars", "snr")},
            "cards": cards_text(record.get("keywords"), columns)}


def wide_option():
    return typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal).")


def columns_option():
    return typer.Option(None, "--columns", help="Exactly these columns, comma-separated "
                                                "(e.g. number,band,fwhm,reasons; 'cards' names the header "
                                                "cards behind the columns listed).")


@app.command()
def frames(
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band (FILTER), whatever its case; "
                                                                  "=r for exactly r."),
    image_type: Optional[str] = image_type_option(),
    status: Optional[str] = status_option(None, what="Only frames of this status", allow_any=False, short=True),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only frames with this active tag."),
    where: Optional[str] = typer.Option(None, "--where", "-w",
                                        help="Filter expression, e.g. \"EXPTIME >= 30 and band in ('V','B') "
                                             "and median > 5000\"."),
    fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
    wide: bool = wide_option(),
    columns: Optional[str] = columns_option(),
    night: Optional[List[str]] = night_option(),
) -> None:
    """List frames with their statistics, metrics, status and current shift.

    At 80 columns the table keeps the number, band, status, FWHM, sky, star
    count and the first reason, and names the columns it leaves out."""
    from obsdb.catalog.records import FrameFilter
    from obsdb.cli.tables import parse_columns

    with user_errors():
        chosen = parse_columns(columns, _frame_columns() if fmt_ is OutputFormat.table else FIELD_COLUMNS)
    with open_catalog(lite=True) as catalog, user_errors():
        selection = FrameFilter(nights=nights_arg(night), band=band, image_type=image_type, status=status, tag=tag,
                                where=where)
        filter_hints(catalog, selection)
        records = catalog.iter_frame_dicts(selection)
        _print_frames(records, fmt_, wide=wide, columns=chosen)


def _print_frames(records, fmt_: OutputFormat, title: str = "frames", *, wide: bool = False,
                  columns: list[str] | None = None) -> None:
    """Records (a list or a stream) as a table, JSON or CSV; JSON and CSV are written as they come."""
    from obsdb.cli.tables import print_table

    if fmt_ is OutputFormat.json:
        if columns:  # the chosen fields, flat and raw, in the order given
            print_json_stream({key: row.get(key) for key in columns} for row in _fields(records, columns))
        else:
            print_json_stream(records)
        return
    if fmt_ is OutputFormat.csv:
        print_csv(_fields(records, columns), columns or FRAME_COLUMNS + ["path", "night"])
        return
    records = list(records)
    rows = [_frame_cells(r, all_reasons=wide or bool(columns), columns=columns) for r in records]
    styles = [{"rejected": "red", "accepted": "green"}.get(r["status"]) for r in records]
    print_table(rows, _frame_columns(), title=f"{title} ({len(rows)})", wide=wide, only=columns, styles=styles)


@app.command()
def show(
    frame: str = typer.Argument(..., help="Frame number, range list (3852-3861,3885) or path."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    wide: bool = typer.Option(False, "--wide", help="Every column of the tag history, whole."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Everything known about a frame: file, header, stats, metrics, tags and their history, shifts.

    --format json gives a list, one object per frame the selector names (a number shared
    by several files names them all)."""
    with open_catalog(lite=True) as catalog, user_errors():
        details = catalog.show(frame, night=nights_arg(night))
    if fmt_ is ReportFormat.json:
        print_json(clean_nan(details))  # always a list: one selector may name several frames
        return
    for detail in details:
        _print_details(detail, wide=wide)


def _print_details(detail: dict, *, wide: bool = False) -> None:
    """One frame for a person: lines wrap at the spaces between values (never inside a number).
    Off a terminal it is written without rich (:func:`obsdb.cli.tables.plain_grid`, the same
    characters), whose import is a fifth of the command's start-up."""
    from obsdb.cli.tables import plain_grid, rich_grid
    from obsdb.text import printable

    console.rule(printable(f"frame {detail['number'] if detail['number'] is not None else ''}  {detail['file_name']}"))
    facts = []
    for key in ("path", "size", "sha256", "band", "type", "object", "exptime", "date_obs", "airmass",
                "shape", "bitpix", "status", "group", "calibration", "ingested_at", "error"):
        if detail.get(key) is not None:
            facts.append((key, printable(detail[key])))
    if (detail.get("verdict") or {}).get("explain"):
        facts.append(("verdict", detail["verdict"]["explain"]))
    for reason in detail.get("reasons") or []:
        facts.append(("reason", printable(reason)))
    if detail.get("keywords"):
        facts.append(("from cards", ", ".join(f"{k}={v}" for k, v in detail["keywords"].items())))
    text = None if console.is_terminal else plain_grid(facts, console.width)
    if text is not None:
        console.file.write(text)
        console.file.flush()
    else:
        console.print(rich_grid(facts))
    for section in ("stats", "metrics", "shift"):
        values = detail.get(section)
        if values:
            console.print(styled(section, "bold", ": " + ", ".join(
                f"{k}={fmt(v, 3) if isinstance(v, float) else v}" for k, v in values.items())), soft_wrap=False)
    if detail.get("tag_history"):
        from obsdb.cli.tables import Column, print_table

        spec = [Column("tag", "tag", priority=0), Column("source", "source", priority=3),
                Column("author", "author", priority=4), Column("created", "created (UTC)", priority=2),
                Column("reason", "reason", priority=1, shrink=True, min_width=20, preferred_width=40, wrap=True),
                Column("retracted", "retracted", priority=5, shrink=True, min_width=12, preferred_width=30,
                       wrap=True)]
        rows = [{"tag": tag["name"], "source": tag["source"], "author": tag["author"],
                 "created": tag["created_at"][:16].replace("T", " "), "reason": tag["reason"] or "",
                 "retracted": "-" if not tag["retracted_at"] else (
                     f"{tag['retracted_at'][:16].replace('T', ' ')} by {tag['retracted_by']}: "
                     f"{tag['retract_reason']}")} for tag in detail["tag_history"]]
        print_table(rows, spec, title="tag history", wide=wide, hint="--wide shows all, --format json has everything")
    for run in detail.get("alignment") or []:
        total = run["total"]
        steps = ", ".join(f"{st['kind']} {st['dx']:+.3f},{st['dy']:+.3f}" for st in run["steps"])
        console.print(f"  run {run['run']} {run['method']}{' (current)' if run['current'] else ''}: "
                      f"dx={total['dx']:+.3f} dy={total['dy']:+.3f} vs {run['reference']} ({steps})",
                      soft_wrap=False)
    for render in detail.get("renders") or []:
        console.print(f"  rendered {render['path']} (run {render['run']}, {render['interpolation']}, "
                      f"sha256 {render['sha256'][:12]}...)", soft_wrap=False)
    if detail.get("events"):
        for event in detail["events"]:
            console.print(f"  event {event['at'][:16].replace('T', ' ')} {event['author']} {event['command']}: "
                          f"{event['summary']}", soft_wrap=False)
    header = detail.get("header") or {}
    if header:
        console.print(styled("header", "bold", f" ({len(header)} keywords): " + ", ".join(
            f"{k}={v!r}" for k, v in list(header.items())[:40]) + (" ..." if len(header) > 40 else "")),
            soft_wrap=False)


@app.command()
def nights(
    fmt_: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, json or csv."),
    wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
) -> None:
    """Every night (observing session) with its frames, bands, targets, instruments, status counts
    and median FWHM."""
    with open_catalog(lite=True) as catalog, user_errors():
        rows = catalog.nights()
    if fmt_ is OutputFormat.json:
        print_json(clean_nan(rows))
        return
    flat = [{**r, "bands": " ".join(r["bands"]), "targets": " ".join(r["targets"]),
             "instruments": len(r["instruments"])} for r in rows]
    columns = ["night", "frames", "bands", "targets", "instruments", "accepted", "rejected", "pending",
               "median_fwhm"]
    if fmt_ is OutputFormat.csv:
        print_csv(flat, columns)
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("night", "night", priority=0), Column("frames", "frames", numeric=True, priority=1),
            Column("bands", "bands", priority=5, shrink=True, min_width=8, preferred_width=16, wrap=True),
            Column("targets", "targets", priority=7, shrink=True, min_width=7, preferred_width=24, wrap=True),
            Column("instruments", "instruments", numeric=True, priority=8),
            Column("accepted", "accepted", numeric=True, priority=2),
            Column("rejected", "rejected", numeric=True, priority=3),
            Column("pending", "pending", numeric=True, priority=4),
            Column("median_fwhm", "FWHM px", numeric=True, priority=6)]
    cells = [{"night": row["night"], "frames": fmt(row["frames"]), "bands": row["bands"] or "-",
              "targets": row["targets"] or "-", "instruments": fmt(row["instruments"]),
              "accepted": fmt(row["accepted"]), "rejected": fmt(row["rejected"]), "pending": fmt(row["pending"]),
              "median_fwhm": fmt(row["median_fwhm"], 2)} for row in flat]
    print_table(cells, spec, title=f"nights ({len(rows)})", wide=wide, hint=SHORT_HINT)


@app.command()
def simulate(
    outdir: Path = typer.Argument(..., help="Folder for the FITS files and truth.json."),
    frames_: int = typer.Option(36, "--frames", "-n", min=1, help="Number of frames."),
    size: int = typer.Option(512, "--size", min=64, help="Frame size in pixels (square)."),
    bands: str = typer.Option("B,V,R", "--bands", help="Comma-separated bands."),
    groups: int = typer.Option(4, "--groups", min=1, help="Pointing groups."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    cloud: float = typer.Option(0.15, "--cloud", min=0, max=1, help="Fraction of cloudy frames."),
    trail: float = typer.Option(0.1, "--trail", min=0, max=1, help="Fraction of trailed frames."),
    defocus: float = typer.Option(0.1, "--defocus", min=0, max=1, help="Fraction of defocused frames."),
    max_offset: float = typer.Option(150.0, "--max-offset", help="Largest group offset, px."),
    max_rotation: float = typer.Option(0.0, "--max-rotation", help="Largest rotation, degrees."),
    first_number: int = typer.Option(1001, "--first-number", help="Number of the first frame."),
    bayer: Optional[str] = typer.Option(None, "--bayer",
        help="A colour sensor with this 2x2 pattern: RGGB, BGGR, GRBG or GBRG (BAYERPAT in the header)."),
    like_notebook: bool = typer.Option(False, "--like-notebook",
        help="The seed notebook's NGC 3293 night instead: its 108 frame numbers and bands at 2048x2048, "
             "pointed so that examples/ngc3293-plan.toml applies as written (the other options are ignored)."),
    raw: bool = typer.Option(False, "--raw",
        help="A raw night instead: bias, dark, V flat and light frames with overscan, a warm dark and a "
             "saturated flat among them, and the truth in truth.npz (--seed applies; see docs/calibration.md)."),
    cluster: bool = typer.Option(False, "--cluster",
        help="An NGC 3293-like cluster night instead: B, V, R in turn (--frames, default 60 here; --size and "
             "--seed apply), with true magnitudes, zero points, a WCS and a 1.5 % transit in cluster.json "
             "(see docs/cmd.md)."),
) -> None:
    """Write a realistic synthetic night (FITS frames + truth.json) with known shifts and defects."""
    from obsdb.imaging.bayer import PATTERNS
    from obsdb.simulate import simulate_night

    if bayer is not None and bayer.upper() not in PATTERNS:
        fail(not_one_of("--bayer", bayer, PATTERNS))
    if raw:
        from obsdb.simulate_raw import simulate_raw_night

        with user_errors():
            truth = simulate_raw_night(outdir, seed=seed)
        console.print(f"wrote a raw night to {outdir}: bias, darks ({truth['warm_dark']} warm), V flats "
                      f"({truth['saturated_flat']} saturated), {plural(len(truth['lights']), 'light')}; truth in "
                      f"{outdir}/truth.npz; now: obsdb ingest {outdir} && obsdb qa && obsdb calibrate --out MASTERS")
        return
    if cluster:
        from obsdb.simulate.cluster import MIN_SIZE, N_FRAMES, simulate_cluster_night

        # --frames keeps its default of the other nights (36) unless given: the cluster night is 60 frames.
        count = N_FRAMES if frames_ == 36 else frames_
        if size < MIN_SIZE:
            fail(f"--size {size}: the cluster night needs frames of at least {MIN_SIZE} px (its cluster and "
                 f"its transit host sit inside)")
        with user_errors(), progress_bar("simulate") as progress:
            truth = simulate_cluster_night(outdir, seed=seed, size=size, n_frames=count, progress=progress)
        console.print(f"wrote {plural(len(truth.frames), 'frame')} of {size}x{size} of a cluster in B, V, R to "
                      f"{outdir}; truth in {outdir}/cluster.json (magnitudes, zero points, the transit of star "
                      f"{truth.transit['star']}) and {outdir}/truth.json")
        return
    if like_notebook:
        from obsdb.simulate import like_notebook_night

        with user_errors(), progress_bar("simulate") as progress:
            truth = like_notebook_night(outdir, progress=progress)
        console.print(f"wrote {plural(len(truth.frames), 'frame')} of 2048x2048 like the notebook's NGC 3293 night "
                      f"to {outdir}; now: obsdb ingest {outdir} && obsdb apply examples/ngc3293-plan.toml")
        return
    with user_errors(), progress_bar("simulate") as progress:
        truth = simulate_night(outdir, bayer=None if bayer is None else bayer.upper(), seed=seed, size=size,
                               progress=progress,
                               n_frames=frames_,
                               bands=tuple(b.strip() for b in bands.split(",") if b.strip()),
                               n_groups=groups, cloud_fraction=cloud, trail_fraction=trail,
                               defocus_fraction=defocus, max_group_offset=max_offset,
                               max_rotation_deg=max_rotation, first_number=first_number)
    kinds: dict = {}
    for frame in truth.frames:
        kinds[frame["kind"]] = kinds.get(frame["kind"], 0) + 1
    console.print(f"wrote {plural(len(truth.frames), 'frame')} of {size}x{size} to {outdir} "
                  f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); truth in {outdir}/truth.json")


@app.command("log")
def log_(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="How many events, newest first."),
    command: Optional[str] = typer.Option(None, "--command",
        help="Only events of this command (ingest, qa, tag, ...)."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    wide: bool = wide_option(),
    night: Optional[List[str]] = night_option(),
) -> None:
    """The audit log: every command that changed the catalog, with who, when and what."""
    with open_catalog(lite=True) as catalog, user_errors():
        events = catalog.log(limit=limit, command=command, night=nights_arg(night))
    if fmt_ is ReportFormat.json:
        print_json(clean_nan(events))
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("when", "when (UTC)", priority=1), Column("author", "author", priority=2),
            Column("command", "command", priority=0), Column("frames", "frames", priority=3, shrink=True,
                                                              min_width=8, preferred_width=14),
            Column("summary", "summary", priority=4, shrink=True, min_width=20, preferred_width=60)]
    rows = [{"when": e["at"][:16].replace("T", " "), "author": e["author"], "command": e["command"],
             "frames": _event_frames(e), "summary": e["summary"]} for e in events]
    print_table(rows, spec, title=f"events ({len(events)}, newest first)", wide=wide)


def _event_frames(event: dict) -> str:
    """The frames an event touched: its one frame, or the first of those its details list."""
    if event.get("frame") is not None:
        return str(event["frame"])
    listed = (event.get("details") or {}).get("frames") or []
    if not isinstance(listed, list) or not listed:
        return "-"
    # Within one night the night prefix repeats on every label: show the numbers.
    names = [str(label).split(":")[-1] for label in listed]
    return ",".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
