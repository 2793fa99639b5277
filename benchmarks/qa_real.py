"""QA on every real set: obsdb's reasons against truth labels set by inspection.

Each set of ``../shared/data/real`` (and the overcast all-sky frame alone, a second time) is
ingested into a catalog of its own in a temporary folder, as a new user would try it, and
:func:`obsdb.pipeline.qa.run_qa` judges it.  The script prints one row per file: set, file,
the truth label (``benchmarks/qa_real_truth.csv``, reasons in ``docs/qa-real.md``), obsdb's
automatic tags (those that reject in capitals), and whether they match; then a confusion
matrix (truth x obsdb's verdict) and the focus sequence's ranking by HFD against the README's.

A label matches when: ``clean`` -> no rejecting tag; a reason -> that tag, rejecting;
``a|b`` -> either; ``calibration`` -> no light-frame tag (the calibration checks' own tags,
``calib-*`` and ``flat-*``, are shown but judged in ``docs/calibration-frames.md``).  Exit status 1 on a mismatch.

Usage::

    python benchmarks/qa_real.py [--data ../shared/data/real] [--sets focus_seq allsky_iceact]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRUTH = Path(__file__).resolve().parent / "qa_real_truth.csv"
FOCUS_HFD = [25, 24, 15, 8.7, 7.1, 6.8, 6.3, 5.6, 4.8, 4.4, 4.0, 3.7, 4.9, 7.8, 12.8, 19.6, 26]
"""Half-flux diameters of STAR_FOCUS_1..17 from the real-data README, px."""


def run_set(name: str, paths: list[Path], workdir: Path) -> tuple[dict, dict]:
    """Ingest ``paths`` into a new catalog and run QA: ({file: [active rule tags]}, {file: hfd})."""
    from sqlalchemy import select

    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog
    from obsdb.catalog.models import Frame, FrameMetrics, Tag

    db = workdir / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}.sqlite"
    upgrade(database_url(str(db)))
    catalog = Catalog.open(str(db))
    try:
        catalog.ingest([str(p) for p in paths])
        catalog.qa()
        with catalog.session() as session:
            tags: dict[str, list[str]] = {}
            for file_name, tag in session.execute(
                    select(Frame.file_name, Tag.name).join(Tag, Tag.frame_id == Frame.id)
                    .where(Tag.retracted_at.is_(None), Tag.source.like("rule:%"))):
                tags.setdefault(file_name, []).append(tag)
            hfd = dict(session.execute(select(Frame.file_name, FrameMetrics.hfd)
                                       .join(FrameMetrics, FrameMetrics.frame_id == Frame.id)).all())
    finally:
        catalog.close()
    return tags, hfd


def verdict(tags: list[str]) -> str:
    """The frame's verdict as the confusion matrix shows it: its rejecting reasons, else its notes."""
    from obsdb.pipeline.qa_rules import REJECTING

    from obsdb.pipeline.qa_rules import TAGS

    calibration = sorted(t for t in tags if t not in TAGS)
    if calibration:
        return "calibration check: " + "+".join(calibration)
    rejecting = sorted(t for t in tags if t in REJECTING)
    if rejecting:
        return "+".join(rejecting)
    return "accepted" + ("".join(f" ({t})" for t in sorted(tags)) if tags else "")


def matches(truth: str, tags: list[str]) -> bool:
    from obsdb.pipeline.qa_rules import REJECTING, TAGS

    from obsdb.catalog.status import CALIBRATION_TAGS

    rejecting = {t for t in tags if t in REJECTING}
    if truth == "calibration":
        # A sound calibration frame: no light-frame tag, and none of its own checks fires
        # (obsdb/pipeline/calib_checks.py).
        return not tags
    if truth in CALIBRATION_TAGS:
        return truth in tags and not set(tags) & set(TAGS)
    for option in truth.split("|"):
        if option == "clean" and not rejecting:
            return True
        if option != "clean" and option in rejecting:
            return True
    return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    parser.add_argument("--sets", nargs="*", help="Only these sets (default: all in the truth file).")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: real data not found at {args.data}", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    with TRUTH.open() as fh:
        truth = list(csv.DictReader(fh))
    sets: dict[str, list[dict]] = {}
    for row in truth:
        if not args.sets or row["set"].split(" ")[0] in args.sets:
            sets.setdefault(row["set"], []).append(row)
    rows, confusion, hfds = [], Counter(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, labelled in sets.items():
            folder = args.data / name.split(" ")[0]
            # "set (x alone)": only the set's labelled files, in a catalog of their own.
            paths = [folder / r["file"] for r in labelled] if " " in name else [folder]
            tags, hfd = run_set(name, paths, Path(tmp))
            if name == "focus_seq":
                hfds = hfd
            for r in labelled:
                got = tags.get(r["file"], [])
                ok = matches(r["truth"], got)
                rows.append((name, r["file"], r["truth"], ", ".join(sorted(got)) or "-", "yes" if ok else "NO"))
                confusion[(r["truth"], verdict(got))] += 1
    widths = [max(len(str(c)) for c in col) for col in zip(("set", "file", "truth", "obsdb", "match"), *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(("set", "file", "truth", "obsdb", "match")))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    good = sum(r[4] == "yes" for r in rows)
    print(f"\n{good} of {len(rows)} frames match their label.\n")
    truths = sorted({t for t, _ in confusion})
    verdicts = sorted({v for _, v in confusion})
    print("confusion (rows: truth; columns: obsdb's verdict)\n")
    head = ["truth \\ obsdb"] + verdicts
    cw = [max(len(h), 5) for h in head]
    cw[0] = max(cw[0], *(len(t) for t in truths))
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, cw)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in cw) + "|")
    for t in truths:
        cells = [t] + [str(confusion.get((t, v), 0) or ".") for v in verdicts]
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, cw)) + " |")
    if hfds:
        from scipy.stats import spearmanr

        names = [f"STAR_FOCUS_{i}.fits" for i in range(1, 18)]
        measured = [hfds[n] for n in names]
        order = sorted(range(17), key=lambda i: measured[i])
        rho = spearmanr(measured, FOCUS_HFD).statistic
        print(f"\nfocus_seq ranked by measured HFD (best first): {', '.join(str(i + 1) for i in order)}")
        print(f"best frame {order[0] + 1} (README: 12); Spearman rank correlation with the README's HFDs {rho:.3f}")
    return 0 if good == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
