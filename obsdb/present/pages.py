"""The templates and static files of the report and the review desk.

One Jinja2 environment, autoescape on for every template: whatever a header keyword, a tag's reason,
a night's name or a reviewer's name holds is shown as text, never run as markup.  Markup made on
purpose (the SVG figures) arrives as :class:`markupsafe.Markup`.  The stylesheets and the desk's script
are files in ``static/`` (package data), inlined into each page so a page needs no second request.
"""

from __future__ import annotations

import functools
from pathlib import Path

STATIC = Path(__file__).with_name("static")
"""The stylesheets and the desk's script (shipped with the package)."""


@functools.lru_cache(maxsize=None)
def environment():
    """The Jinja2 environment over ``obsdb/present/templates`` (autoescape on, undefined names an error)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    from obsdb.present import facts, palette

    env = Environment(loader=PackageLoader("obsdb.present", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(when=facts.when, fmt=fmt, status_class=palette.status_class, segment=segment,
                       short_instrument=facts.short_instrument, frames=frames_text)
    env.globals.update(palette_css=lambda: Markup(palette.css_variables()), asset=asset)
    return env


def render(template: str, **context) -> str:
    """A page from its template (``report/index.html``, ``desk/night.html``, ...)."""
    return environment().get_template(template).render(**context)


@functools.lru_cache(maxsize=None)
def asset(name: str):
    """A stylesheet or script from ``static/``, inlined by the templates as it is (the package's own file,
    not text from the catalog: escaping it would break its quotes and ``>``)."""
    from markupsafe import Markup

    return Markup((STATIC / name).read_text(encoding="utf-8"))


def fmt(value, spec: str = ".2f", unit: str = "") -> str:
    """A number formatted by ``spec`` (``d``: a thousands-separated integer) with its unit; ``-`` for none."""
    from obsdb.present.facts import number

    value = number(value) if value is not None else None
    if value is None:
        return "-"
    if spec == "d":
        spec, value = ",d", int(round(value))
    return f"{value:{spec}}" + (f" {unit}" if unit else "")


def frames_text(count: int) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{count} frame" if count == 1 else f"{count} frames"


def segment(text) -> str:
    """One path segment of a link, for any night or band name ("M31 #2", "Ha/OIII")."""
    from urllib.parse import quote

    return quote(str(text), safe="")
