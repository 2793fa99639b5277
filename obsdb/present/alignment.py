"""A frame's current alignment as the desk's blink and zoom need it: a read of the catalog, composed once.

A small read of the catalog's public methods (:meth:`~obsdb.Catalog.frame_verdicts`,
:meth:`~obsdb.Catalog.run_references`, :meth:`~obsdb.Catalog.frame_dicts`) composed with the transform
``obsdb render`` applies, so the desk shows a frame on its reference's grid exactly as render writes it.
"""

from __future__ import annotations


def aligned_record(catalog, frame_id: int) -> dict | None:
    """The frame's file record with its current run's transform onto that run's reference.

    Parameters
    ----------
    catalog : obsdb.Catalog
    frame_id : int

    Returns
    -------
    dict or None
        ``id``, ``path``, ``readable``, ``metrics`` and ``alignment`` (``run``, ``reference``,
        ``transform``, ``reference_shape``); None when the frame has no current run with steps (no
        verified transform), or it or its reference cannot be read.
    """
    from obsdb.pipeline.render import total_transform

    details = catalog.frame_verdicts(frame_id)
    run = next((r for r in (details or {}).get("alignment", []) if r["current"] and r["steps"]), None)
    if run is None:
        return None
    reference = catalog.run_references([run["run"]]).get(run["run"])
    records = {r["id"]: r for r in catalog.frame_dicts(frame_ids=[frame_id, reference])} if reference else {}
    frame, ref = records.get(frame_id), records.get(reference)
    if not frame or not frame["readable"] or not frame["shape"] or not ref or not ref["shape"]:
        return None
    steps = [{"dx": s["dx"], "dy": s["dy"], "rotation_deg": s["rotation_deg"], "scale": s["scale"],
              "cx": (s.get("parameters") or {}).get("cx"), "cy": (s.get("parameters") or {}).get("cy")}
             for s in run["steps"]]
    return {"id": frame_id, "path": frame["path"], "readable": True, "metrics": frame["metrics"],
            "alignment": {"run": run["run"], "reference": reference,
                          "transform": total_transform(steps, tuple(frame["shape"])),
                          "reference_shape": tuple(ref["shape"])}}
