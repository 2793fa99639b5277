"""Which master bias, dark and flat calibrate each light, and why: hard gates, then a preference.

Pure: lights and masters come in as dicts, matches go out as dicts; the catalog stores them.

The rules follow LCO BANZAI's (``banzai.calibrations``: exact criteria per frame type, only masters
not marked bad, whose validity holds the light's date, the nearest in time) and psf-guard's gates
(read-out mode, binning, temperature within 3 C):

=======  ============================================================  =============================
kind     gates (all must hold)                                          preference
=======  ============================================================  =============================
bias     not bad; written; same instrument (camera, shape, binning);    nearest in time
         same read-out key; validity holds the light's time
dark     as bias, and detector temperature within                      exact exposure first, then
         :data:`TEMPERATURE_TOLERANCE` (when both are known); exposure  nearest in time, then the
         within :data:`EXPTIME_TOLERANCE`, or any exposure scaled       closest temperature
         when the light has a bias to separate the offset
flat     as bias, and the same band exactly (a V flat never             nearest in time
         calibrates a VR light)
=======  ============================================================  =============================
"""

from __future__ import annotations

from datetime import datetime

from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES

TEMPERATURE_TOLERANCE = 3.0
"""Largest difference of detector temperature between a dark and a light, C (psf-guard's gate)."""

EXPTIME_TOLERANCE = 0.05
"""Largest difference of exposure between a dark and a light for an unscaled match, s (psf-guard's)."""

MAX_REFUSED_LISTED = 4
"""Refused masters named in a match's reason at most (the nearest ones); the rest are counted."""



def _hours(light: dict, master: dict) -> float | None:
    a, b = light.get("date_obs"), master.get("time")
    if a is None or b is None:
        return None
    return (a - b).total_seconds() / 3600.0


def _when(light: dict, master: dict) -> str:
    night = "same night" if master.get("night_id") == light.get("night_id") else f"night {master.get('night')}"
    hours = _hours(light, master)
    if hours is None:
        return night
    return f"{night}, {abs(hours):.1f} h {'before' if hours >= 0 else 'after'}"


def _describe(master: dict) -> str:
    kind = master["kind"]
    detail = {"flat": master.get("band") or "-",
              "dark": f"{master.get('exptime'):g} s" if master.get("exptime") is not None else "? s"}.get(kind)
    return f"{kind} {master['id']}" + (f" ({detail})" if detail else "")


def _gate(light: dict, master: dict, *, has_bias: bool) -> str | None:
    """Why ``master`` may not calibrate ``light``, or None when it passes every gate."""
    kind = master["kind"]
    if master.get("bad"):
        return f"marked bad ({master.get('bad_reason') or 'no reason given'})"
    if not master.get("written"):
        return "its file was never finished"
    if master.get("instrument_id") != light.get("instrument_id"):
        return "another instrument or binning"
    if master.get("readout") != light.get("readout"):
        return f"read-out {master.get('readout')} != {light.get('readout')}"
    date = light.get("date_obs")
    if date is None:
        if master.get("night_id") != light.get("night_id"):
            return "the light has no time and the master is of another night"
    else:
        start, end = master.get("valid_from"), master.get("valid_to")
        if (start is not None and date < start) or (end is not None and date > end):
            return f"valid {_stamp(start)} to {_stamp(end)} only"
    if kind == "flat":
        band, own = master.get("band"), light.get("band")
        if not band or not own or band.strip() != own.strip():
            return f"band {band or '-'} != {own or '-'}"
    if kind == "dark":
        t_master, t_light = master.get("ccd_temp"), light.get("ccd_temp")
        if t_master is not None and t_light is not None and abs(t_master - t_light) > TEMPERATURE_TOLERANCE:
            return (f"temperature {t_master:.1f} C vs {t_light:.1f} C (limit {TEMPERATURE_TOLERANCE:g} C)")
        e_master, e_light = master.get("exptime"), light.get("exptime")
        if e_master is None or e_light is None or e_master <= 0:
            return "exposure unknown"
        if abs(e_master - e_light) > EXPTIME_TOLERANCE and not has_bias:
            return (f"exposure {e_master:g} s != {e_light:g} s and no bias to separate the offset "
                    "before scaling")
    return None


