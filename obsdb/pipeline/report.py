"""A static HTML report of the catalog: plots, shift tracks, thumbnails, rejections, stacks.

Everything is read from the catalog in one session, then the PNG files are
drawn (matplotlib's Agg canvas, imported lazily, never pyplot) and the page is
written last, so a reader never sees an ``index.html`` that points at images
not yet written.  Every file is written through a temporary file and a rename.

Layout of the output folder::

    DIR/index.html
    DIR/plots/quality-<i>-<band>.png     background, FWHM, elongation, transparency vs time
    DIR/plots/shifts.png                 dx, dy vs time per alignment run
    DIR/thumbs/<number>-<key>.png        one per light frame (cached by content key)
    DIR/stacks/stack-<i>-<band>.png      previews of the stacks recorded by `obsdb render`
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from obsdb.catalog.queries import record_label
from obsdb.catalog.status import REJECTING_TAGS

THUMBNAIL_TYPES = ("light", "unknown")
"""Image types shown in the thumbnail grid and the quality plots (as QA judges them)."""

THUMBNAIL_VERSION = "1"
"""Part of each thumbnail's cache key: bump when the thumbnail drawing changes."""

MAX_RUN_PANELS = 6
"""Newest alignment runs drawn in the shift track; older ones are listed only."""

MAX_POINT_LABELS = 30
"""Above this many rejected frames in a band, points carry no number label (the legend still names the tags)."""

_SUBDIRS = ("plots", "thumbs", "stacks")

_ACCEPTED_COLOUR = "#1f77b4"
_PENDING_COLOUR = "#9e9e9e"
_REJECT_STYLES = [("#d62728", "X"), ("#ff7f0e", "D"), ("#9467bd", "s"), ("#8c564b", "^"),
                  ("#e377c2", "v"), ("#bcbd22", "P"), ("#17becf", "*"), ("#7f7f7f", "h")]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    index_path : pathlib.Path
        The page, ``DIR/index.html``.
    n_images : int
        PNG files the page shows (plots, thumbnails, stack previews).
    rejected_numbers : list of int
        Numbers of the rejected frames, all named in the page (frames without
        a number are named by file name and are not listed here).
    n_thumbnails_drawn : int
        Thumbnails drawn now (the others were still valid from an earlier report).
    warnings : list of str
        Problems that did not stop the report (a frame or stack file that could
        not be read); each is also shown in the page.
    """

    index_path: Path
    n_images: int
    rejected_numbers: list[int]
    n_thumbnails_drawn: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Snapshot:
    """Everything the report needs from the catalog, read in one session."""

    url: str
    """The catalog's URL as shown (a file path; a server URL without its password)."""
    records: list[dict]
    runs: list[dict]
    run_shifts: dict[int, dict[int, tuple[float, float]]]
    stacks: list[dict]


