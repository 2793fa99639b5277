"""Checks of calibration frames: bias, dark and flat frames are judged by their own rules, never by the
light-frame ones (they hold no stars: a "FWHM" measured on a bias frame's noise means nothing).

Frames are judged within their *set*: one night, one instrument, one image type, and the band for
flats or the exposure for darks.  The rules, each an automatic tag whose reason gives the numbers and
the yardstick, and whose ``tag.evidence`` keeps them:

``calib-level``
    Bias and dark: the frame's median lies more than :data:`LEVEL_SIGMA` robust scatters from the
    median of its set (the scatter is 1.4826 x the median absolute deviation of the set's medians,
    and never less than :data:`LEVEL_NOISE_FLOOR` x the set's typical pixel noise, so that a set of
    identical levels does not make a one-ADU drift an outlier).  Flats are not judged on their level:
    twilight flats change level by design; their rules are the linear range below.
``calib-noise``
    Bias and dark: the frame's pixel noise (sigma-clipped rms) differs from the set's median by more
    than a factor :data:`NOISE_RATIO` (read-out interference, a warm detector, a light leak).
``calib-saturated``
    Any calibration frame: more than :data:`SATURATED_FRACTION` of its pixels at saturation.
``flat-nonlinear``
    A flat whose median exceeds :data:`FLAT_LINEAR_FRACTION` of the saturation level: outside the
    range where the detector answers in proportion to the light.
``flat-faint``
    A flat whose signal (median less the night's bias level for the instrument, when known) is below
    :data:`FLAT_MIN_SIGNAL` ADU: its own noise would be printed on every calibrated frame.

A set of fewer than :data:`MIN_SET_SIZE` frames has no yardstick for level and noise: only the
saturation and linear-range rules judge it.  These tags do not reject a frame by themselves; they are
listed apart from light frames by ``obsdb rejected`` and ``obsdb summary``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from obsdb.catalog.status import CALIBRATION_TAGS as CALIB_TAGS  # the vocabulary lives in one place
from obsdb.catalog.status import MASTER_COMPARISON_TAG

STATISTICS_TAGS = tuple(name for name in CALIB_TAGS if name != MASTER_COMPARISON_TAG)
"""The tags these checks decide from the frames' statistics (the comparison with the previous
master is `obsdb calibrate`'s, from the pixels)."""

MIN_SET_SIZE = 3
"""Frames a set needs before its median is a yardstick for level and noise."""

LEVEL_SIGMA = 5.0
"""``calib-level``: how many robust scatters from its set's median a frame's level may lie."""

LEVEL_NOISE_FLOOR = 1.0
"""``calib-level``: the smallest scatter used, in units of the set's median pixel noise (rms).  A bias
set whose medians are all 1626 ADU has no scatter; one read noise is the yardstick then."""

NOISE_RATIO = 1.5
"""``calib-noise``: the largest factor between a frame's pixel noise and its set's median (either way)."""

SATURATED_FRACTION = 1e-3
"""``calib-saturated``: the largest fraction of pixels at saturation (a dark's hot pixels are ~1e-5)."""

FLAT_LINEAR_FRACTION = 0.7
"""``flat-nonlinear``: the highest flat median, as a fraction of the saturation level.  Many CCDs and
CMOS sensors leave their linear range above ~70-80 % of full well."""

FLAT_MIN_SIGNAL = 3000.0
"""``flat-faint``: the least flat signal, ADU above the bias level.  At a gain of 1 e-/ADU that is
3000 e-, a signal-to-noise of ~55 per pixel per flat: fainter flats add visible noise."""

SECONDS_DECIMALS = 1
"""Darks are grouped by exposure rounded to this many decimals of a second."""


@dataclass
class CalibrationVerdicts:
    """What the checks found: tags wanted with their reasons and evidence, and the sets judged."""

    wanted: dict[tuple[int, str], str] = field(default_factory=dict)
    evidence: dict[tuple[int, str], dict] = field(default_factory=dict)
    sets: list[dict] = field(default_factory=list)
    """One per set: ``key`` (text), ``type``, ``frames`` (count), ``judged`` (level and noise judged)."""