def _stamp(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _preference(light: dict, master: dict) -> tuple:
    hours = _hours(light, master)
    distance = abs(hours) if hours is not None else (0.0 if master.get("night_id") == light.get("night_id")
                                                     else float("inf"))
    exact = 0
    temperature = 0.0
    if master["kind"] == "dark":
        exact = 0 if abs(master["exptime"] - light["exptime"]) <= EXPTIME_TOLERANCE else 1
        if master.get("ccd_temp") is not None and light.get("ccd_temp") is not None:
            temperature = abs(master["ccd_temp"] - light["ccd_temp"])
    return exact, distance, temperature, -master["id"]


def match_light(light: dict, masters: list[dict]) -> list[dict]:
    """The master of each kind for one light, with the reason, or the reason there is none.

    Parameters
    ----------
    light : dict
        ``id``, ``night_id``, ``night``, ``instrument_id``, ``readout``, ``band``, ``exptime``,
        ``ccd_temp``, ``date_obs`` (aware datetime or None).
    masters : list of dict
        ``id``, ``kind``, ``night_id``, ``night``, ``instrument_id``, ``readout``, ``band``,
        ``exptime``, ``ccd_temp``, ``valid_from``, ``valid_to``, ``time`` (median of the members'
        times), ``bad``, ``bad_reason``, ``written`` (the file was finished).

    Returns
    -------
    list of dict
        One per kind: ``frame_id``, ``kind``, ``master_id`` (None: none acceptable), ``score``
        (hours between them), ``scale`` (darks: light exposure / dark exposure), ``reason``.
    """
    out = []
    has_bias = False
    for kind in CALIBRATION_IMAGE_TYPES:
        candidates = [m for m in masters if m["kind"] == kind]
        passed, refused = [], []
        for master in candidates:
            why = _gate(light, master, has_bias=has_bias)
            (refused if why else passed).append((master, why))
        refused.sort(key=lambda item: _preference(light, item[0])[1:])
        notes = [f"{_describe(m)} refused: {why}" for m, why in refused[:MAX_REFUSED_LISTED]]
        if len(refused) > MAX_REFUSED_LISTED:
            notes.append(f"{len(refused) - MAX_REFUSED_LISTED} more refused")
        if not passed:
            what = {"flat": f"no flat for {light.get('band') or 'an unknown band'}",
                    "dark": f"no dark for {light.get('exptime')} s" if light.get("exptime") is not None
                    else "no dark", "bias": "no bias"}[kind]
            if not candidates:
                what += " (no master of this kind in the catalog)"
            out.append({"frame_id": light["id"], "kind": kind, "master_id": None, "score": None, "scale": None,
                        "reason": "; ".join([f"uncalibrated: {what}", *notes])})
            continue
        best = min((m for m, _ in passed), key=lambda m: _preference(light, m))
        scale = None
        text = f"{_describe(best)}: {_when(light, best)}"
        if kind == "dark":
            scale = 1.0
            if abs(best["exptime"] - light["exptime"]) > EXPTIME_TOLERANCE:
                scale = light["exptime"] / best["exptime"]
                text += f", scaled x{scale:.4g} ({light['exptime']:g} s / {best['exptime']:g} s)"
            if best.get("ccd_temp") is not None and light.get("ccd_temp") is not None:
                text += f", {best['ccd_temp']:.1f} C vs {light['ccd_temp']:.1f} C"
            else:
                # Said, not silently passed: a dark of another temperature is the commonest wrong dark.
                which = "the light's" if light.get("ccd_temp") is None else "the dark's"
                text += f", temperature not checked ({which} header gives none)"
        others = len(passed) - 1
        if others:
            text += f" (nearest of {len(passed)} acceptable)"
        hours = _hours(light, best)
        out.append({"frame_id": light["id"], "kind": kind, "master_id": best["id"],
                    "score": None if hours is None else abs(hours), "scale": scale,
                    "reason": "; ".join([text, *notes])})
        if kind == "bias":
            has_bias = True
    return out


def match_lights(lights: list[dict], masters: list[dict]) -> list[dict]:
    """:func:`match_light` for every light; the rows, light by light."""
    rows = []
    for light in lights:
        rows.extend(match_light(light, masters))
    return rows
