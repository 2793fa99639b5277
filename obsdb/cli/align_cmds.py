"""Commands for registration: group, groups, align, history, apply, regions."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obsdb.text import not_one_of, plural, printable
from obsdb.cli.common import (open_executor, with_executor_options, ReportFormat, app, clean_nan, console, err_console, fail, fmt, open_catalog,
                              frames_text, print_json, progress_bar, styled, user_errors, night_option, nights_arg, status_option)

group_app = typer.Typer(help="Pointing groups: automatic clustering, or set by hand.", no_args_is_help=True)
app.add_typer(group_app, name="group")


@group_app.command("auto")
def group_auto(
    radius: float = typer.Option(20.0, "--radius",
        help="Frames whose coarse offsets chain within this many px share a group."),
    status: str = status_option(what="Frames to group"),
    reference: Optional[str] = typer.Option(None, "--reference",
        help="Reference frame (default: plan's, else sharpest)."),
    target: Optional[str] = typer.Option(None, "--target",
        help="Only frames of this OBJECT (default: the reference's, when the frames hold several)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Cluster frames by their coarse offset from the reference, per band, with a box for the staged method."""
    from obsdb.pipeline.align import ALL_TARGETS

    with open_catalog() as catalog, user_errors():
        report = catalog.auto_groups(radius=radius, status=status, reference=reference,
                                     target=ALL_TARGETS if target is None else target, night=nights_arg(night))
    of_target = f" (target {report.target})" if report.target else ""
    console.print(f"{plural(len(report.groups), 'group')} relative to reference {report.reference}{of_target}")
    for g in report.groups:
        console.print(f"  {g['name']}: {_ranges(g['members'])}  offset {g['offset']}  box {_box(g['box'])}")
    for number, reason in report.ungrouped:
        console.print(styled(f"  ungrouped {number}", "yellow", f": {reason}"))