@dataclass
class CalibrationReport:
    """What :func:`check_calibration` did: frames checked and the tags added and retracted, as
    (frame label, tag, reason)."""

    checked: int = 0
    added: list[tuple[str, str, str]] = field(default_factory=list)
    retracted: list[tuple[str, str, str]] = field(default_factory=list)
    sets: list[dict] = field(default_factory=list)


def set_key(frame: dict) -> tuple:
    """The set a calibration frame is judged in: night, instrument, type, and band (flat) or exposure
    (dark)."""
    kind = frame["type"]
    detail = None
    if kind == "flat":
        detail = frame.get("band")
    elif kind == "dark":
        exptime = frame.get("exptime")
        detail = None if exptime is None else round(float(exptime), SECONDS_DECIMALS)
    return frame["night"], frame.get("instrument"), kind, detail


def _set_name(key: tuple, n: int) -> str:
    night, instrument, kind, detail = key
    what = {"flat": f" in {detail or '-'}", "dark": f" of {detail if detail is not None else '?'} s"}.get(kind, "")
    camera = f", {instrument}" if instrument else ""
    return f"{n} {kind} frame{'s' if n != 1 else ''}{what} of {night}{camera}"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def evaluate_calibration(frames: list[dict]) -> CalibrationVerdicts:
    """The calibration rules on frames (dicts as :func:`obsdb.catalog.calibration.calibration_records`
    gives them).  Pure: no catalog, no pixels.

    Returns
    -------
    CalibrationVerdicts
    """
    verdicts = CalibrationVerdicts()
    sets: dict[tuple, list[dict]] = {}
    for frame in frames:
        if frame.get("median") is None:
            continue
        sets.setdefault(set_key(frame), []).append(frame)
    # The bias level of each night and instrument, for a flat's signal.
    bias_levels = {(key[0], key[1]): statistics.median(f["median"] for f in members)
                   for key, members in sets.items() if key[2] == "bias"}
    for key, members in sorted(sets.items(), key=lambda item: tuple(str(v) for v in item[0])):
        kind = key[2]
        name = _set_name(key, len(members))
        judged = kind in ("bias", "dark") and len(members) >= MIN_SET_SIZE
        verdicts.sets.append({"key": name, "type": kind, "frames": len(members), "judged": judged})
        if judged:
            _level_and_noise(members, name, verdicts)
        for frame in members:
            _saturation(frame, name, verdicts)
            if kind == "flat":
                _linear_range(frame, bias_levels.get((key[0], key[1])), name, verdicts)
    return verdicts


def _want(verdicts: CalibrationVerdicts, frame: dict, tag: str, reason: str, evidence: dict) -> None:
    verdicts.wanted[(frame["id"], tag)] = f"{tag}: {reason}"
    verdicts.evidence[(frame["id"], tag)] = evidence


def _level_and_noise(members: list[dict], name: str, verdicts: CalibrationVerdicts) -> None:
    from astropy.stats import mad_std

    levels = [float(f["median"]) for f in members]
    center = statistics.median(levels)
    mad = float(mad_std(levels))
    noises = [float(f["background_rms"]) for f in members if f.get("background_rms") is not None]
    typical_noise = statistics.median(noises) if noises else None
    scale = max(mad, LEVEL_NOISE_FLOOR * (typical_noise or 0.0))
    for frame in members:
        level = float(frame["median"])
        if scale > 0:
            sigmas = (level - center) / scale
            if abs(sigmas) > LEVEL_SIGMA:
                side = "above" if sigmas > 0 else "below"
                floor = " (the noise floor)" if scale > mad else ""
                _want(verdicts, frame, "calib-level",
                      f"median {_fmt(level)} ADU is {abs(sigmas):.1f} sigma {side} the set's {_fmt(center)} "
                      f"(scatter {_fmt(scale)} ADU{floor}; {name}; limit {LEVEL_SIGMA:g} sigma)",
                      {"value": level, "set_median": center, "scatter": scale, "mad_scatter": mad,
                       "sigmas": sigmas, "threshold": LEVEL_SIGMA,
                       "yardstick": {"set": name, "frames": len(members), "noise": typical_noise}})
        noise = frame.get("background_rms")
        if noise is not None and typical_noise and noise > 0:
            ratio = float(noise) / typical_noise
            if ratio > NOISE_RATIO or ratio < 1.0 / NOISE_RATIO:
                _want(verdicts, frame, "calib-noise",
                      f"pixel noise {_fmt(noise)} ADU is {ratio:.2f}x the set's {_fmt(typical_noise)} "
                      f"({name}; limit x{NOISE_RATIO:g} either way)",
                      {"value": float(noise), "set_median": typical_noise, "ratio": ratio,
                       "threshold": NOISE_RATIO, "yardstick": {"set": name, "frames": len(members)}})


