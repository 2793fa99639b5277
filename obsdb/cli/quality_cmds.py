"""Commands for quality and decisions: qa, tag, untag, rejected."""

from __future__ import annotations

from typing import List, Optional

import typer

from obsdb.text import without_tag
from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES

from obsdb.cli.common import (filter_hints, ReportFormat, with_qa_threshold_options, app, clean_nan, console, err_console, frames_text, night_option,
                              nights_arg, open_catalog, print_json, print_json_stream, progress_bar,
                              styled, user_errors)


@app.command()
@with_qa_threshold_options
def qa(
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    recompute: bool = typer.Option(False, "--recompute", help="Re-measure metrics that already exist, and re-judge "
                                                              "small nights judged before against the history."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes for the pixel work."),
    plan: Optional[str] = typer.Option(None, "--plan", help="Take thresholds from this plan file's [qa]."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    night: Optional[List[str]] = night_option(),
    qa_thresholds: dict = None,
) -> None:
    """Measure quality metrics and write automatic tags (cloud, bright-sky, trail, focus, seeing, soft,
    few-stars, unknown), each with its reason and evidence.

    Each night, instrument, band and target is judged on its own yardsticks; one too small
    to be its own (under 3 frames) is judged against the instrument's history too, and a
    plain `qa` leaves such a night judged before as it was (name it with --night, or use
    --recompute, to re-judge it).

    Thresholds come from the options below, else a plan's [qa], else obsdb.toml's
    [qa] section, else the defaults; every tag's reason names the measured value
    and the threshold, and the thresholds used are kept with the tags.  Tags that no longer hold
    are retracted, never deleted."""
    from obsdb.cli.common import load_config_verbosely

    thresholds = dict(load_config_verbosely().qa)
    with user_errors():
        if plan:
            from obsdb.pipeline.plan import load_plan

            thresholds.update(load_plan(plan).qa)
        thresholds.update(qa_thresholds or {})
    with open_catalog() as catalog, progress_bar("metrics") as progress, user_errors():
        report = catalog.qa(night=nights_arg(night), band=band, thresholds=thresholds, recompute=recompute,
                            workers=workers, progress=progress)
    if fmt_ is ReportFormat.json:
        print_json(clean_nan({"measured": report.measured, "assessed": report.assessed,
                              "not_measured": [{"path": p, "reason": r} for p, r in report.not_measured],
                              "references": report.references, "thresholds": report.thresholds,
                              "yardsticks": report.yardsticks, "kept": report.kept,
                              "added": [dict(zip(("frame", "tag", "reason"), a)) for a in report.added],
                              "retracted": [dict(zip(("frame", "tag", "reason"), r)) for r in report.retracted]}))
        return
    console.print(f"qa: {frames_text(report.assessed)} assessed ({report.measured} measured now); "
                  f"transparency references: "
                  f"{', '.join(f'{b}={n}' for b, n in report.references.items()) or '-'}")
    for number, tag, reason in report.added:
        console.print(styled(f"  + {number} {tag}", "red", f": {without_tag(tag, reason)}"))
    for number, tag, reason in report.retracted:
        console.print(styled(f"  - {number} {tag}", "yellow", f" retracted (was: {without_tag(tag, reason)})"))
    if not report.added and not report.retracted:
        console.print("  no change to the automatic tags")
    for label in report.kept:
        console.print(f"  kept: {label} (judged before against the instrument's history; "
                      f"`qa --night NIGHT` re-judges it)")
    for path, reason in report.not_measured:
        err_console.print(styled("not measured:", "yellow", f" {path}: {reason} (judged on its stored metrics)"),
                          soft_wrap=True)


@app.command()
def tag(
    frames: str = typer.Argument(..., help="Frames: numbers, ranges (3852-3861,3885), file names or paths."),
    name: str = typer.Argument(..., help="Tag, e.g. tracking-big, focus-slight, great, reject, accept."),
    reason: Optional[str] = typer.Option(None, "--reason", "-m", help="Why (kept with the tag; required)."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
    free_text: bool = typer.Option(False, "--free-text", help="Take the tag as written though it is close to a "
                                   "known one (tracking-slite is otherwise refused: did you mean tracking-slight?)."),
    night: Optional[List[str]] = night_option(),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
) -> None:
    """Tag frames by hand.  A person's latest verdict (accept, reject, tracking-big, ...) wins.

    A tag close to a known one is refused as a likely typo; --free-text takes it as written."""
    from obsdb.catalog.status import ACCEPTING_TAGS, MANUAL_VOCABULARY, REJECTING_TAGS

    with open_catalog() as catalog, user_errors():
        done = catalog.tag(frames, name, reason=reason, author=author, night=nights_arg(night), free_text=free_text)
    if fmt_ is ReportFormat.json:
        print_json(_outcomes_json(done))
        return
    kind = "rejects" if name in REJECTING_TAGS else ("accepts" if name in ACCEPTING_TAGS else "")
    note = "" if name in MANUAL_VOCABULARY or name in REJECTING_TAGS else " (free-text tag: neither rejects nor accepts)"
    console.print(f"tagged {frames_text(done.changed)} {name!r}" + (f" ({kind})" if kind else "") + note
                  + (f"; {len(done.unchanged)} already had it" if done.unchanged else ""))
    _print_outcomes(done)


@app.command()
def untag(
    frames: str = typer.Argument(..., help="Frames: numbers, ranges, file names or paths."),
    name: str = typer.Argument(..., help="The tag to retract."),
    reason: Optional[str] = typer.Option(None, "--reason", "-m", help="Why it is retracted (required)."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
    night: Optional[List[str]] = night_option(),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
) -> None:
    """Retract a tag (kept in the history with who, when and why)."""
    with open_catalog() as catalog, user_errors():
        done = catalog.untag(frames, name, reason=reason, author=author, night=nights_arg(night))
    if fmt_ is ReportFormat.json:
        print_json(_outcomes_json(done))
        return
    console.print(f"retracted {name!r} on {frames_text(done.changed)}")
    if done.unchanged:
        err_console.print(styled("warning:", "yellow", f" no active {name!r} on {frames_text(len(done.unchanged))}: "
                                                       f"{', '.join(map(str, done.unchanged))}"))
    _print_outcomes(done)


SHOWN_OUTCOMES = 10
"""Frames whose resulting status `tag` and `untag` spell out one by one; beyond, counts per change."""


def _print_outcomes(done) -> None:
    """Each frame's resulting status: a verdict that changes nothing says so."""
    from collections import Counter

    from rich.markup import escape

    if len(done.outcomes) <= SHOWN_OUTCOMES:
        for o in done.outcomes:
            change = f"{o.before} -> {o.after}" if o.changed else f"still {o.after}"
            console.print(f"  {escape(str(o.label))}: {change} ({escape(o.explain)})", soft_wrap=True)
        return
    counts = Counter((o.before, o.after) for o in done.outcomes)
    for (before, after), count in sorted(counts.items()):
        change = f"{before} -> {after}" if before != after else f"still {after}"
        console.print(f"  {frames_text(count)}: {change}")


def _outcomes_json(done) -> dict:
    return {"changed": done.changed, "unchanged": done.unchanged,
            "frames": [{"frame": o.label, "before": o.before, "status": o.after, "explain": o.explain}
                       for o in done.outcomes]}


@app.command()
def rejected(
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Exactly these columns, comma-separated "
                                          "(frame, band, tag, source, author, when, reason)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Every rejected frame with all its reasons, their source and time.

    --format json gives the frames' records; with --columns, one object per reason with those keys."""
    from obsdb.catalog.records import FrameFilter
    from obsdb.cli.tables import Column, parse_columns, print_columns

    spec = [Column("frame", "frame", priority=0), Column("band", "band", priority=1),
            Column("tag", "tag", priority=2), Column("source", "source", priority=6),
            Column("author", "author", priority=4), Column("when", "when (UTC)", priority=5),
            Column("reason", "reason", priority=3, shrink=True, min_width=20, preferred_width=48,
                   wrap=True)]
    with user_errors():
        chosen = parse_columns(columns, spec)
    rejected = FrameFilter(nights=nights_arg(night), band=band, status="rejected")
    if fmt_ is ReportFormat.json and not chosen:
        with open_catalog(lite=True) as catalog, user_errors():
            filter_hints(catalog, rejected)
            print_json_stream(catalog.iter_frame_dicts(rejected))
        return
    with open_catalog(lite=True) as catalog, user_errors():
        filter_hints(catalog, rejected)
        rows = catalog.rejected_reason_rows(night=nights_arg(night), band=band)
        calibration = calibration_problems(catalog, night=nights_arg(night), band=band)
    if fmt_ is ReportFormat.json:
        # One object per reason, every row naming its frame (the table leaves repeats blank).
        every = []
        for _, label, frame_band, name, tag_source, tag_author, created_at, text in light_reasons(rows):
            fields = {"frame": label, "band": frame_band, "tag": name, "source": tag_source, "author": tag_author,
                      "when": created_at or None, "reason": text}
            every.append({key: fields[key] for key in chosen})
        print_json(every)
        return
    # Built a column at a time: an archive's rejects are 100,000 rows.
    cells: dict[str, list] = {column.key: [] for column in spec}
    frame, band_, tag, source, author, when, reason = (cells[column.key] for column in spec)
    frames = 0
    last_id = None
    for frame_id, label, frame_band, name, tag_source, tag_author, created_at, text in light_reasons(rows):
        first = frame_id != last_id  # a frame's first reason names it; the rest leave it blank
        if first:
            last_id = frame_id
            frames += 1
        frame.append(label if first else "")
        band_.append((frame_band or "-") if first else "")
        tag.append(name)
        source.append(tag_source)
        author.append(tag_author)
        when.append(created_at[:16].replace("T", " "))
        reason.append(text)
    print_columns(cells, spec, title=f"rejected frames ({frames})", wide=wide, only=chosen)
    if calibration:
        print_calibration_problems(calibration, wide=wide)


def light_reasons(rows):
    """The reasons of :meth:`obsdb.api.Catalog.rejected_reason_rows` as `rejected` shows them: bias, dark
    and flat frames left out (listed apart: their problems are not a light frame's), a frame without an
    active tag given its read error as the tag ``unreadable``, each reason without the tag it starts
    with.  Yields ``(frame id, label, band, tag, source, author, created_at, reason)``."""
    for frame_id, label, band, kind, error, name, source, author, created_at, reason in rows:
        if kind in CALIBRATION_IMAGE_TYPES:
            continue
        if name is None:  # no active tag: rejected because the file could not be read
            yield frame_id, label, band, "unreadable", "ingest", "-", "", error or ""
        else:
            yield frame_id, label, band, name, source, author, created_at, without_tag(name, reason)


def calibration_problems(catalog, *, night=None, band: str | None = None) -> list[dict]:
    """Bias, dark and flat frames that a calibration check flags or that are rejected, as records."""
    from obsdb.catalog.status import CALIBRATION_TAGS

    records = catalog.frame_dicts(night=night, band=band, image_types=CALIBRATION_IMAGE_TYPES)
    return [r for r in records if r["status"] == "rejected" or any(t["name"] in CALIBRATION_TAGS
                                                                   for t in r["tags"])]


def print_calibration_problems(records: list[dict], *, wide: bool = False) -> None:
    """The calibration section of `rejected` and `summary`: one row per flagged frame and tag."""
    from obsdb.cli.tables import Column, print_table

    spec = [Column("frame", "frame", priority=0), Column("type", "type", priority=1),
            Column("band", "band", priority=2), Column("tag", "tag", priority=3),
            Column("reason", "reason", priority=4, shrink=True, min_width=20, preferred_width=60, wrap=True)]
    rows = []
    for record in records:
        tags = [t for t in record["tags"]] or [{"name": "unreadable", "reason": record.get("error") or ""}]
        for i, t in enumerate(tags):
            rows.append({"frame": record["label"] if i == 0 else "", "type": record["type"] if i == 0 else "",
                         "band": (record["band"] or "-") if i == 0 else "", "tag": t["name"],
                         "reason": without_tag(t["name"], t["reason"])})
    print_table(rows, spec, title=f"calibration frames with problems ({len(records)})", wide=wide)
