"""Who is reviewing: the desk's reviewer cookie and the names it may hold."""

from __future__ import annotations

REVIEWER_COOKIE = "obsdb_reviewer"
"""The cookie that carries the reviewer's name (percent-quoted) between the desk's pages."""

MAX_REVIEWER_NAME = 60
"""Characters a reviewer's name may have (it is stored as the author of every verdict)."""


def clean_name(name: str) -> str:
    """A reviewer's name with its spaces collapsed; empty when too long or not printable."""
    name = " ".join(name.split())
    return name if 0 < len(name) <= MAX_REVIEWER_NAME and name.isprintable() else ""