def build_report(catalog, out_dir: str | os.PathLike, *, thumbnails: bool = True, workers: int = 1,
                 thumbnail_size: int = 160, progress: Callable[[int, int, str], None] | None = None,
                 now: datetime | None = None, nights=None) -> ReportResult:
    """Write a static report of the catalog into ``out_dir``.

    Parameters
    ----------
    catalog : obsdb.Catalog
        An open catalog (only read).
    out_dir : path-like
        Output folder (created); ``index.html`` and the ``plots/``, ``thumbs/``
        and ``stacks/`` sub-folders are written there.  PNG files in those
        sub-folders that the new page no longer shows are removed.
    thumbnails : bool
        Draw the thumbnail grid of the light frames (reads every frame once).
    workers : int
        Processes for the thumbnails.
    thumbnail_size : int
        Longest side of a thumbnail, pixels.
    progress : callable, optional
        ``progress(done, total, item)`` after each image file.
    now : datetime, optional
        The generation time shown in the page [default: now, UTC].
    nights : str or list of str, optional
        Only these nights' frames, runs and stacks [default: the whole catalog].

    Returns
    -------
    ReportResult

    Raises
    ------
    ValueError
        ``workers`` or ``thumbnail_size`` below 1.
    """
    from obsdb import __version__
    from obsdb.imaging.fitsio import atomic_write_bytes

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if thumbnail_size < 16:
        raise ValueError(f"thumbnail size must be at least 16 px, got {thumbnail_size}")
    out = Path(out_dir)
    owned = _ReportFiles(out)
    snapshot = _read_catalog(catalog, nights)
    generated = now or datetime.now(timezone.utc)
    records = snapshot.records
    warnings: list[str] = []

    light = [r for r in records if r["readable"] and r["type"] in THUMBNAIL_TYPES]
    thumb_jobs = _thumbnail_jobs(light, out, thumbnail_size) if thumbnails else []
    stack_jobs = _stack_jobs(snapshot.stacks, out)
    bands = _bands(light)
    quality_rels = [f"plots/quality-{index}-{_safe(band or 'none')}.png" for index, band in enumerate(bands)]
    # Nothing is written until every file the report would replace is known to be its own.
    owned.refuse_foreign(["index.html", "plots/shifts.png", *quality_rels, *(j["rel"] for j in thumb_jobs),
                          *(j["rel"] for j in stack_jobs)])
    for job in thumb_jobs:
        job["reuse"] = job["reuse"] and owned.is_own(job["rel"])
    for sub in _SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    total = len(bands) + 1 + len(thumb_jobs) + len(stack_jobs)
    done = 0

    def tick(item: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, item)

    quality_plots = []
    styles = _point_styles(light)
    for index, band in enumerate(bands):
        members = [r for r in light if (r["band"] or "") == band]
        rel = quality_rels[index]
        owned.wrote(rel, atomic_write_bytes(out / rel, _quality_png(band, members, styles)))
        quality_plots.append((band, rel, members))
        tick(f"quality {band or '-'}")

    shifts_rel = None
    if snapshot.runs:
        shifts_rel = "plots/shifts.png"
        owned.wrote(shifts_rel, atomic_write_bytes(out / shifts_rel, _shifts_png(snapshot, light or records)))
    tick("shift track")

    drawn = 0
    thumb_errors: dict[int, str] = {}
    for job, error in _draw_thumbnails(thumb_jobs, workers):
        if error is None and job["drawn"]:
            drawn += 1
        if error is not None:
            thumb_errors[job["id"]] = error
            warnings.append(f"{job['path']}: thumbnail not drawn: {error}")
        tick(job["file_name"])

    for job in stack_jobs:
        job["error"] = _draw_stack(job, out)
        if job["error"]:
            warnings.append(f"{job['path']}: stack preview not drawn: {job['error']}")
        tick(Path(job["path"]).name)

    page = _page(snapshot, generated=generated, version=__version__, quality_plots=quality_plots,
                 shifts_rel=shifts_rel, thumbnails=thumbnails, thumb_jobs=thumb_jobs,
                 thumb_errors=thumb_errors, light=light, stack_jobs=stack_jobs, warnings=warnings)
    index = out / "index.html"
    owned.wrote("index.html", atomic_write_bytes(index, page.encode("utf-8")))

    shown = ({rel for _, rel, _ in quality_plots} | ({shifts_rel} if shifts_rel else set())
             | {j["rel"] for j in thumb_jobs if j["id"] not in thumb_errors}
             | {j["rel"] for j in stack_jobs if not j["error"]})
    for rel in shown - set(owned.now):
        owned.wrote(rel)          # drawn in a worker, or kept from the last report
    owned.finish(keep=shown | {"index.html"})
    rejected = [r["number"] for r in records if r["status"] == "rejected" and r["number"] is not None]
    return ReportResult(index_path=index, n_images=len(shown), rejected_numbers=rejected,
                        n_thumbnails_drawn=drawn, warnings=warnings)


# -- reading the catalog -------------------------------------------------------------------------

def _read_catalog(catalog, nights=None) -> _Snapshot:
    facts = catalog.report_facts(nights=nights)
    return _Snapshot(url=catalog.display_url, records=facts["records"], runs=facts["runs"],
                     run_shifts=facts["run_shifts"], stacks=_newest_per_path(facts["stacks"]))


def _newest_per_path(stacks: list[dict]) -> list[dict]:
    """One entry per stack file: a re-render overwrites the file, so only its newest row describes it."""
    newest: dict[str, dict] = {}
    for stack in stacks:
        newest[stack["path"]] = stack
    return sorted(newest.values(), key=lambda s: ((s["band"] or ""), s["id"]))


def _bands(records: list[dict]) -> list[str]:
    return sorted({r["band"] or "" for r in records})


# -- small helpers --------------------------------------------------------------------------------