def _saturation(frame: dict, name: str, verdicts: CalibrationVerdicts) -> None:
    n_saturated, pixels = frame.get("n_saturated"), frame.get("pixels")
    if not n_saturated or not pixels:
        return
    fraction = n_saturated / pixels
    if fraction > SATURATED_FRACTION:
        _want(verdicts, frame, "calib-saturated",
              f"{fraction:.2%} of pixels ({n_saturated:,}) at saturation {_fmt(frame.get('saturation') or 0)} "
              f"ADU (limit {SATURATED_FRACTION:.2%}; {name})",
              {"value": fraction, "n_saturated": n_saturated, "pixels": pixels,
               "saturation": frame.get("saturation"), "threshold": SATURATED_FRACTION,
               "yardstick": {"set": name}})


def _linear_range(frame: dict, bias_level: float | None, name: str, verdicts: CalibrationVerdicts) -> None:
    level, saturation = float(frame["median"]), frame.get("saturation")
    if saturation and level > FLAT_LINEAR_FRACTION * saturation:
        _want(verdicts, frame, "flat-nonlinear",
              f"median {_fmt(level)} ADU is {level / saturation:.0%} of saturation {_fmt(saturation)} "
              f"(limit {FLAT_LINEAR_FRACTION:.0%}: beyond it the detector is not linear)",
              {"value": level, "saturation": saturation, "fraction": level / saturation,
               "threshold": FLAT_LINEAR_FRACTION, "yardstick": {"set": name}})
    signal = level - (bias_level or 0.0)
    if signal < FLAT_MIN_SIGNAL:
        base = f"the night's bias level {_fmt(bias_level)}" if bias_level is not None else "zero (no bias frames)"
        _want(verdicts, frame, "flat-faint",
              f"signal {_fmt(signal)} ADU above {base} is below {_fmt(FLAT_MIN_SIGNAL)} ADU",
              {"value": signal, "median": level, "bias_level": bias_level, "threshold": FLAT_MIN_SIGNAL,
               "yardstick": {"set": name}})


def check_calibration(store, *, nights=None, author: str = "obsdb") -> CalibrationReport:
    """Judge the calibration frames of ``nights`` (default: every night) and write their tags.

    The tags :data:`STATISTICS_TAGS` on these frames are made exactly what the rules find (a tag that no
    longer holds is retracted, with the reason).  Light-frame metrics, star lists and light-frame rule
    tags that older versions left on calibration frames are removed.  ``store`` is a
    :class:`obsdb.catalog.stores.CalibrationStore`.

    Returns
    -------
    CalibrationReport
    """
    frames = store.calibration_frames(nights=nights)
    verdicts = evaluate_calibration(frames)
    change = store.apply_calibration_tags([f["id"] for f in frames], verdicts.wanted, verdicts.evidence,
                                          names=STATISTICS_TAGS, author=author,
                                          retract_reason="no longer holds: the calibration checks pass")
    labels = {f["id"]: f["label"] for f in frames}
    return CalibrationReport(checked=len(frames), sets=verdicts.sets,
                             added=[(labels[i], name, reason) for i, name, reason in change.added],
                             retracted=[(labels[i], name, reason) for i, name, reason in change.retracted])
