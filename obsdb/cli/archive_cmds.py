"""The archive over nights: `weight`, `alias`, `targets` and `trends`."""

from __future__ import annotations

from typing import List, Optional

import typer

from obsdb.cli.common import (OutputFormat, app, clean_nan, console, fmt, night_option, nights_arg,
                              open_catalog, print_csv, print_json, user_errors)

weight_app = typer.Typer(help="Frame weights: the built-in ones (noise, fwhm, stars, snr) and those you define.",
                         no_args_is_help=True)
app.add_typer(weight_app, name="weight")
alias_app = typer.Typer(help="Target aliases: other names of a target, added up by `obsdb targets`.",
                        no_args_is_help=True)
app.add_typer(alias_app, name="alias")

FORMAT_HELP = "table, json or csv."


def _format_option():
    return typer.Option(OutputFormat.table, "--format", "-f", help=FORMAT_HELP)


def _wide_option():
    return typer.Option(False, "--wide", help="Every column, whole (lines wider than the terminal).")


@weight_app.command("define")
def weight_define(
    name: str = typer.Argument(..., help="The weight's name, for `render --weight NAME`."),
    expression: str = typer.Argument(..., help="A number per frame: --where names (fwhm, n_stars, w_noise, "
                                               "w_fwhm, w_stars, w_snr, snr, ...), + - * /, abs(), sqrt(), "
                                               "norm(), e.g. \"w_noise * norm(1 / fwhm)\"."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
) -> None:
    """Define (or redefine) a weight by name as an expression over a frame's columns and weights.

    norm(x) is (x - min) / (max - min) over the frames stacked together, as PixInsight's
    SubframeSelector normalises; see docs/archive.md."""
    with open_catalog() as catalog, user_errors():
        done = catalog.define_weight(name, expression, author=author)
    console.print(f"weight {done['name']} = {done['expression']}")


@weight_app.command("list")
def weight_list(fmt_: OutputFormat = _format_option()) -> None:
    """The weights defined by name (the built-in ones are noise, fwhm, stars and snr)."""
    with open_catalog() as catalog, user_errors():
        rows = catalog.weight_definitions()
    columns = ["name", "expression", "author", "defined_at"]
    if fmt_ is OutputFormat.json:
        print_json(rows)
    elif fmt_ is OutputFormat.csv:
        print_csv(rows, columns)
    else:
        from obsdb.cli.tables import Column, print_table

        spec = [Column("name", "name", priority=0), Column("expression", "expression", priority=1, shrink=True,
                                                          min_width=20),
                Column("author", "author", priority=2), Column("defined_at", "defined (UTC)", priority=3)]
        print_table([{**r, "defined_at": (r["defined_at"] or "-")[:19]} for r in rows], spec,
                    title=f"weights ({len(rows)}; built in: noise, fwhm, stars, snr)")


@weight_app.command("show")
def weight_show(
    name: str = typer.Argument(..., help="A defined weight, or noise, fwhm, stars or snr."),
    fmt_: OutputFormat = _format_option(),
    band: Optional[str] = typer.Option(None, "--band", "-b", help="Only this band."),
    night: Optional[List[str]] = night_option(),
) -> None:
    """A weight's expression and its value on each weighed light frame (per set of frames stacked together)."""
    with open_catalog() as catalog, user_errors():
        from obsdb.catalog.weights import BUILT_IN

        expression = f"w_{BUILT_IN[name.lower()]}" if name.lower() in BUILT_IN else \
            catalog.weight_definition(name)["expression"]
        rows = catalog.weight_values(name, night=nights_arg(night), band=band)
    columns = ["label", "night", "band", "object", "status", "weight"]
    if fmt_ is OutputFormat.json:
        print_json(clean_nan({"name": name, "expression": expression, "frames": rows}))
    elif fmt_ is OutputFormat.csv:
        print_csv(rows, columns)
    else:
        from obsdb.cli.tables import Column, print_table

        spec = [Column("label", "frame", priority=0), Column("band", "band", priority=1),
                Column("status", "status", priority=2), Column("weight", "weight", numeric=True, priority=0),
                Column("object", "object", priority=4, shrink=True), Column("night", "night", priority=5)]
        print_table([{**r, "label": str(r["label"]), "band": r["band"] or "-", "object": r["object"] or "-",
                      "weight": fmt(r["weight"], 3)} for r in rows], spec,
                    title=f"weight {name} = {expression} ({len(rows)} frames)")


@alias_app.command("add")
def alias_add(
    alias: str = typer.Argument(..., help="The other name, e.g. \"Caldwell 80\"."),
    target: str = typer.Argument(..., help="The target it stands for, e.g. NGC5139."),
    author: Optional[str] = typer.Option(None, "--author", help="Who (default: your login name)."),
) -> None:
    """Count frames whose OBJECT is ALIAS as TARGET in `obsdb targets` (spaces, case and catalogue
    prefixes are unified already: M80 = M 80 = Messier 80)."""
    with open_catalog() as catalog, user_errors():
        done = catalog.add_alias(alias, target, author=author)
    console.print(f"alias {done['alias']} -> {done['target']}")


@alias_app.command("remove")
def alias_remove(alias: str = typer.Argument(..., help="The alias to remove.")) -> None:
    """Remove an alias."""
    with open_catalog() as catalog, user_errors():
        removed = catalog.remove_alias(alias)
    if not removed:
        from obsdb.cli.common import fail

        fail(f"alias {alias!r}: no such alias (see `obsdb alias list`)")
    console.print(f"alias {alias} removed")


@alias_app.command("list")
def alias_list(fmt_: OutputFormat = _format_option()) -> None:
    """The target aliases."""
    with open_catalog() as catalog, user_errors():
        rows = catalog.aliases()
    columns = ["alias", "target", "as_given", "author", "added_at"]
    if fmt_ is OutputFormat.json:
        print_json(rows)
    elif fmt_ is OutputFormat.csv:
        print_csv(rows, columns)
    else:
        from obsdb.cli.tables import Column, print_table

        spec = [Column("alias", "alias", priority=0), Column("target", "target", priority=0),
                Column("as_given", "as given", priority=2, shrink=True), Column("author", "author", priority=3)]
        print_table(rows, spec, title=f"aliases ({len(rows)})")


TARGET_COLUMNS = ["target", "filter", "night", "nights", "frames", "accepted", "hours", "accepted_hours", "objects",
                  "filters"]
"""The CSV columns of `obsdb targets`."""


@app.command()
def targets(
    fmt_: OutputFormat = _format_option(),
    total: bool = typer.Option(False, "--total", help="Over all nights: one row per target and filter."),
    wide: bool = _wide_option(),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Integration per target, filter and night: accepted/total light frames and hours.

    Target names are unified (M80 = M 80 = Messier 80, NGC0104 = NGC 104) and your aliases applied
    (`obsdb alias add`); filters too (Ha = H = H-alpha)."""
    with open_catalog() as catalog, user_errors():
        rows = catalog.targets(night=nights_arg(night), per_night=not total)
    if fmt_ is OutputFormat.json:
        print_json(rows)
        return
    if fmt_ is OutputFormat.csv:
        print_csv([{**r, "objects": "; ".join(r["objects"]), "filters": "; ".join(r["filters"])} for r in rows],
                  TARGET_COLUMNS)
        return
    from obsdb.cli.tables import Column, print_table

    spec = [Column("target", "target", priority=0, shrink=True, min_width=8),
            Column("filter", "filter", priority=0), Column("night", "night", priority=1),
            Column("nights", "nights", numeric=True, priority=5),
            Column("frames", "accepted/total", numeric=True, priority=2),
            Column("hours", "hours acc/total", numeric=True, priority=3),
            Column("objects", "OBJECT as written", priority=6, shrink=True, min_width=10),
            Column("filters", "FILTER as written", priority=7, shrink=True, min_width=10)]
    cells = [{"target": r["target"] or "(no OBJECT)", "filter": r["filter"] or "-", "night": r["night"] or "all",
              "nights": fmt(r["nights"]), "frames": f"{r['accepted']:,}/{r['frames']:,}",
              "hours": f"{r['accepted_hours']:.2f}/{r['hours']:.2f}", "objects": ", ".join(r["objects"]),
              "filters": ", ".join(r["filters"])} for r in rows]
    if total:
        spec = [c for c in spec if c.key != "night"]
    print_table(cells, spec, title=f"integration per target{'' if total else ' and night'} ({len(rows)} rows)",
                wide=wide)


TREND_COLUMNS = ["instrument", "filter", "night", "frames", "accepted", "acceptance", "fwhm", "fwhm_arcsec",
                 "scale", "background", "transparency", "flags"]
"""The CSV columns of `obsdb trends`."""


@app.command()
def trends(
    fmt_: OutputFormat = _format_option(),
    flagged: bool = typer.Option(False, "--flagged", help="Only the nights flagged as unusual."),
    wide: bool = _wide_option(),
    night: Optional[List[str]] = night_option(),
) -> None:
    """Per instrument and filter, each night's median FWHM (arcsec when the pixel scale is known),
    background, transparency and acceptance, with nights far from the instrument's usual flagged.

    A night is flagged when a median lies beyond 3 robust sigma (1.4826 MAD over the instrument's
    nights in that filter, 4 nights at least) on the bad side; the reason names the numbers."""
    with open_catalog() as catalog, user_errors():
        found = catalog.trends(night=nights_arg(night))
    rows = [r for r in found["rows"] if r["flags"] or not flagged]
    if fmt_ is OutputFormat.json:
        print_json(clean_nan({"transparency_source": found["transparency_source"], "rows": rows}))
        return
    if fmt_ is OutputFormat.csv:
        print_csv([{**r, "flags": "; ".join(r["flags"])} for r in rows], TREND_COLUMNS)
        return
    from obsdb.cli.common import err_console
    from obsdb.cli.tables import Column, print_table
    from obsdb.present.facts import short_instrument

    spec = [Column("instrument", "instrument", priority=4, shrink=True, min_width=8),
            Column("filter", "filter", priority=0), Column("night", "night", priority=0),
            Column("acceptance", "acc/total", numeric=True, priority=1),
            Column("fwhm", "FWHM", numeric=True, priority=1),
            Column("background", "sky ADU", numeric=True, priority=2),
            Column("transparency", "transp", numeric=True, priority=3),
            Column("flags", "flagged", priority=2, shrink=True, wrap=True, min_width=16)]
    cells = [{"instrument": short_instrument(r["instrument"]) if r["instrument"] else "-",
              "filter": r["filter"] or "-", "night": r["night"],
              "acceptance": f"{r['accepted']}/{r['frames']}",
              "fwhm": f"{r['fwhm_arcsec']:.2f}\"" if r["fwhm_arcsec"] is not None else
              (f"{r['fwhm']:.2f} px" if r["fwhm"] is not None else "-"),
              "background": fmt(r["background"], 0), "transparency": fmt(r["transparency"], 1),
              "flags": "; ".join(r["flags"]) or "-"} for r in rows]
    print_table(cells, spec, title=f"trends per instrument, filter and night ({len(rows)} rows)", wide=wide)
    err_console.print(f"transparency: {found['transparency_source']}", soft_wrap=True)