def _safe(text: str) -> str:
    """A file-name-safe rendering of a band or number (the index in the name keeps it unique)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:40] or "_"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _rejecting_names(record: dict) -> list[str]:
    """Names of the tags that reject a rejected frame (or 'unreadable')."""
    if not record["readable"]:
        return ["unreadable"]
    names = []
    for tag in record["tags"]:
        if tag["name"] in REJECTING_TAGS and tag["name"] not in names:
            names.append(tag["name"])
    return names or ["rejected"]


def _badge(record: dict) -> str | None:
    if record["status"] != "rejected":
        return None
    names = _rejecting_names(record)
    # A 160 px thumbnail holds two short names; the page's caption lists all of them.
    return ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")


def _frames(count: int) -> str:
    return f"{count} frame" if count == 1 else f"{count} frames"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _time_axis(records: list[dict]):
    """x values per record (date_obs, or frame number when no frame has a time) and whether they are times."""
    times = [_parse_time(r["date_obs"]) for r in records]
    if any(t is not None for t in times):
        return times, True
    return [r["number"] if r["number"] is not None else None for r in records], False


def _format_time_axis(ax, is_time: bool) -> None:
    if is_time:
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("DATE-OBS (UTC)")
    else:
        ax.set_xlabel("frame number (no DATE-OBS)")


# -- quality plots ---------------------------------------------------------------------------------

_QUALITY_PANELS = (("background", "background (ADU)"), ("fwhm", "FWHM (px)"),
                   ("elongation", "elongation (a/b)"), ("transparency", "transparency"))


def _point_kind(record: dict) -> str:
    if record["status"] == "rejected":
        return "rejected: " + ", ".join(_rejecting_names(record))
    return record["status"]


def _point_styles(records: list[dict]) -> dict[str, tuple[str, str]]:
    """Colour and marker per kind of point, shared by all bands so a tag looks the same in every plot."""
    styles = {"accepted": (_ACCEPTED_COLOUR, "o"), "pending": (_PENDING_COLOUR, "o")}
    reject_kinds = sorted({_point_kind(r) for r in records if r["status"] == "rejected"})
    for i, kind in enumerate(reject_kinds):
        styles[kind] = _REJECT_STYLES[i % len(_REJECT_STYLES)]
    return styles


def _quality_png(band: str, records: list[dict], styles: dict[str, tuple[str, str]]) -> bytes:
    """Four panels against time; rejected frames get a colour and marker per set of rejecting tags."""
    xs, is_time = _time_axis(records)
    kinds = [_point_kind(r) for r in records]
    reject_kinds = sorted({k for k in kinds if k.startswith("rejected")})
    label_points = sum(k.startswith("rejected") for k in kinds) <= MAX_POINT_LABELS

    fig = _figure(11.0, 6.6)
    axes = fig.subplots(len(_QUALITY_PANELS), 1, sharex=True)
    for ax, (key, ylabel) in zip(axes, _QUALITY_PANELS):
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        any_value = False
        for kind in ["accepted", "pending", *reject_kinds]:
            points = [(x, _metric(r, key), r) for x, r, k in zip(xs, records, kinds)
                      if k == kind and x is not None and _metric(r, key) is not None]
            if not points:
                continue
            any_value = True
            colour, marker = styles[kind]
            rejected = kind.startswith("rejected")
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=42 if rejected else 18,
                       marker=marker, label=kind, zorder=3 if rejected else 2,
                       facecolors="none" if kind == "pending" else colour,
                       edgecolors=colour, linewidths=0.8 if kind == "pending" else 0.5)
            if rejected and label_points:
                for x, y, record in points:
                    ax.annotate(record_label(record), (x, y), xytext=(4, 3), textcoords="offset points",
                                fontsize=6.5, color=colour)
        if not any_value:
            ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center",
                    color="#888888", fontsize=9)
    _format_time_axis(axes[-1], is_time)
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8, ncol=min(4, len(labels)), frameon=False)
    fig.suptitle(f"band {band or '(none)'}: {_frames(len(records))}", x=0.01, ha="left", fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.90, bottom=0.09, hspace=0.12)
    return _png_bytes(fig)


def _metric(record: dict, key: str):
    import math

    value = (record["metrics"] or {}).get(key)
    if value is None and key == "background" and record["stats"]:
        # Frames without metrics (not yet through QA) still have the ingest's background.
        value = record["stats"].get("background")
    if value is None or not math.isfinite(value):
        return None
    return value


# -- shift track ------------------------------------------------------------------------------------

def _shifts_png(snapshot: _Snapshot, records: list[dict]) -> bytes:
    """dx and dy against time, one row of two panels per run (newest runs), coloured by group (or band)."""
    runs = snapshot.runs[-MAX_RUN_PANELS:]
    xs, is_time = _time_axis(records)
    x_by_id = {r["id"]: x for r, x in zip(records, xs)}
    from matplotlib import colormaps

    # Without pointing groups (an automatic run needs none) the band is the next best
    # colouring: each band's track is then one continuous series.
    use_groups = any(r["group"] for r in records)
    series = {r["id"]: (r["group"] if use_groups else f"band {r['band'] or '-'}") for r in records}
    record_by_id = {r["id"]: r for r in records}
    groups = sorted({name for name in series.values() if name})
    # Groups are per band, so a night easily has more than ten; tab20 keeps them apart.
    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"].colors
    colours = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    colours[None] = _PENDING_COLOUR

    fig = _figure(10.0, 0.6 + 2.4 * len(runs))
    axes = fig.subplots(len(runs), 2, sharex=True, squeeze=False)
    for row, run in zip(axes, runs):
        shifts = snapshot.run_shifts.get(run["id"], {})
        for ax, index, name in ((row[0], 0, "dx"), (row[1], 1, "dy")):
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.set_ylabel(f"{name} (px)", fontsize=9)
            ax.set_title(f"run {run['id']} ({run['method']}, reference {run['reference'] or '-'}): {name}",
                         fontsize=9, loc="left")
            for group in [*groups, None]:
                points = [(x_by_id[fid], value[index], record_by_id[fid]) for fid, value in shifts.items()
                          if fid in record_by_id and x_by_id.get(fid) is not None
                          and series[fid] == group]
                if not points:
                    continue
                points.sort(key=lambda p: p[0])
                ax.plot([p[0] for p in points], [p[1] for p in points], color=colours[group],
                        marker="o", markersize=3.5, linewidth=0.7, label=group or "no group",
                        # A band's frames span several pointings: a line would draw jumps that are not drift.
                        linestyle="-" if use_groups else "none")
                # Rejected frames may still carry a shift: ring them so the track explains outliers.
                bad = [p for p in points if p[2]["status"] == "rejected"]
                if bad:
                    ax.scatter([p[0] for p in bad], [p[1] for p in bad], s=60, facecolors="none",
                               edgecolors="#d62728", linewidths=1.0, zorder=4,
                               label="rejected frame")
            if not shifts:
                ax.text(0.5, 0.5, "no shifts in this run", transform=ax.transAxes, ha="center",
                        va="center", color="#888888", fontsize=9)
    for ax in axes[-1]:
        _format_time_axis(ax, is_time)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8, ncol=min(6, len(labels)), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return _png_bytes(fig)


# -- thumbnails -------------------------------------------------------------------------------------

def _thumbnail_jobs(records: list[dict], out: Path, size: int) -> list[dict]:
    """One job per light frame; the file name carries a key so an unchanged thumbnail is reused."""
    jobs = []
    for record in records:
        badge = _badge(record)
        try:
            st = os.stat(record["path"])
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        key = hashlib.sha1("|".join([record["path"], stamp, badge or "", str(size), THUMBNAIL_VERSION])
                           .encode("utf-8")).hexdigest()[:12]
        rel = f"thumbs/{_safe(record_label(record))}-{key}.png"
        jobs.append({"id": record["id"], "path": record["path"], "file_name": record["file_name"],
                     "rel": rel, "dest": str(out / rel), "badge": badge, "size": size,
                     "reuse": stamp != "missing" and (out / rel).exists(), "drawn": False})
    return jobs


def _draw_thumbnail(job: dict) -> str | None:
    """Read the frame once and write its thumbnail; the error text, or None."""
    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.preview import thumbnail_png

    try:
        image = read_fits_image(job["path"], hash_mode="none")
        thumbnail_png(job["dest"], image.data, size=job["size"], badge=job["badge"])
    except (FitsReadError, ValueError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _draw_thumbnails(jobs: list[dict], workers: int):
    """Yield (job, error) for every job, drawing the ones not reusable, in a pool when asked."""
    todo = []
    for job in jobs:
        if job["reuse"]:
            yield job, None
        else:
            todo.append(job)
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            error = _draw_thumbnail(job)
            job["drawn"] = error is None
            yield job, error
        return
    from concurrent.futures import as_completed

    from obsdb.pipeline.pool import process_pool

    executor = process_pool(workers)
    try:
        futures = {executor.submit(_draw_thumbnail, job): job for job in todo}
        for future in as_completed(futures):
            job = futures[future]
            error = future.result()
            job["drawn"] = error is None
            yield job, error
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


# -- stacks -----------------------------------------------------------------------------------------

def _stack_jobs(stacks: list[dict], out: Path) -> list[dict]:
    return [dict(stack, rel=f"stacks/stack-{i}-{_safe(stack['band'] or 'none')}.png", error=None)
            for i, stack in enumerate(stacks)]


def _draw_stack(job: dict, out: Path) -> str | None:
    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.preview import write_preview_png

    if not Path(job["path"]).exists():
        return "file not found"
    try:
        image = read_fits_image(job["path"], hash_mode="none")
        write_preview_png(out / job["rel"], image.data, max_size=720)
    except (FitsReadError, ValueError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


MANIFEST = ".obsdb-report.json"
"""The report's list of the files it wrote, with their SHA-256, in the output folder."""


