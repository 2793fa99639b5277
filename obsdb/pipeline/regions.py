"""ds9 region files of what the catalog knows about a frame: boxes and matched stars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obsdb.imaging.fitsio import atomic_write_bytes


def _ds9_box(box, colour: str, label: str) -> str:
    # ds9 image coordinates are 1-based at pixel centres: a half-open 0-based
    # range [x0, x1) covers 1-based centres x0+1 .. x1.
    x0, x1, y0, y1 = box
    return (f"box({(x0 + x1 + 1) / 2:.1f},{(y0 + y1 + 1) / 2:.1f},{x1 - x0},{y1 - y0},0) "
            f"# color={colour} text={{{label}}}")


def frame_regions(facts: dict) -> tuple[str, int]:
    """Region file text and the number of shapes, from :meth:`obsdb.Catalog.region_facts`."""
    lines = ["# Region file format: DS9 version 4.1", f"# obsdb: frame {facts['number']} {facts['file_name']}",
             "global font=\"helvetica 10 normal\"", "image"]
    group = facts["group"]
    if group is not None and group["box"] is not None:
        lines.append(_ds9_box(group["box"], "cyan", f"group {group['name']}"))
    stars = None
    if facts["star_list"] is not None:
        from obsdb.imaging.stars import decode_stars

        stars = decode_stars(facts["star_list"])
    matched = set()
    for c in facts["centroids"]:
        if c["source"] == "box" and c["box"] is not None:
            lines.append(_ds9_box(c["box"], "yellow", c["method"]))
            lines.append(f"point({c['x'] + 1:.3f},{c['y'] + 1:.3f}) # point=x color=yellow")
        elif c["star_index"] is not None and stars is not None and c["star_index"] < len(stars):
            matched.add(c["star_index"])
        elif c["x"] is not None:
            color = "green" if c["matched"] else "red dash=1"
            lines.append(f"circle({c['x'] + 1:.3f},{c['y'] + 1:.3f},4) # color={color}")
    if matched:
        # The run's matched stars point into the stored star list; the others were not matched.
        for i, star in enumerate(stars):
            color = "green" if i in matched else "red dash=1"
            lines.append(f"circle({float(star['x']) + 1:.3f},{float(star['y']) + 1:.3f},4) # color={color}")
    return "\n".join(lines) + "\n", len(lines) - 4


@dataclass
class RegionFile:
    """A region file written by :func:`write_regions`."""

    path: Path
    count: int
    frame_path: str


def write_regions(facts: dict, out: str | Path | None = None) -> RegionFile:
    """Write the region file of one frame (default ``<frame name>.reg`` here), atomically, from its
    facts as :meth:`obsdb.Catalog.region_facts` reads them."""
    text, count = frame_regions(facts)
    target = Path(out) if out else Path(facts["file_name"].split(".")[0] + ".reg")
    atomic_write_bytes(target, text.encode())
    return RegionFile(target, count, facts["path"])