@group_app.command("set")
def group_set(
    name: str = typer.Argument(..., help="Group name."),
    frames: str = typer.Argument(..., help="Members: numbers, ranges or paths."),
    box: Optional[str] = typer.Option(None, "--box", help="Centroid box X0:X1,Y0:Y1 (half-open, 0-based)."),
    reference: Optional[int] = typer.Option(None, "--reference", help="The group's reference member."),
    ref_star: Optional[str] = typer.Option(None, "--ref-star",
        help="Position X,Y of the night's reference star in this group."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Define a pointing group by hand (its frames leave any other group)."""
    with open_catalog() as catalog, user_errors():
        done = catalog.define_group(name, frames, box=box, reference=reference, ref_star=ref_star, author=author,
                            nights=nights_arg(night))
    console.print(f"group {name}: {frames_text(done.changed)}" + (f", box {box}" if box else ""))


@app.command()
def groups(fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
           wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal).")
           ) -> None:
    """List pointing groups with their members, boxes and reference-star positions."""
    with open_catalog() as catalog:
        rows = catalog.groups()
    if fmt_ is ReportFormat.json:
        print_json([{k: v for k, v in r.items() if k not in ("frame_ids", "reference_frame_id")} for r in rows])
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("name", "name", priority=0), Column("band", "band", priority=1),
            Column("members", "members", priority=2, shrink=True, min_width=12, preferred_width=30, wrap=True),
            Column("reference", "reference", priority=3), Column("box", "box", priority=4),
            Column("ref_star", "ref star", priority=5), Column("source", "source", priority=6),
            Column("author", "author", priority=7)]
    cells = [{"name": r["name"], "band": r["band"] or "-", "members": _ranges(r["members"]),
              "reference": str(r["reference"] or "-"), "box": _box(r["box"]),
              "ref_star": "-" if not r["ref_star"] else f"{r['ref_star'][0]:g},{r['ref_star'][1]:g}",
              "source": r["source"], "author": r["author"]} for r in rows]
    print_table(cells, spec, title=f"pointing groups ({len(rows)})", wide=wide,
                hint="--wide shows all, --format json has everything")


def _box(box) -> str:
    return "-" if not box else f"{box[0]}:{box[1]},{box[2]}:{box[3]}"


def _ranges(numbers) -> str:
    names = [str(n) for n in numbers if isinstance(n, str)]
    numbers = sorted(n for n in numbers if isinstance(n, int))
    parts, start, prev = [], None, None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else str(start))
    # ", " lets a long list wrap between ranges, never inside a number.
    return ", ".join(parts + names)


@app.command()
@with_executor_options
def align(
    reference: Optional[str] = typer.Option(None, "--reference",
        help="Reference frame (default: plan's, else the sharpest accepted frame with many stars)."),
    method: str = typer.Option("auto", "--method",
        help="auto (star matching, cross-correlation fallback) or staged (the notebook's three stages)."),
    integer: bool = typer.Option(False, "--integer",
        help="Staged method: round each stage to whole pixels, as the notebook did."),
    centroid: Optional[str] = typer.Option(None, "--centroid",
        help="Staged method: 2dg, com or quadratic (default: the plan's)."),
    background: Optional[str] = typer.Option(None, "--background",
        help="Staged method: sky subtracted before each centroid: box or frame-median (default: the plan's, "
             "else box)."),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Auto method: only this band."),
    status: str = status_option(what="Auto method: frames to align"),
    where: Optional[str] = typer.Option(None, "--where", "-w",
        help="Auto method: only frames matching this expression, e.g. \"object == 'M94'\"."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes for the pixel work."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    night: Optional[List[str]] = night_option(),
    executor_kind: Optional[str] = None,
    scheduler: Optional[str] = None,
) -> None:
    """Create an alignment run: a shift for every frame, with every step and centroid recorded.

    The auto method makes one run per night and target (OBJECT), each on its own
    reference; with --reference (or --night all) every selected frame, whatever its
    night, is aligned onto one reference.  Stored star lists are matched first;
    pixels are read only for frames that need the fallback.  --format json gives
    {"runs": [...]} when there are several runs.
    """
    if method not in ("auto", "staged"):
        fail(not_one_of("--method", method, ("auto", "staged")))
    with open_executor(executor_kind, workers, scheduler) as executor, open_catalog() as catalog, user_errors(), \
            progress_bar("align") as progress:
        if method == "auto":
            reports = catalog.align(night=nights_arg(night), reference=reference, band=band,
                                    status=status, where=where, workers=workers, progress=progress,
                                    executor=executor)
        else:
            reports = [catalog.align_staged(integer=integer, method=centroid, background=background,
                                            progress=progress, night=nights_arg(night))]
    if fmt_ is ReportFormat.json:
        runs = [clean_nan({"run": report.run_id, "method": report.method, "reference": report.reference_label,
                           **({"target": report.target} if len(reports) > 1 else {}),
                           "frames": [r.__dict__ for r in report.results]}) for report in reports]
        print_json(runs[0] if len(runs) == 1 else {"runs": runs})
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("frame", "frame", priority=0), Column("dx", "dx", numeric=True, priority=1),
            Column("dy", "dy", numeric=True, priority=2), Column("rot", "rot deg", numeric=True, priority=5),
            Column("method", "method", priority=4), Column("matched", "matched", numeric=True, priority=3),
            Column("rms", "rms px", numeric=True, priority=6),
            Column("note", "note", priority=7, shrink=True, min_width=16, preferred_width=40, wrap=True)]
    for report in reports:
        target = f", target {report.target or 'without OBJECT'}" if len(reports) > 1 else ""
        cells = [{"frame": r.label, "dx": fmt(r.dx, 3), "dy": fmt(r.dy, 3), "rot": fmt(r.rotation_deg, 4),
                  "method": r.method or "-", "matched": fmt(r.n_matched), "rms": fmt(r.residual_rms, 4),
                  "note": r.reason or ""} for r in report.results]
        print_table(cells, spec, title=f"alignment run {report.run_id} ({report.method}), "
                                       f"reference {report.reference_label}{target}",
                    styles=[None if r.ok else "red" for r in report.results],
                    hint="`obsdb history FRAME` and --format json have everything")
    from collections import Counter

    results = [r for report in reports for r in report.results]
    methods = Counter("stars" if r.method == "reference" else r.method for r in results if r.ok)
    named = {"stars": "by stars", "xcorr": "by cross-correlation the stars confirmed", "staged": "staged"}
    failures = sum(not r.ok for r in results)
    counts = ", ".join(f"{named.get(m, m)}: {n}" for m, n in sorted(methods.items())) or "none"
    console.print(f"registered {counts}; unregistered: {failures}")
    if failures:
        err_console.print(f"{frames_text(failures)} unregistered (tagged `unregistered` with the reason)",
                          style="yellow")


@app.command()
def history(
    frame: str = typer.Argument(..., help="Frame number, range list or path."),
    fmt_: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table or json."),
    wide: bool = typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Every alignment run and shift step of a frame, the sum per run, and which run is current."""
    with open_catalog(lite=True) as catalog, user_errors():
        histories = catalog.history(frame, night=nights_arg(night))
    if fmt_ is ReportFormat.json:
        print_json(clean_nan(histories if len(histories) > 1 else histories[0]))
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("stage", "stage", priority=5), Column("kind", "kind", priority=0),
            Column("method", "method", priority=4), Column("dx", "dx", numeric=True, priority=1),
            Column("dy", "dy", numeric=True, priority=2), Column("rot", "rot deg", numeric=True, priority=6),
            Column("reference", "relative to", priority=7), Column("centroid", "centroid", priority=9),
            Column("box", "box", priority=10), Column("matched", "matched", numeric=True, priority=3),
            Column("rms", "rms", numeric=True, priority=8)]
    for h in histories:
        console.rule(printable(f"frame {h['number'] if h['number'] is not None else ''}  {h['file_name']}"))
        if not h["runs"]:
            console.print("  never aligned")
        for run in h["runs"]:
            mark = " (current)" if run["current"] else (" (made from other content)" if run.get("other_content")
                                                        else "")
            cells = []
            for s in run["steps"]:
                c = s["centroid"] or {}
                cells.append({"stage": str(s["stage"]), "kind": s["kind"], "method": s["method"],
                              "dx": fmt(s["dx"], 3), "dy": fmt(s["dy"], 3), "rot": fmt(s["rotation_deg"], 4),
                              "reference": str(s["reference"]),
                              "centroid": "-" if not c or c.get("x") is None else f"{c['x']:.3f},{c['y']:.3f}",
                              "box": _box(c.get("box")), "matched": fmt(s["n_matched"]),
                              "rms": fmt(s["residual_rms"], 4)})
            total = run["total"]
            cells.append({"kind": "total", "dx": fmt(total["dx"], 3), "dy": fmt(total["dy"], 3),
                          "rot": fmt(total["rotation_deg"], 4)})
            print_table(cells, spec, title=f"run {run['run']} {run['method']} by {run['author']} at "
                                           f"{run['created_at'][:19]}, reference {run['reference']}{mark}",
                        wide=wide, styles=[None] * (len(cells) - 1) + ["bold"],
                        hint="--wide shows all, --format json has everything")


@app.command()
def apply(
    plan: Path = typer.Argument(..., help="Plan file (TOML): tags, groups with boxes, reference, fine box."),
    author: Optional[str] = typer.Option(None, "--author", help="Who applies it (default: your login name)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Load a plan's manual decisions into the catalog (idempotent; recorded with their authors)."""
    from obsdb.pipeline.plan import load_plan

    with open_catalog() as catalog, user_errors():
        parsed = load_plan(plan)
        report = catalog.apply_plan(parsed, user=author, night=nights_arg(night))
    console.print(f"applied {plan}: {plural(report.tags_added, 'tag')} added ({report.tags_kept} already present), "
                  f"{plural(report.groups, 'group')}, decisions: {', '.join(report.decisions) or 'unchanged'}")
    changed = [o for o in report.outcomes if o.changed]
    if report.outcomes:
        console.print(f"status: {plural(len(changed), 'frame')} changed"
                      + (": " + ", ".join(f"{o.label} {o.before} -> {o.after}" for o in changed[:10])
                         + (" ..." if len(changed) > 10 else "") if changed else "")
                      + f"; {len(report.outcomes) - len(changed)} tagged frames kept their status", soft_wrap=True)
    if report.missing_frames:
        console.print(styled("not in the catalog:", "yellow", f" {'; '.join(report.missing_frames)}"))


@app.command()
def regions(
    frame: str = typer.Argument(..., help="One frame: NIGHT:NUMBER, number or path."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Region file (default: <frame name>.reg here)."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Write a ds9 region file of the frame's boxes and matched stars (current run), to check by eye."""
    with open_catalog() as catalog, user_errors():
        written = catalog.regions(frame, out, nights=nights_arg(night))
    console.print(printable(f"wrote {written.path} ({written.count} shapes); "
                            f"open with: ds9 {written.frame_path} -regions {written.path}"), markup=False)
