"""The desk's photometry page: ``/photometry`` draws the night's colour-magnitude diagram, each point a link to
``/photometry?source=ID``, which adds that star's light curve below."""

from __future__ import annotations

from urllib.parse import urlencode


def photometry(request):
    """``/photometry[?night=NAME][&colour=B-V][&source=ID]``: the CMD (when two bands have photometry) and a
    chosen source's light curve; one-line errors (400) for a bad colour or source, 404 for an unknown one."""
    from obsdb.errors import ObsdbError
    from obsdb.present.photometry_views import cmd_bands, cmd_svg, lightcurve_svg
    from obsdb.web.pages import not_found, page

    catalog = request.app.state.desk.catalog
    query = request.query_params
    night = (query.get("night") or "").strip() or None
    if night is not None and night not in catalog.night_names():
        return not_found("no such night")
    source_text = (query.get("source") or "").strip()
    source = None
    if source_text:
        if not source_text.isdigit():
            return page(request, "desk/photometry.html", 400, night=night, error=f"source {source_text!r}: "
                        "a source id (a whole number)", cmd=None, lightcurve=None, source=None, info=None, rows=[],
                        note=None, nights=[])
        source = int(source_text)
    sources = catalog.sources(night=night)
    bands = [n[4:] for n in sources.colnames if n.startswith("mag_") and not n.startswith("mag_err_")]
    error, note, figure, curve, rows = None, None, None, None, []
    colour_text = (query.get("colour") or "").strip()
    if colour_text:
        parts = colour_text.split("-")
        colour = (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None
        if colour is None:
            error = f"colour {colour_text!r}: two bands joined by a dash, e.g. B-V"
    else:
        colour = cmd_bands(bands)

    def href(source_id: int) -> str:
        return "/photometry?" + urlencode({k: v for k, v in (("night", night), ("colour", colour_text),
                                                                ("source", source_id)) if v})

    if not len(sources):
        note = "No photometry yet: run `obsdb photometry` (or `obsdb run`)."
    elif colour is None and not error:
        note = f"One band measured ({', '.join(bands)}): a colour-magnitude diagram needs two."
    elif colour is not None:
        blue, red = colour
        try:
            table = catalog.cmd(night=night, blue=blue, red=red)
        except ObsdbError as exc:
            error = str(exc)
        else:
            rows = [{n: (r[n].item() if hasattr(r[n], "item") else r[n]) for n in table.colnames} for r in table]
            figure = cmd_svg(rows, blue=blue, red=red, magnitude=red, href=href, highlight=source,
                             title=f"{red} against {blue} - {red}, {len(rows)} sources (accepted frames)")
    info = None
    if source is not None:
        try:
            table = catalog.lightcurve(source, night=night)
        except ObsdbError:
            return not_found(f"no such source: {source}")
        info = dict(table.meta)
        points = [{n: (r[n].item() if hasattr(r[n], "item") else r[n]) for n in table.colnames} for r in table]
        curve = lightcurve_svg(points, title=f"source {source}: {len(points)} frames",
                               href=lambda frame_id: f"/frame/{frame_id}.png")
    return page(request, "desk/photometry.html", 400 if error else 200, night=night, error=error, note=note,
                cmd=figure, lightcurve=curve, source=source, info=info, rows=rows,
                nights=catalog.night_names())