class _ReportFiles:
    """The files an earlier report wrote in ``out`` (its manifest): the only ones it may replace or delete.

    A report written before the manifest existed is recognised by its page's
    footer; the images that page shows are then taken as the report's own.
    An output folder, or one of its ``plots/``, ``thumbs/``, ``stacks/``, that
    is a symbolic link is refused: the report writes only inside ``--out``.
    """

    def __init__(self, out: Path):
        import json

        from obsdb.errors import ObsdbError

        self.out = out
        if out.exists() and not out.is_dir():
            raise ObsdbError(f"--out {out}: is a file, not a folder")
        for sub in _SUBDIRS:
            if (out / sub).is_symlink():
                raise ObsdbError(f"{out / sub}: is a symbolic link; the report writes only inside --out "
                                 "(remove the link, or choose another --out)")
        self.before: dict[str, str] = {}
        self.now: dict[str, str] = {}
        manifest = out / MANIFEST
        if manifest.is_file():
            try:
                files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
                self.before = {str(rel): str(digest) for rel, digest in files.items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise ObsdbError(f"{manifest}: is not the report's list of its files; remove it to write "
                                 "the report here") from None
        elif (out / "index.html").is_file():
            self.before = self._adopt_old_report()

    def _adopt_old_report(self) -> dict[str, str]:
        import re

        from obsdb.pipeline.outputs import file_sha256

        try:
            page = (self.out / "index.html").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        if "<footer>Written by obsdb " not in page:
            return {}
        rels = {"index.html"} | {rel for rel in re.findall(r'(?:src|href)="([^"]+\.png)"', page)
                                 if rel.split("/")[0] in _SUBDIRS and ".." not in rel}
        return {rel: file_sha256(self.out / rel) for rel in rels if (self.out / rel).is_file()}

    def _changed(self, rel: str) -> bool:
        from obsdb.pipeline.outputs import file_sha256

        return file_sha256(self.out / rel) != self.before[rel]

    def is_own(self, rel: str) -> bool:
        """Whether ``rel`` exists as the earlier report left it."""
        path = self.out / rel
        return rel in self.before and path.is_file() and not path.is_symlink() and not self._changed(rel)

    def refuse_foreign(self, rels) -> None:
        """Raise for the first of ``rels`` that exists and is not the report's own unchanged file."""
        from obsdb.errors import ObsdbError

        for rel in rels:
            path = self.out / rel
            if not (path.exists() or path.is_symlink()):
                continue
            if rel not in self.before:
                raise ObsdbError(f"{path}: exists and was not written by obsdb report; refusing to replace it "
                                 "(move it, or choose another --out)")
            if not self.is_own(rel):
                raise ObsdbError(f"{path}: was written by obsdb report but changed since; refusing to "
                                 "replace it (move it, or choose another --out)")

    def wrote(self, rel: str, digest: str | None = None) -> None:
        """Note a file of this report (its digest, or read from disk)."""
        from obsdb.pipeline.outputs import file_sha256

        self.now[rel] = digest or file_sha256(self.out / rel)

    def finish(self, keep: set[str]) -> None:
        """Delete what the earlier report wrote and this one no longer shows (if unchanged); save the list."""
        import json

        from obsdb.imaging.fitsio import atomic_write_bytes

        for rel in sorted(set(self.before) - keep):
            path = self.out / rel
            if path.is_file() and not path.is_symlink() and not self._changed(rel):
                try:
                    path.unlink()
                except OSError:
                    pass
        payload = {"written_by": "obsdb report", "files": dict(sorted(self.now.items()))}
        atomic_write_bytes(self.out / MANIFEST, json.dumps(payload, indent=1).encode("utf-8"))


# -- the page -----------------------------------------------------------------------------------------

_CSS = """
:root { --fg: #1d232b; --muted: #5b6573; --line: #d9dee5; --bg: #ffffff; --soft: #f4f6f9;
        --bad: #c62828; --ok: #2e7d32; --pend: #8a8f98; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.overview { display: flex; flex-wrap: wrap; gap: 12px 48px; align-items: flex-start; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 12px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px;
             overflow-wrap: anywhere; }
nav { margin: 10px 0 14px; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; }
nav a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.rejected td.reason { max-width: 520px; }
td.nw { white-space: nowrap; }
tr.first td { border-top: 2px solid var(--line); }
.rej { color: var(--bad); font-weight: 600; }
.acc { color: var(--ok); }
.pen { color: var(--pend); }
.note { color: var(--muted); background: var(--soft); padding: 8px 12px; border-radius: 4px; }
.warn { color: var(--bad); }
figure { margin: 8px 0 18px; }
figure img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.thumb { margin: 0; padding: 4px; border: 1px solid var(--line); border-radius: 4px; background: var(--soft); }
.thumb.rejected { border-color: var(--bad); }
.thumb img { display: block; width: 100%; height: auto; image-rendering: pixelated; }
.thumb .missing { height: 120px; display: flex; align-items: center; justify-content: center;
                  color: var(--bad); font-size: 12px; text-align: center; padding: 6px; }
.thumb figcaption { margin-top: 3px; overflow-wrap: anywhere; }
.glance { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 4px; }
.glance figure { margin: 0; }
.glance img { height: 150px; width: auto; border: 1px solid var(--line); display: block; }
.stacks { display: flex; flex-wrap: wrap; gap: 16px; }
.stacks figure { flex: 1 1 340px; max-width: 380px; }
.stacks img { max-width: 100%; height: auto; border: 1px solid var(--line); }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
footer { max-width: 1200px; margin: 30px auto; padding: 10px 24px; color: var(--muted);
         font-size: 12px; border-top: 1px solid var(--line); }
"""


def _e(value) -> str:
    """Escaped text for HTML content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _when(value) -> str:
    """A time to the second, ISO-like, whatever form it comes in."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    return str(value).replace("T", " ")[:19]


def _status_class(status: str) -> str:
    return {"rejected": "rej", "accepted": "acc"}.get(status, "pen")


def _page(snapshot: _Snapshot, *, generated: datetime, version: str, quality_plots, shifts_rel,
          thumbnails: bool, thumb_jobs, thumb_errors, light, stack_jobs, warnings) -> str:
    records = snapshot.records
    rejected = [r for r in records if r["status"] == "rejected"]
    objects = sorted({r["object"] for r in records if r.get("object")})
    title = "obsdb report" + (f": {', '.join(objects)}" if objects else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        '<div class="overview">',
        '<dl class="meta">',
        f"<dt>catalog</dt><dd>{_e(snapshot.url)}</dd>",
        f"<dt>generated</dt><dd>{_e(_when(generated.astimezone(timezone.utc).replace(tzinfo=None)))} UTC</dd>",
        f"<dt>obsdb</dt><dd>{_e(version)}</dd>",
        f"<dt>frames</dt><dd>{len(records)} ({sum(r['status'] == 'accepted' for r in records)} accepted, "
        f"{len(rejected)} rejected, {sum(r['status'] == 'pending' for r in records)} pending)</dd>",
        "</dl>",
        _counts_table(records),
        "</div>",
        _glance(stack_jobs, shifts_rel),
        '<nav><a href="#rejected">rejected frames</a><a href="#quality">quality</a>'
        '<a href="#shifts">shift track</a><a href="#stacks">stacks</a><a href="#frames">frames</a></nav>',
        "</header>",
        "<main>",
    ]
    if warnings:
        parts.append('<section id="warnings"><h2>Warnings</h2><ul>')
        parts.extend(f'<li class="warn">{_e(w)}</li>' for w in warnings)
        parts.append("</ul></section>")
    # The rejections come first: they are what a reader of the report most often looks for.
    parts.append(_rejected_section(rejected, records))
    parts.append(_quality_section(quality_plots))
    parts.append(_shift_section(snapshot, shifts_rel))
    parts.append(_stack_section(stack_jobs))
    parts.append(_thumbnail_section(thumbnails, thumb_jobs, thumb_errors, light, records))
    parts.append("</main>")
    parts.append(f"<footer>Written by obsdb {_e(version)} from the catalog; every rejection above is "
                 "a tag in the catalog (<code>obsdb show NUMBER</code> gives its full history).</footer>")
    parts.append("</body>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


MAX_GLANCE_STACKS = 4
"""Stack previews shown small at the top of the page (all of them are in the Stacks section)."""


def _glance(stack_jobs: list[dict], shifts_rel: str | None) -> str:
    """The night at a glance under the header: small stacks and the shift track, linked to their sections."""
    figures = []
    for job in [j for j in stack_jobs if not j["error"]][:MAX_GLANCE_STACKS]:
        params = job["parameters"] if isinstance(job["parameters"], dict) else {}
        label = " ".join(str(x) for x in (params.get("target"), job["band"] or "-") if x)
        frames = params.get("frames")
        caption = f"stack {label}" + (f", {_frames(len(frames))}" if isinstance(frames, list) else "")
        figures.append(f'<figure><a href="#stacks"><img src="{_e(job["rel"])}" alt="{_e(caption)}"></a>'
                       f"<figcaption>{_e(caption)}</figcaption></figure>")
    if shifts_rel:
        figures.append(f'<figure><a href="#shifts"><img src="{_e(shifts_rel)}" alt="shift track"></a>'
                       "<figcaption>shift track (dx, dy against time)</figcaption></figure>")
    if not figures:
        return ""
    return '<div class="glance">' + "".join(figures) + "</div>"


def _counts_table(records: list[dict]) -> str:
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for record in records:
        key = (record["band"] or "-", record["type"] or "-")
        counts[key]["frames"] += 1
        counts[key][record["status"]] += 1
        if not record["readable"]:
            counts[key]["unreadable"] += 1
    if not counts:
        return '<p class="note">The catalog has no frames yet: run <code>obsdb ingest</code>.</p>'
    rows = ['<table class="counts"><thead><tr><th>band</th><th>type</th><th class="num">frames</th>'
            '<th class="num">accepted</th><th class="num">rejected</th><th class="num">pending</th>'
            '<th class="num">unreadable</th></tr></thead><tbody>']
    for (band, kind), c in sorted(counts.items()):
        rows.append(f"<tr><td>{_e(band)}</td><td>{_e(kind)}</td><td class=\"num\">{c['frames']}</td>"
                    f"<td class=\"num\">{c['accepted']}</td><td class=\"num\">{c['rejected']}</td>"
                    f"<td class=\"num\">{c['pending']}</td><td class=\"num\">{c['unreadable']}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _quality_section(quality_plots) -> str:
    parts = ['<section id="quality"><h2>Quality against time</h2>']
    if not quality_plots:
        parts.append('<p class="note">No light frames in the catalog.</p>')
    for band, rel, members in quality_plots:
        n_rejected = sum(r["status"] == "rejected" for r in members)
        no_time = sum(r["date_obs"] is None for r in members)
        labelled = "labelled by frame number; " if n_rejected <= MAX_POINT_LABELS else ""
        caption = (f"Band {band or '(none)'}: {len(members)} light frames, {n_rejected} rejected "
                   f"(coloured markers, {labelled}the legend names their tags); "
                   "accepted in blue, pending as open grey circles.")
        if no_time and no_time < len(members):
            caption += f" {no_time} frames without DATE-OBS are not drawn."
        alt = "quality of band " + (band or "none")
        parts.append(f'<figure><img class="plot" src="{_e(rel)}" alt="{_e(alt)}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _rejected_section(rejected: list[dict], records: list[dict]) -> str:
    parts = [f'<section id="rejected"><h2>Rejected frames ({len(rejected)})</h2>']
    if not rejected:
        parts.append('<p class="note">No frame is rejected.</p>')
    else:
        parts.append('<table class="rejected"><thead><tr><th>frame</th><th>band</th><th>file</th>'
                     "<th>tag</th><th>source</th><th>author</th><th>time (UTC)</th><th>reason</th>"
                     "</tr></thead><tbody>")
        for record in rejected:
            parts.extend(_tag_rows(record))
        parts.append("</tbody></table>")
    overridden = [r for r in records if r["status"] == "accepted"
                  and any(t["name"] in REJECTING_TAGS for t in r["tags"])]
    if overridden:
        parts.append(f"<h3>Accepted despite a rejecting tag ({len(overridden)})</h3>"
                     '<table class="rejected"><thead><tr><th>frame</th><th>band</th><th>file</th>'
                     "<th>tag</th><th>source</th><th>author</th><th>time (UTC)</th><th>reason</th>"
                     "</tr></thead><tbody>")
        for record in overridden:
            parts.extend(_tag_rows(record))
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


def _tag_rows(record: dict) -> list[str]:
    """One row per active tag of a frame (every reason), the frame named on the first."""
    tags = list(record["tags"])
    if not record["readable"]:
        tags = [{"name": "unreadable", "source": "ingest", "author": "-", "created_at": None,
                 "reason": record.get("error") or "could not be read"}] + tags
    if not tags:
        tags = [{"name": "-", "source": "-", "author": "-", "created_at": None,
                 "reason": "; ".join(record["reasons"]) or "-"}]
    rows = []
    for i, tag in enumerate(tags):
        first = i == 0
        if tag["name"] in REJECTING_TAGS or tag["name"] == "unreadable":
            name_class = "nw rej"
        else:
            name_class = "nw acc" if tag["name"] == "accept" else "nw"
        if first:
            # The file column names a frame that has no number; the frame column would only repeat it.
            number = "-" if record["number"] is None else str(record["number"])
            frame_cells = (f'<td id="frame-{record["id"]}"><b>{_e(number)}</b></td>'
                           f'<td>{_e(record["band"] or "-")}</td><td><code>{_e(record["file_name"])}</code></td>')
        else:
            frame_cells = "<td></td><td></td><td></td>"
        row_class = ' class="first"' if first else ""
        rows.append(f'<tr{row_class}>{frame_cells}<td class="{name_class}">{_e(tag["name"])}</td>'
                    f'<td class="nw">{_e(tag["source"])}</td><td class="nw">{_e(tag["author"])}</td>'
                    f'<td class="nw">{_e(_when(tag["created_at"]))}</td>'
                    f'<td class="reason">{_e(tag["reason"])}</td></tr>')
    return rows


def _shift_section(snapshot: _Snapshot, shifts_rel: str | None) -> str:
    parts = ['<section id="shifts"><h2>Shift track</h2>']
    if not snapshot.runs:
        parts.append('<p class="note">No alignment run yet: run <code>obsdb align</code> to measure the '
                     "shifts; the track of dx and dy per pointing group will appear here.</p>")
        parts.append("</section>")
        return "\n".join(parts)
    current = Counter(r["shift"]["run"] for r in snapshot.records if r["shift"])
    parts.append('<table><thead><tr><th class="num">run</th><th>created (UTC)</th><th>method</th>'
                 '<th class="num">reference</th><th>author</th><th class="num">frames</th>'
                 '<th class="num">current for</th><th>obsdb</th></tr></thead><tbody>')
    for run in reversed(snapshot.runs):
        parts.append(f"<tr><td class=\"num\">{run['id']}</td><td>{_e(_when(run['created_at']))}</td>"
                     f"<td>{_e(run['method'])}</td><td class=\"num\">{_e(run['reference'] or '-')}</td>"
                     f"<td>{_e(run['author'])}</td>"
                     f"<td class=\"num\">{len(snapshot.run_shifts.get(run['id'], {}))}</td>"
                     f"<td class=\"num\">{current.get(run['id'], 0)}</td>"
                     f"<td>{_e(run['software_version'])}</td></tr>")
    parts.append("</tbody></table>")
    drawn = snapshot.runs[-MAX_RUN_PANELS:]
    colouring = ("pointing group" if any(r["group"] for r in snapshot.records)
                 else "band (no pointing groups defined)")
    caption = ("dx and dy (sum of each frame's shift steps in the run; dx = x_reference - x_frame) "
               f"against time, coloured by {colouring}; rejected frames are ringed in red.")
    if len(drawn) < len(snapshot.runs):
        caption += f" Only the {len(drawn)} newest of {len(snapshot.runs)} runs are drawn."
    parts.append(f'<figure><img class="plot" src="{_e(shifts_rel)}" alt="shift track">'
                 f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _stack_section(stack_jobs: list[dict]) -> str:
    parts = ['<section id="stacks"><h2>Stacks</h2>']
    if not stack_jobs:
        parts.append('<p class="note">No stack recorded yet: <code>obsdb render --out DIR</code> writes '
                     "one per band.</p>")
    else:
        parts.append('<div class="stacks">')
        for job in stack_jobs:
            params = job["parameters"] or {}
            method = (params.get("method") or params.get("stack")) if isinstance(params, dict) else None
            target = params.get("target") if isinstance(params, dict) else None
            caption = (f"{target}, " if target else "") + f"band {job['band'] or '-'}" + (
                f", {method}" if method else "")
            if isinstance(params.get("frames"), list):
                caption += f" of {_frames(len(params['frames']))}"
            if isinstance(params.get("exptime"), (int, float)):
                caption += f", {params['exptime']:g} s in all"
            caption += (f", run {job['run']}" if job["run"] else "") + f", {_when(job['created_at'])} UTC"
            if job["error"]:
                body = f'<p class="warn">{_e(job["error"])}</p>'
            else:
                body = f'<img src="{_e(job["rel"])}" alt="{_e("stack " + (job["band"] or ""))}">'
            parts.append(f"<figure>{body}<figcaption>{_e(caption)}<br><code>{_e(job['path'])}</code>"
                         "</figcaption></figure>")
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _thumbnail_section(thumbnails: bool, jobs: list[dict], errors: dict[int, str], light: list[dict],
                       records: list[dict]) -> str:
    parts = ['<section id="frames"><h2>Frames</h2>']
    unreadable = [r for r in records if not r["readable"]]
    if not thumbnails:
        parts.append('<p class="note">Thumbnails were not drawn (<code>--no-thumbnails</code>).</p>')
    elif not light and not unreadable:
        parts.append('<p class="note">No light frames in the catalog.</p>')
    else:
        job_by_id = {j["id"]: j for j in jobs}
        by_band: dict[str, list[dict]] = defaultdict(list)
        for record in light:
            by_band[record["band"] or "-"].append(record)
        if unreadable:
            by_band["unreadable"] = unreadable
        for band in sorted(by_band):
            members = sorted(by_band[band], key=lambda r: (r["date_obs"] or "", r["number"] or 0, r["path"]))
            n_rejected = sum(r["status"] == "rejected" for r in members)
            parts.append(f"<h3>{_e(band if band == 'unreadable' else 'band ' + band)}: {len(members)} frames, "
                         f"{n_rejected} rejected</h3>")
            parts.append('<div class="grid">')
            for record in members:
                job = job_by_id.get(record["id"])
                status = record["status"]
                if job is not None and record["id"] not in errors:
                    body = f'<img src="{_e(job["rel"])}" alt="{_e(record["file_name"])}" loading="lazy">'
                else:
                    why = errors.get(record["id"]) or record.get("error") or "no thumbnail"
                    body = f'<div class="missing">{_e(why)}</div>'
                caption = f"<b>{_e(record_label(record))}</b> {_e(record['band'] or '')} " \
                          f"<span class=\"{_status_class(status)}\">{_e(status)}</span>"
                if status == "rejected":
                    caption += f"<br><span class=\"rej\">{_e(', '.join(_rejecting_names(record)))}</span>"
                cls = "thumb rejected" if status == "rejected" else "thumb"
                parts.append(f'<figure class="{cls}" title="{_e(record["file_name"])}">{body}'
                             f"<figcaption>{caption}</figcaption></figure>")
            parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)
