"""Commands for quality and decisions: qa, tag, untag, rejected."""

from __future__ import annotations

from typing import List, Optional

import typer

from obsdb.text import without_tag

from obsdb.cli.common import (ReportFormat, with_qa_threshold_options, OutputFormat, app, clean_nan, console, err_console, frames_text, night_option,
                              nights_arg, open_catalog, print_json, print_json_stream, progress_bar, state,
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
    from obsdb.config import load_config
    from obsdb.pipeline.qa import run_qa

    with user_errors():
        thresholds = dict(load_config(state.config).qa)
        if plan:
            from obsdb.pipeline.plan import load_plan

            thresholds.update(load_plan(plan).qa)
        thresholds.update(qa_thresholds or {})
    with open_catalog() as catalog, progress_bar("metrics") as progress, user_errors():
        report = run_qa(catalog, night=nights_arg(night), band=band, thresholds=thresholds, recompute=recompute,
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
    frames: str = typer.Argument(..., help="Frames: numbers, ranges (3852-3861,3885) or paths."),
    name: str = typer.Argument(..., help="Tag, e.g. tracking-big, focus-slight, great, reject, accept."),
    reason: Optional[str] = typer.Option(None, "--reason", "-m", help="Why (kept with the tag; required)."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Tag frames by hand.  Tags are append-only; `accept` overrides every rejection."""
    from obsdb.catalog.status import MANUAL_VOCABULARY, REJECTING_TAGS

    with open_catalog() as catalog, user_errors():
        done = catalog.tag(frames, name, reason=reason, author=author, night=nights_arg(night))
    kind = "rejects" if name in REJECTING_TAGS else ("overrides rejections" if name == "accept" else "")
    note = "" if name in MANUAL_VOCABULARY or name in REJECTING_TAGS else " (free-text tag: neither rejects nor accepts)"
    console.print(f"tagged {frames_text(done.changed)} {name!r}" + (f" ({kind})" if kind else "") + note
                  + (f"; {len(done.unchanged)} already had it" if done.unchanged else ""))


@app.command()
def untag(
    frames: str = typer.Argument(..., help="Frames: numbers, ranges or paths."),
    name: str = typer.Argument(..., help="The tag to retract."),
    reason: Optional[str] = typer.Option(None, "--reason", "-m", help="Why it is retracted (required)."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Retract a tag (kept in the history with who, when and why)."""
    with open_catalog() as catalog, user_errors():
        done = catalog.untag(frames, name, reason=reason, author=author, night=nights_arg(night))
    console.print(f"retracted {name!r} on {frames_text(done.changed)}")
    if done.unchanged:
        err_console.print(styled("warning:", "yellow", f" no active {name!r} on {frames_text(len(done.unchanged))}: "
                                                       f"{', '.join(map(str, done.unchanged))}"))


@app.command()
def rejected(
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Exactly these columns, comma-separated "
                                          "(frame, band, tag, source, author, when, reason)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Every rejected frame with all its reasons, their source and time."""
    if fmt_ is ReportFormat.json:
        with open_catalog() as catalog, user_errors():
            print_json_stream(catalog.iter_frame_dicts(
                night=nights_arg(night), band=band, status="rejected"))
        return
    from obsdb.cli.tables import Column, parse_columns, print_table

    spec = [Column("frame", "frame", priority=0), Column("band", "band", priority=1),
            Column("tag", "tag", priority=2), Column("source", "source", priority=6),
            Column("author", "author", priority=4), Column("when", "when (UTC)", priority=5),
            Column("reason", "reason", priority=3, shrink=True, min_width=20, preferred_width=48)]
    with user_errors():
        chosen = parse_columns(columns, spec)
    with open_catalog() as catalog, user_errors():
        records = catalog.frame_dicts(night=nights_arg(night), band=band, status="rejected")
    rows = []
    for record in records:
        rejecting = [t for t in record["tags"]] or [{"name": "unreadable", "source": "ingest", "author": "-",
                                                      "created_at": "", "reason": record.get("error") or ""}]
        for i, t in enumerate(rejecting):
            rows.append({"frame": record["label"] if i == 0 else "", "band": (record["band"] or "-") if i == 0 else "",
                         "tag": t["name"], "source": t["source"], "author": t["author"],
                         "when": t["created_at"][:16].replace("T", " "), "reason": without_tag(t["name"], t["reason"])})
    print_table(rows, spec, title=f"rejected frames ({len(records)})", wide=wide, only=chosen)
