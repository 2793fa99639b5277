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
    free_text: bool = False
    """``free_text = true``: the tag is meant as written, though it is close to a known one."""


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


FRAME_NUMBER_MAX = 2 ** 31 - 1
"""Frame numbers are stored as 32-bit integers."""

_KEYS = {
    "": {"plan", "reference_star", "fine", "tags", "groups", "qa"},
    "plan": {"name", "author", "reference"},
    "reference_star": {"x", "y"},
    "fine": {"box", "method", "reference", "background"},
    "tags": {"frames", "tag", "reason", "author", "free_text"},
    "groups": {"name", "frames", "box", "reference_star", "reference", "band"},
}


def _did_you_mean(key: str, known) -> str:
    from obsdb.text import did_you_mean

    return did_you_mean(key, known)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file.

    Every key is checked: an unknown one (``refrence = 1002``) is an error
    with a did-you-mean, as is a value of the wrong type, a frame number out
    of range or a position that is not a finite number.

    Raises
    ------
    ObsdbError
        Naming the file and the key that is wrong.
    """
    from obsdb.config import login_name, read_toml_file

    path = Path(path)
    data = read_toml_file(path, "plan file")
    read = _PlanReader(path)
    read.check_keys(data, "", "")
    for key in ("plan", "reference_star", "fine", "qa"):
        if key in data and not isinstance(data[key], dict):
            read.bad(key, f"must be a table: a [{key}] section with key = value lines")
    for key in ("tags", "groups"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(e, dict) for e in data[key])):
            read.bad(key, f"must be a list of [[{key}]] entries")
    head = data.get("plan", {})
    read.check_keys(head, "plan", "plan.")
    plan = Plan(path=str(path), name=read.text(head.get("name", path.stem), "plan.name"),
                author=read.text(head.get("author") or login_name(), "plan.author"))
    if "reference" in head:
        plan.reference = read.number(head["reference"], "plan.reference")
    star = data.get("reference_star")
    if star is not None:
        read.check_keys(star, "reference_star", "reference_star.")
        if "x" not in star or "y" not in star:
            read.bad("reference_star", "needs x and y")
        plan.reference_star = (read.position(star["x"], "reference_star.x"),
                               read.position(star["y"], "reference_star.y"))
    if data.get("fine") is not None:
        read.fine(data["fine"], plan)
    plan.tags = [read.tag(entry, f"tags[{i}]", plan.author) for i, entry in enumerate(data.get("tags", []))]
    names: set[str] = set()
    plan.groups = [read.group(entry, f"groups[{i}]", names) for i, entry in enumerate(data.get("groups", []))]
    plan.qa = dict(data.get("qa", {}))
    if plan.qa:
        from obsdb.pipeline.qa_rules import QaThresholds

        try:
            QaThresholds.from_mapping(plan.qa)
        except (TypeError, ValueError) as exc:
            read.bad("qa", str(exc))
    return plan


class _PlanReader:
    """The checks of a plan file's values, each error naming the file and the key."""

    def __init__(self, path: Path):
        self.path = path

    def bad(self, where: str, message: str):
        raise ObsdbError(f"{self.path}: {where}: {message}")

    def check_keys(self, table: dict, section: str, where: str) -> None:
        for key in table:
            if key not in _KEYS[section]:
                kind = "section" if not section else "key"
                self.bad(f"{where}{key}" if where else key,
                         f"unknown {kind}{_did_you_mean(key, _KEYS[section])}; "
                         f"known: {', '.join(sorted(_KEYS[section]))}")

    def text(self, value, where: str, *, allow_number: bool = False) -> str:
        if isinstance(value, str):
            return value
        if allow_number and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        self.bad(where, f"must be text in quotes, got {_kind(value)}")

    def number(self, value, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(where, f"must be a frame number, got {_kind(value)}")
        if not 0 <= value <= FRAME_NUMBER_MAX:
            self.bad(where, f"frame number {value} is out of range (0 to {FRAME_NUMBER_MAX})")
        return value

    def position(self, value, where: str) -> float:
        import math

        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.bad(where, f"must be a number of pixels, got {_kind(value)}")
        value = float(value)
        if not math.isfinite(value) or abs(value) > 1e7:
            self.bad(where, f"{value} is not a pixel position")
        return value

    def box(self, value, where: str):
        from obsdb.catalog.decisions import parse_box

        try:
            return parse_box(self.text(value, where))
        except ObsdbError as exc:
            self.bad(where, str(exc))

    def fine(self, fine: dict, plan: Plan) -> None:
        """The [fine] section: the box, method, background and reference of fine centring."""
        self.check_keys(fine, "fine", "fine.")
        if "box" not in fine:
            self.bad("fine", "needs box = \"X0:X1,Y0:Y1\"")
        plan.fine_box = self.box(fine["box"], "fine.box")
        plan.fine_method = self.text(fine.get("method", "2dg"), "fine.method")
        if "background" in fine:
            plan.fine_background = self.text(fine["background"], "fine.background")
            if plan.fine_background not in ("box", "frame-median"):
                self.bad("fine.background", "must be box or frame-median")
        if "reference" in fine:
            plan.fine_reference = self.number(fine["reference"], "fine.reference")
        if plan.fine_method not in ("2dg", "com", "quadratic"):
            self.bad("fine.method", "must be 2dg, com or quadratic")

    def tag(self, entry: dict, where: str, default_author: str) -> TagEntry:
        """One [[tags]] entry: frames, a known tag (or free text said so) and its reason."""
        from obsdb.catalog.tags import check_tag_vocabulary

        self.check_keys(entry, "tags", f"{where}.")
        for key in ("frames", "tag", "reason"):
            if key not in entry:
                self.bad(where, f"needs {key}")
        values = {key: self.text(entry[key], f"{where}.{key}", allow_number=key == "frames")
                  for key in ("frames", "tag", "reason")}
        for key, value in values.items():
            if not value.strip():
                self.bad(f"{where}.{key}", "is empty")
        author = self.text(entry["author"], f"{where}.author") if entry.get("author") else default_author
        free_text = entry.get("free_text", False)
        if not isinstance(free_text, bool):
            self.bad(f"{where}.free_text", "must be true or false")
        try:
            check_tag_vocabulary(values["tag"], free_text=free_text)
        except ObsdbError as exc:
            self.bad(f"{where}.tag", str(exc).replace("--free-text", "free_text = true"))
        return TagEntry(values["frames"], values["tag"], values["reason"], author, free_text)

    def group(self, entry: dict, where: str, names: set[str]) -> GroupEntry:
        """One [[groups]] entry (its name not among ``names``, to which it is added)."""
        self.check_keys(entry, "groups", f"{where}.")
        if not entry.get("name") or not entry.get("frames"):
            self.bad(where, "needs name and frames")
        name = self.text(entry["name"], f"{where}.name")
        if name in names:
            self.bad(where, f"group name {name!r} used twice")
        names.add(name)
        group_box = self.box(entry["box"], f"{where}.box") if entry.get("box") else None
        ref_star = entry.get("reference_star")
        if ref_star is not None:
            if not (isinstance(ref_star, list) and len(ref_star) == 2):
                self.bad(f"{where}.reference_star", "must be [x, y]")
            ref_star = (self.position(ref_star[0], f"{where}.reference_star"),
                        self.position(ref_star[1], f"{where}.reference_star"))
        reference = self.number(entry["reference"], f"{where}.reference") if "reference" in entry else None
        band = self.text(entry["band"], f"{where}.band") if entry.get("band") is not None else None
        return GroupEntry(name, self.text(entry["frames"], f"{where}.frames", allow_number=True),
                          group_box, ref_star, reference, band)


def _kind(value) -> str:
    """How a TOML value reads in a message: 'a list', 'the number 3', 'true'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
