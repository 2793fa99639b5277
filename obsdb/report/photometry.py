"""The report's photometry section: the night's colour-magnitude diagram and one star's light curve."""

from __future__ import annotations

import math

from obsdb.errors import ObsdbError
from obsdb.present.photometry_views import chosen_star, cmd_bands, cmd_svg, lightcurve_svg


def _rows(table) -> list[dict]:
    return [{name: (row[name].item() if hasattr(row[name], "item") else row[name]) for name in table.colnames}
            for row in table]


def photometry_section(catalog, nights=None, pages: dict[int, str] | None = None) -> dict | None:
    """What the report shows of the photometry, or None when the catalog has none.

    Parameters
    ----------
    catalog : obsdb.Catalog
        Read through :meth:`~obsdb.Catalog.sources`, :meth:`~obsdb.Catalog.cmd` and
        :meth:`~obsdb.Catalog.lightcurve`.
    nights : optional
        Only these nights.
    pages : dict, optional
        Frame id -> the frame's page (relative): each light-curve point links to it.

    Returns
    -------
    dict or None
        ``n_sources``, ``bands``; ``cmd`` (SVG) and ``cmd_caption`` when two bands have photometry (else
        ``cmd_note``); ``star`` (its id), ``star_reason``, ``lightcurve`` (SVG) and ``lightcurve_caption``.
    """
    sources = catalog.sources(night=nights)
    if not len(sources):
        return None
    bands = [name[4:] for name in sources.colnames if name.startswith("mag_") and not name.startswith("mag_err_")]
    section = {"n_sources": len(sources), "bands": bands, "cmd": None, "cmd_caption": "", "cmd_note": "",
               "star": None, "star_reason": "", "lightcurve": None, "lightcurve_caption": ""}
    colour = cmd_bands(bands)
    candidates = _rows(sources)
    if colour is not None:
        blue, red = colour
        try:
            table = catalog.cmd(night=nights, blue=blue, red=red)
        except ObsdbError as exc:
            section["cmd_note"] = str(exc)
        else:
            rows = _rows(table)
            # The star to show is chosen on the CMD's magnitudes: only unflagged (unsaturated) measurements.
            variable = {int(r["id"]): r["variable"] for r in candidates}
            candidates = [dict(r, variable=variable.get(int(r["id"]), False),
                               n_frames=sum(int(r[f"n_{b}"]) for b in (blue, red))) for r in rows]
            section["star"] = chosen_star(candidates, [red, blue])
            section["cmd"] = cmd_svg(rows, blue=blue, red=red, magnitude=red, highlight=section["star"],
                                     title=f"{red} against {blue} - {red}, {len(rows)} sources")
            frames = ", ".join(f"{len(v)} {b}" for b, v in table.meta["frames"].items())
            section["cmd_caption"] = (f"Instrumental {red} against {blue} - {red}: each source's weighted mean "
                                      f"differential magnitude over the accepted frames ({frames}) that measured it "
                                      f"unflagged; the highlighted point is the star whose light curve follows "
                                      f"(obsdb cmd).")
    else:
        section["cmd_note"] = (f"One band measured ({', '.join(bands) or 'none'}): a colour-magnitude diagram needs "
                               f"two.")
    if section["star"] is None:
        section["star"] = chosen_star(candidates, bands)
    star = section["star"]
    if star is None:
        return section
    chosen = next((r for r in candidates if int(r["id"]) == star), {})
    section["star_reason"] = ("the brightest unsaturated variable" if chosen.get("variable")
                              else "no variable found: the source measured in most frames")
    curve = catalog.lightcurve(star, night=nights)
    links = pages or {}
    section["lightcurve"] = lightcurve_svg(_rows(curve), title=f"source {star}",
                                           href=(lambda fid: links.get(fid)) if links else None)
    x, y = curve.meta.get("x"), curve.meta.get("y")
    where = f"at x {x:.1f}, y {y:.1f} in the reference" if isinstance(x, float) and math.isfinite(x) else ""
    section["lightcurve_caption"] = (f"Source {star} {where} ({section['star_reason']}): differential magnitude "
                                     f"(instrumental less the frame's ensemble zero point) of {len(curve)} frames, "
                                     f"bands in their colours, rejected frames hollow (obsdb lightcurve {star}).")
    return section
