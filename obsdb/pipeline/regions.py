"""ds9 region files of what the catalog knows about a frame: boxes and matched stars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from obsdb.catalog.models import Centroid, Frame, GroupMember, PointingGroup, ShiftStep


def _ds9_box(box, colour: str, label: str) -> str:
    # ds9 image coordinates are 1-based at pixel centres: a half-open 0-based
    # range [x0, x1) covers 1-based centres x0+1 .. x1.
    x0, x1, y0, y1 = box
    return (f"box({(x0 + x1 + 1) / 2:.1f},{(y0 + y1 + 1) / 2:.1f},{x1 - x0},{y1 - y0},0) "
            f"# color={colour} text={{{label}}}")


def frame_regions(session, frame: Frame) -> tuple[str, int]:
    """Region file text and the number of shapes, for the frame's current run."""
    lines = ["# Region file format: DS9 version 4.1", f"# obsdb: frame {frame.number} {frame.file_name}",
             "global font=\"helvetica 10 normal\"", "image"]
    member = session.execute(select(PointingGroup).join(GroupMember).where(GroupMember.frame_id == frame.id)).scalar()
    if member is not None and member.box_x0 is not None:
        lines.append(_ds9_box((member.box_x0, member.box_x1, member.box_y0, member.box_y1), "cyan",
                              f"group {member.name}"))
    run_id = session.scalar(select(ShiftStep.run_id).where(ShiftStep.frame_id == frame.id)
                            .order_by(ShiftStep.run_id.desc()).limit(1))
    if run_id is not None:
        from obsdb.imaging.stars import decode_stars

        stars = decode_stars(frame.star_list.data) if frame.star_list is not None else None
        matched = set()
        for c in session.scalars(select(Centroid).where(Centroid.frame_id == frame.id, Centroid.run_id == run_id)):
            if c.source == "box" and c.box_x0 is not None:
                lines.append(_ds9_box((c.box_x0, c.box_x1, c.box_y0, c.box_y1), "yellow", c.method))
                lines.append(f"point({c.x + 1:.3f},{c.y + 1:.3f}) # point=x color=yellow")
            elif c.star_index is not None and stars is not None and c.star_index < len(stars):
                matched.add(c.star_index)
            elif c.x is not None:
                color = "green" if c.matched_x is not None else "red dash=1"
                lines.append(f"circle({c.x + 1:.3f},{c.y + 1:.3f},4) # color={color}")
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


def write_regions(catalog, selector: str, out: str | Path | None = None, *, nights=None) -> RegionFile:
    """Write the region file of one frame (default ``<frame name>.reg`` here), atomically."""
    from obsdb.catalog.queries import select_frames
    from obsdb.errors import ObsdbError
    from obsdb.imaging.fitsio import atomic_write_bytes

    with catalog.session() as session:
        selected = select_frames(session, selector, nights=nights)
        if len(selected) != 1:
            raise ObsdbError(f"{selector!r} names {len(selected)} frames; give one")
        text, count = frame_regions(session, selected[0])
        frame_path = selected[0].path
        target = Path(out) if out else Path(selected[0].file_name.split(".")[0] + ".reg")
    atomic_write_bytes(target, text.encode())
    return RegionFile(target, count, frame_path)
