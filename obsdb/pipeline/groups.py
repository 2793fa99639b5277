"""Automatic pointing groups: cluster frames by their coarse offset from the reference.

The coarse offset comes from the brightest stars stored by QA (no pixel read):
every pairwise difference votes (:func:`obsdb.imaging.stars.find_offset`).
Frames whose offsets chain within ``radius`` pixels form a group (per band);
each group gets a box around the night's reference star as it sits in the
group, so the staged method can run on automatic groups too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from obsdb.text import plural
from obsdb.errors import ObsdbError
from obsdb.pipeline.align import ALL_TARGETS
from obsdb.config import login_name

GROUP_RADIUS = 20.0
"""Frames whose coarse offsets chain within this many pixels share a pointing."""


@dataclass
class GroupingReport:
    """Groups made by :func:`auto_groups`."""

    reference: int | str | None
    groups: list[dict] = field(default_factory=list)
    ungrouped: list[tuple[int | str, str]] = field(default_factory=list)
    target: str | None = None
    """The OBJECT grouped, when the frames held several (None otherwise)."""


def cluster_offsets(offsets: np.ndarray, radius: float) -> np.ndarray:
    """Single-linkage clusters of 2-D points: labels 0..k-1 in order of first appearance."""
    from scipy.spatial import cKDTree

    n = len(offsets)
    if n == 0:
        return np.zeros(0, dtype=int)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in cKDTree(np.asarray(offsets, dtype=float)).query_pairs(radius, output_type="ndarray").tolist():
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    # Relabel by first appearance so group names follow the night's order.
    order = {}
    return np.array([order.setdefault(root(i), len(order)) for i in range(n)])


def auto_groups(db, *, radius: float = GROUP_RADIUS, status: str = "accepted", reference: str | None = None,
                user: str | None = None, target=ALL_TARGETS, night=None) -> GroupingReport:
    """Cluster frames into pointing groups (replacing earlier automatic groups of those frames).

    ``target`` (an OBJECT value) restricts the grouping to one field's frames: the
    groups, reference star and fine box are decisions about a single field.  By
    default, when the frames hold several targets, the reference's target is
    grouped (frames of another field have no offset from that reference).
    """
    from obsdb.catalog.stores import AlignStore
    from obsdb.imaging.stars import find_offset
    from obsdb.pipeline.align import _select, resolve_reference
    from obsdb.pipeline.metrics import transparency_stars

    store = AlignStore(db)
    user = user or login_name()
    frames = _select(store, night=night, status=status, band=None, where=None, target=target)
    if not frames:
        raise ObsdbError(f"no {status} frames to group")
    ref = resolve_reference(store, frames, reference)
    # Pointing groups are one night's: the reference's.
    frames = [f for f in frames if f.night_id == ref.night_id]
    frames = sorted(frames, key=lambda f: (f.date_obs is None, f.date_obs or 0, f.number or 0))
    if ref.stars is None or not len(ref.stars):
        raise ObsdbError(f"reference frame {ref.label} has no stars measured: run `obsdb qa`")
    several_targets = len({f.object for f in frames}) > 1
    if several_targets:
        frames = [f for f in frames if f.object == ref.object]
    report = GroupingReport(ref.label, target=ref.object if several_targets or target is not ALL_TARGETS
                            else None)
    ref_list = transparency_stars(ref.stars)
    ref_stars = np.column_stack([ref_list["x"], ref_list["y"], ref_list["flux"]]).astype(float)
    offsets: dict[int, tuple[float, float]] = {}
    for frame in frames:
        if frame.stars is None or not len(frame.stars):
            report.ungrouped.append((frame.label, "no stars measured"))
            continue
        found = find_offset(transparency_stars(frame.stars), ref_stars)
        if found is None:
            report.ungrouped.append((frame.label, "no coarse offset (too few common stars)"))
            continue
        offsets[frame.id] = (found[0], found[1])
    by_id = {f.id: f for f in frames}
    by_id[ref.id] = ref
    star = _reference_star(ref, ref_stars, offsets, frames)
    if star is None:
        raise ObsdbError("no star of the reference is visible in every group: define groups with "
                         "`obsdb group set` or a plan")
    fwhm = ref.fwhm or 3.0
    groups = []
    for band in sorted({by_id[i].band or "" for i in offsets}):
        ids = [i for i in offsets if (by_id[i].band or "") == band]
        labels = cluster_offsets(np.array([offsets[i] for i in ids]), radius)
        for label in range(labels.max() + 1 if len(labels) else 0):
            members = [ids[k] for k in np.flatnonzero(labels == label)]
            member_offsets = np.array([offsets[i] for i in members])
            group_ref = ref.id if ref.id in members else min(members, key=lambda i: by_id[i].fwhm or np.inf)
            gx, gy = offsets[group_ref]
            # The reference star in the group's reference member: x_frame = x_ref - dx.
            sx, sy = star[0] - gx, star[1] - gy
            spread = np.abs(member_offsets - (gx, gy)).max(axis=0)
            half_x = int(np.ceil(4 * fwhm + spread[0] + 3))
            half_y = int(np.ceil(4 * fwhm + spread[1] + 3))
            box = (max(0, int(sx) - half_x), int(sx) + half_x + 1, max(0, int(sy) - half_y), int(sy) + half_y + 1)
            name = f"{band or 'any'}-{label + 1}"
            groups.append({"name": name, "member_ids": members, "box": box, "band": band or None,
                           "reference_id": group_ref, "ref_star": (round(sx, 2), round(sy, 2))})
            ordered = sorted((by_id[i] for i in members), key=lambda f: (f.number is None, f.number or 0,
                                                                          f.file_name))
            report.groups.append({"name": name, "members": [f.label for f in ordered], "box": box,
                                  "reference": by_id[group_ref].number, "offset": [round(gx, 2), round(gy, 2)]})
    fine_half = int(np.ceil(4 * fwhm))
    fine_box = [int(star[0]) - fine_half, int(star[0]) + fine_half + 1,
                int(star[1]) - fine_half, int(star[1]) + fine_half + 1]
    store.store_auto_groups(reference_id=ref.id, star=star, groups=groups, fine_box=fine_box, author=user,
                            summary=f"{plural(len(report.groups), 'group')} relative to {ref.label}, "
                                    f"{plural(len(report.ungrouped), 'frame')} ungrouped",
                            details={"radius": radius, "groups": [g["name"] for g in report.groups]})
    return report


def _reference_star(ref, ref_stars: np.ndarray, offsets: dict, frames: list):
    """The brightest reference star, isolated from the others, that every grouped frame contains."""
    width, height = ref.width or 0, ref.height or 0
    values = np.array(list(offsets.values())) if offsets else np.zeros((1, 2))
    margin = 20.0
    for x, y, _flux in ref_stars:  # stored brightest first
        others = ref_stars[(ref_stars[:, 0] != x) | (ref_stars[:, 1] != y)]
        if len(others) and np.min(np.hypot(others[:, 0] - x, others[:, 1] - y)) < 15:
            continue
        fx, fy = x - values[:, 0], y - values[:, 1]
        if (fx.min() >= margin and fy.min() >= margin and fx.max() < width - margin
                and fy.max() < height - margin):
            return float(x), float(y)
    return None
