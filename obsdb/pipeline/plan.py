"""Plan files: the decisions a person makes by eye, as data that can be reviewed and re-applied.

A plan is TOML::

    [plan]
    name = "NGC 3293"
    author = "Cedric"            # default author of every decision below
    reference = 4056             # the night's reference frame

    [reference_star]             # a star in the reference frame (0-based px)
    x = 681
    y = 409

    [fine]                       # stage 3: one common box, in reference coordinates
    box = "902:942,488:527"
    method = "2dg"               # 2dg, com or quadratic
    reference = 3852             # optional: the frame stage 3 refers to (default: plan.reference)
    background = "frame-median"  # optional: sky subtracted before every staged centroid:
                                 # "box" (sigma-clipped box median, default) or the frame's median

    [[tags]]
    frames = "3862-3871,3922"
    tag = "great"
    reason = "looks good in ds9"
    author = "Nico"              # optional, overrides [plan].author

    [[groups]]
    name = "B0"
    frames = "3852-3861"
    box = "437:485,1171:1204"    # stage 1 centroid box in this group's frames
    reference_star = [631, 448]  # where the reference star sits in this group (stage 2)
    reference = 3852             # optional: the group's reference member

    [qa]                         # optional thresholds for `obsdb qa --plan`
    cloud_background_ratio = 3.0

`obsdb apply PLAN.toml` records everything as decisions with source ``plan``
and the author; applying the same plan twice changes nothing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from obsdb.errors import ObsdbError


@dataclass
class TagEntry:
    """One ``[[tags]]`` entry: frames, tag, reason and its author."""

    frames: str
    tag: str
    reason: str
    author: str


@dataclass
class GroupEntry:
    """One ``[[groups]]`` entry: members, centroid box, reference-star position, reference member."""

    name: str
    frames: str
    box: tuple[int, int, int, int] | None
    reference_star: tuple[float, float] | None
    reference: int | None
    band: str | None


@dataclass
class Plan:
    """A parsed plan file."""

    path: str
    name: str
    author: str
    reference: int | None = None
    reference_star: tuple[float, float] | None = None
    fine_box: tuple[int, int, int, int] | None = None
    fine_method: str = "2dg"
    fine_reference: int | None = None
    fine_background: str | None = None
    tags: list[TagEntry] = field(default_factory=list)
    groups: list[GroupEntry] = field(default_factory=list)
    qa: dict = field(default_factory=dict)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file.

    Raises
    ------
    ObsdbError
        Naming the file and the key that is wrong.
    """
    from obsdb.catalog.decisions import parse_box
    from obsdb.config import login_name

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ObsdbError(f"{path}: no such plan file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ObsdbError(f"{path}: not valid TOML: {exc}") from None

    def bad(where: str, message: str):
        raise ObsdbError(f"{path}: {where}: {message}")

    unknown = set(data) - {"plan", "reference_star", "fine", "tags", "groups", "qa"}
    if unknown:
        bad(", ".join(sorted(unknown)), "unknown section (known: plan, reference_star, fine, tags, groups, qa)")
    for key in ("plan", "reference_star", "fine", "qa"):
        if key in data and not isinstance(data[key], dict):
            bad(key, f"must be a table: a [{key}] section with key = value lines")
    for key in ("tags", "groups"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(e, dict) for e in data[key])):
            bad(key, f"must be a list of [[{key}]] entries")
    head = data.get("plan", {})
    plan = Plan(path=str(path), name=str(head.get("name", path.stem)),
                author=str(head.get("author") or login_name()))
    if "reference" in head:
        if not isinstance(head["reference"], int):
            bad("plan.reference", "must be a frame number")
        plan.reference = head["reference"]
    star = data.get("reference_star")
    if star is not None:
        try:
            plan.reference_star = (float(star["x"]), float(star["y"]))
        except (KeyError, TypeError, ValueError):
            bad("reference_star", "needs numeric x and y")
    fine = data.get("fine")
    if fine is not None:
        try:
            plan.fine_box = parse_box(str(fine["box"]))
        except KeyError:
            bad("fine", "needs box = \"X0:X1,Y0:Y1\"")
        except ObsdbError as exc:
            bad("fine.box", str(exc))
        plan.fine_method = str(fine.get("method", "2dg"))
        if "background" in fine:
            plan.fine_background = str(fine["background"])
            if plan.fine_background not in ("box", "frame-median"):
                bad("fine.background", "must be box or frame-median")
        if "reference" in fine:
            if not isinstance(fine["reference"], int):
                bad("fine.reference", "must be a frame number")
            plan.fine_reference = fine["reference"]
        if plan.fine_method not in ("2dg", "com", "quadratic"):
            bad("fine.method", "must be 2dg, com or quadratic")
    for i, entry in enumerate(data.get("tags", [])):
        where = f"tags[{i}]"
        for key in ("frames", "tag", "reason"):
            if not str(entry.get(key, "")).strip():
                bad(where, f"needs {key}")
        plan.tags.append(TagEntry(str(entry["frames"]), str(entry["tag"]), str(entry["reason"]),
                                  str(entry.get("author") or plan.author)))
    names = set()
    for i, entry in enumerate(data.get("groups", [])):
        where = f"groups[{i}]"
        if not entry.get("name") or not entry.get("frames"):
            bad(where, "needs name and frames")
        if entry["name"] in names:
            bad(where, f"group name {entry['name']!r} used twice")
        names.add(entry["name"])
        box = None
        if entry.get("box"):
            try:
                box = parse_box(str(entry["box"]))
            except ObsdbError as exc:
                bad(f"{where}.box", str(exc))
        ref_star = entry.get("reference_star")
        if ref_star is not None:
            if not (isinstance(ref_star, list) and len(ref_star) == 2):
                bad(f"{where}.reference_star", "must be [x, y]")
            ref_star = (float(ref_star[0]), float(ref_star[1]))
        plan.groups.append(GroupEntry(str(entry["name"]), str(entry["frames"]), box, ref_star,
                                      entry.get("reference"), entry.get("band")))
    plan.qa = dict(data.get("qa", {}))
    return plan


def apply_plan(catalog, plan: Plan, *, user: str | None = None, night=None):
    """Record a plan's decisions in the catalog in one transaction (:meth:`obsdb.Catalog.apply_plan`)."""
    return catalog.apply_plan(plan, user=user, night=night)
