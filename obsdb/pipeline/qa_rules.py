"""Rules that turn per-frame quality metrics into automatic tags that name the cause.

Pure functions, no database: the ``qa`` step reads the metrics from the
catalog (with the Sun and Moon, airmass and focuser position of each frame),
calls :func:`evaluate`, and records each :class:`TagDecision` as a tag with
its reason and its evidence.

Each band of a group is judged against a yardstick: its *clear* background,
*best* FWHM and HFD and *typical* star count are medians over the better part
of the yardstick's frames (``clear_quantile``), so a night where up to half
the frames are bad still has a sound one.  The yardstick is the group itself,
or, for a group too small (:data:`MIN_YARDSTICK_FRAMES`), the group plus the
instrument's history (the caller passes it).  A frame alone with no history
has no yardstick: only the absolute rules apply.

Tags (:data:`TAGS`; :data:`REJECTING` reject by default)
    ``cloud``
        Stars lose flux: transparency < ``cloud_transparency``; or the sky is raised
        (background > ``cloud_background_ratio`` x the clear one, or above
        :data:`SKY_SATURATION_FRACTION` of saturation, or ``cloud_background_max``)
        with stars that lost some flux, or none measured, or at full flux in a
        dark sky (no Sun or Moon to explain it: lit cloud).
    ``bright-sky``
        The sky is raised, the stars are at full flux (transparency >=
        ``full_flux_transparency``) and the Sun is above :data:`TWILIGHT_SUN_ALT`
        or the Moon is up and at least :data:`MOONLIGHT_ILLUMINATION` lit.  Noted.
    ``unknown``
        The sky is raised with the stars at full flux and the Sun and Moon could not
        be computed (no site or time); or the Sun or Moon is up but no star flux was
        measured.  The reason says which.
    ``trail``
        Median elongation a/b > ``trail_elongation``.
    ``focus``
        FWHM across the major axis or HFD > ``focus_fwhm_ratio`` x the best, with
        evidence of defocus: a focuser card that differs from the sharpest frames',
        a star profile (hfd/fwhm) changed by more than :data:`PROFILE_CHANGE`, or a
        focus run (:func:`focus_run`).
    ``seeing``
        As large, round, without defocus evidence, and the focuser unchanged, or the
        FWHM within :data:`SEEING_TOLERANCE` of the airmass**0.6 prediction.  Noted.
    ``soft``
        As large, and nothing tells seeing from focus: the reason lists what is missing.
    ``few-stars``
        Fewer than ``few_stars_ratio`` x the stars the yardstick's frames typically
        show (relative: a sparse field among its like is not few-stars), unless a
        sky or shape verdict already names why the stars are missing; or fewer than
        ``min_stars`` (default 1: no star at all).

Below ``min_stars`` stars (default 1: no star at all) a frame is few-stars whatever
the yardstick.  The shape rules need :data:`SHAPE_MIN_STARS` stars (or as many as the
yardstick typically shows: a single-star focus sequence).  Comparisons are strict (a value equal
to its threshold passes) and missing or NaN metrics never fire a rule.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

# The tags the rules can give, named once in the catalog's vocabulary.  ``satellite`` (a streak
# across the frame) is decided by the streak detector, not here; FrameMetricsInput.n_streaks is
# passed through to the evidence.
from obsdb.catalog.status import AUTOMATIC_REJECTING, QA_TAGS as TAGS

REJECTING = AUTOMATIC_REJECTING & frozenset(TAGS)
"""The tags among :data:`TAGS` that reject a frame by default (see
:data:`obsdb.catalog.status.AUTOMATIC_REJECTING` for why each does)."""

MIN_YARDSTICK_FRAMES = 3
"""A group (night, instrument, band, target) with fewer frames than this is too small to be its
own yardstick: its frames are judged against the instrument's history in the catalog too."""

TWILIGHT_SUN_ALT = -18.0
"""The Sun above this altitude (deg) brightens the sky: twilight (astronomical twilight ends at -18)."""

MOONLIGHT_ILLUMINATION = 0.2
"""The Moon above the horizon and at least this fraction lit brightens the sky."""

SKY_SATURATION_FRACTION = 0.5
"""A sky above this fraction of the detector's saturation level is no night sky, whatever the
yardstick (an overcast all-sky frame at 52,000 of 65,535 ADU): judged even for a frame alone."""

PROFILE_CHANGE = 0.15
"""Star profile ``hfd / fwhm`` (1.0 for a Gaussian, lower for flat-topped or annular
defocused stars, whose second moments are wide for their half-flux diameter) differing from
the sharpest frames' by more than this is evidence of defocus."""

SEEING_AIRMASS_EXPONENT = 0.6
"""Seeing FWHM grows with airmass**0.6."""

SEEING_TOLERANCE = 0.15
"""A FWHM within this fraction above the airmass**0.6 prediction is explained by airmass."""

AIRMASS_CHANGE = 1.05
"""Airmass ratios below this do not count as a change of airmass."""

SHAPE_MIN_STARS = 5
"""The shape rules (trail, focus, seeing, transparency) need this many stars, or as many as the
yardstick's frames typically show (a single-star focus sequence): fewer stars' medians are noise."""

FOCUS_RUN_MIN_FRAMES = 5
"""A focus run (star size falling to one minimum then rising, in time order) needs this many frames."""

FOCUS_RUN_RANGE = 2.0
"""... and its largest size at least this multiple of its smallest."""

FOCUS_RUN_SLACK = 0.1
"""... allowing each step this fractional wobble against the trend."""


@dataclass
class QaThresholds:
    """Thresholds of the automatic QA rules.

    Attributes
    ----------
    cloud_background_ratio : float
        Cloud when the background exceeds this multiple of the band's clear
        background (clear frames vary by ~1.5x in a night; clouds give 5-30x).
    cloud_transparency : float
        Cloud when the star flux relative to the band's reference is below this.
    trail_elongation : float
        Trail when the median a/b exceeds this (round stars measure 1.0-1.15;
        a 10 px trail of a 2.6 px FWHM star measures ~2.8).
    focus_fwhm_ratio : float
        Focus when the FWHM exceeds this multiple of the band's best.
    min_stars : int
        Few-stars below this many stars, whatever the yardstick (default 1: a frame with no star
        at all cannot be aligned or stacked).
    few_stars_ratio : float
        Few-stars when the frame shows fewer than this fraction of the stars its yardstick's
        frames typically show (relative: a sparse field is not few-stars).
    full_flux_transparency : float
        Stars at this transparency or above are at full flux: a raised sky with them is
        twilight or moonlight (``bright-sky``) when the Sun or the Moon explains it.
    clear_quantile : float
        Band statistics use the frames at or below this quantile of the band's
        backgrounds (and of its FWHMs); 0.5 tolerates half the frames bad.
    cloud_background_max : float or None
        Optional absolute limit, ADU.
    focus_fwhm_max : float or None
        Optional absolute limit, px.
    """

    cloud_background_ratio: float = 3.0
    cloud_transparency: float = 0.5
    trail_elongation: float = 1.6
    focus_fwhm_ratio: float = 1.5
    min_stars: int = 1
    few_stars_ratio: float = 0.1
    full_flux_transparency: float = 0.7
    clear_quantile: float = 0.5
    cloud_background_max: float | None = None
    focus_fwhm_max: float | None = None

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            optional = f.name in _OPTIONAL
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"QA threshold {f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"QA threshold {f.name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.clear_quantile <= 1:
            raise ValueError(f"QA threshold clear_quantile must be in (0, 1], got {self.clear_quantile!r}")
        if int(self.min_stars) != self.min_stars:
            raise ValueError(f"QA threshold min_stars must be a whole number, got {self.min_stars!r}")
        self.min_stars = int(self.min_stars)

    @classmethod
    def from_mapping(cls, mapping: Mapping | None) -> QaThresholds:
        """Thresholds from a mapping (e.g. a ``[qa]`` table of a config file).

        Parameters
        ----------
        mapping : Mapping or None
            Keys are attribute names (``-`` may stand for ``_``); missing keys
            keep their defaults.

        Returns
        -------
        QaThresholds

        Raises
        ------
        ValueError
            For an unknown key or a value of the wrong type or range.
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(f"QA thresholds must be a mapping, got {type(mapping).__name__}")
        known = {f.name for f in fields(cls)}
        values, unknown = {}, []
        for key, value in mapping.items():
            name = str(key).replace("-", "_")
            if name in known:
                values[name] = value
            else:
                unknown.append(str(key))
        if unknown:
            raise ValueError(f"unknown QA threshold(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**values)


_OPTIONAL = {"cloud_background_max", "focus_fwhm_max"}


@dataclass(frozen=True)
class FrameMetricsInput:
    """The metrics of one frame the rules look at.

    Attributes
    ----------
    key : hashable
        Frame identifier, returned in the decisions.
    band : str or None
        Filter; frames are compared within their band.
    n_stars : int or None
        Stars detected.
    fwhm, hfd : float or None
        Median FWHM and half-flux diameter, px.
    elongation : float or None
        Median a/b.
    background : float or None
        Background level, ADU.
    transparency : float or None
        Star flux relative to the band's reference frame.
    airmass : float or None
    exptime : float or None
    time : float or None
        Start of exposure (any monotonic number, e.g. a POSIX time): orders a focus run.
    focus_position : float or None
        The focuser position from the header; ``focus_card`` names the card.
    saturation : float or None
        The detector's saturation level, ADU.
    sun_alt, moon_alt, moon_sep, moon_illum : float or None
        Sun and Moon altitude (deg), the Moon's separation from the target (deg) and its
        illuminated fraction at the frame's time and site; None when not computed.
    sky_note : str or None
        Why the Sun and Moon could not be computed (no site, no time).
    n_streaks : int or None
        Streaks found (None: not searched); passed through to the evidence.
    """

    key: Hashable
    band: str | None
    n_stars: int | None = None
    fwhm: float | None = None
    hfd: float | None = None
    elongation: float | None = None
    background: float | None = None
    transparency: float | None = None
    airmass: float | None = None
    exptime: float | None = None
    time: float | None = None
    focus_position: float | None = None
    focus_card: str | None = None
    saturation: float | None = None
    sun_alt: float | None = None
    moon_alt: float | None = None
    moon_sep: float | None = None
    moon_illum: float | None = None
    sky_note: str | None = None
    n_streaks: int | None = None


@dataclass(frozen=True)
class TagDecision:
    """One automatic tag for one frame.

    Attributes
    ----------
    key : hashable
        The frame's key.
    tag : str
        One of :data:`TAGS`.
    reason : str
        A sentence naming the cause, the measured value, the threshold and the yardstick.
    value : float
        The measured value the rule compared.
    threshold : float
        The value it was compared with (already multiplied by any ratio).
    rule : str
        Which test fired: ``cloud-background``, ``cloud-background-max``, ``cloud-sky-saturated``,
        ``cloud-transparency``, ``bright-sky``, ``sky-unexplained``, ``trail-elongation``,
        ``focus-fwhm`` (with ``focus-fwhm-max``), ``few-stars``.
    evidence : dict
        ``value``, ``threshold``, ``rule`` and what else the rule looked at (Sun and Moon,
        airmass, focuser positions, profile); the caller adds the yardstick.
    """

    key: Hashable
    tag: str
    reason: str
    value: float
    threshold: float
    rule: str
    evidence: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class BandStats:
    """The yardsticks of one band.

    Attributes
    ----------
    band : str or None
    n_frames : int
    clear_background : float
        Median background of the band's clearer frames, ADU (NaN if none).
    best_fwhm : float
        Median across-axis FWHM of the band's sharper frames, px (NaN if none).
    best_hfd : float
        Median HFD of the band's sharper round frames, px (NaN if none).
    best_airmass : float
        Median airmass of the sharper frames (NaN if unknown).
    best_profile : float
        Median ``hfd / fwhm`` of the sharper frames (NaN if unknown).
    best_focus : float or None
        The focuser position of the sharper frames (their median), None if no card.
    typical_stars : float
        Median star count of the band's richest quarter of frames (NaN if none).
    """

    band: str | None
    n_frames: int
    clear_background: float
    best_fwhm: float
    best_hfd: float = float("nan")
    best_airmass: float = float("nan")
    best_profile: float = float("nan")
    best_focus: float | None = None
    typical_stars: float = float("nan")


def _num(value) -> float:
    """float(value), NaN for None or anything not a finite number."""
    if value is None:
        return float("nan")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if math.isfinite(value) else float("nan")


def _opt(value) -> float | None:
    """A finite float or None (for JSON evidence)."""
    v = _num(value)
    return None if math.isnan(v) else round(v, 4)


def across_fwhm(fwhm, elongation) -> float:
    """FWHM across the major axis (the minor axis's FWHM): ``fwhm * sqrt(2 / (1 + e**2))``; fwhm when e
    is unknown.  The catalog's ``fwhm`` is round-equivalent (both axes); a trail widens it, not this."""
    f, e = _num(fwhm), _num(elongation)
    if math.isnan(f):
        return f
    if math.isnan(e) or e < 1.0:
        return f
    return f * math.sqrt(2.0 / (1.0 + e * e))


def _profile(f: FrameMetricsInput) -> float:
    h, w = _num(f.hfd), _num(f.fwhm)
    return h / w if w > 0 else float("nan")


def _lower_median(values: Iterable[float], quantile: float) -> float:
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return float("nan")
    cut = np.quantile(v, quantile)
    return float(np.median(v[v <= cut]))


def _upper_median(values: Iterable[float]) -> float:
    """Median of the values at or above the upper quartile: what the richer frames show."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return float("nan")
    return float(np.median(v[v >= np.quantile(v, 0.75)]))


def _shape_min_stars(t: QaThresholds, typical: float) -> int:
    """Stars a frame needs for its shape medians to count: :data:`SHAPE_MIN_STARS`, or fewer when
    the yardstick's frames themselves show fewer (a single-star focus sequence)."""
    if math.isnan(typical):
        return SHAPE_MIN_STARS
    return max(1, min(SHAPE_MIN_STARS, int(typical)))


def band_statistics(frames: Iterable[FrameMetricsInput],
                    thresholds: QaThresholds | None = None) -> dict:
    """The yardsticks of each band: clear background, best FWHM and HFD (with the airmass,
    profile and focuser position of the sharpest frames) and the typical star count.

    Parameters
    ----------
    frames : iterable of FrameMetricsInput
    thresholds : QaThresholds, optional
        For ``clear_quantile`` and ``min_stars``.

    Returns
    -------
    dict
        ``{band: BandStats}``.
    """
    t = thresholds or QaThresholds()
    by_band: dict = {}
    for f in frames:
        by_band.setdefault(f.band, []).append(f)
    out = {}
    for band, members in by_band.items():
        backgrounds = [_num(f.background) for f in members]
        typical = _upper_median(_num(f.n_stars) for f in members)
        need = _shape_min_stars(t, typical)
        # Star-poor frames' medians are noise; they do not set the standard.
        starry = [f for f in members if _num(f.n_stars) >= need]
        widths = [across_fwhm(f.fwhm, f.elongation) for f in starry]
        best = _lower_median(widths, t.clear_quantile)
        round_ = [f for f in starry if not _num(f.elongation) > t.trail_elongation]
        best_hfd = _lower_median((_num(f.hfd) for f in round_), t.clear_quantile)
        sharp = [f for f, w in zip(starry, widths) if not math.isnan(best) and w <= best * 1.15]
        airmass = _median(_num(f.airmass) for f in sharp)
        profile = _median(_profile(f) for f in sharp if not _num(f.elongation) > t.trail_elongation)
        focus = _median(_num(f.focus_position) for f in sharp)
        out[band] = BandStats(band, len(members), _lower_median(backgrounds, t.clear_quantile), best,
                              best_hfd, airmass, profile, None if math.isnan(focus) else focus, typical)
    return out


def _median(values) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.median(v)) if v else float("nan")


def _fmt(value: float, unit: str = "") -> str:
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def focus_run(frames: Iterable[FrameMetricsInput]) -> bool:
    """True when the frames, in time order, are a focus run: the star size (HFD, else FWHM)
    falls to one minimum and rises after it, at least two frames on each side, each side
    reaching :data:`FOCUS_RUN_RANGE` x the minimum.
    Seeing wanders; it does not sweep through one sharp minimum in a few minutes."""
    sized = [(f.time, _num(f.hfd) if not math.isnan(_num(f.hfd)) else _num(f.fwhm)) for f in frames
             if f.time is not None]
    sized = [s for s in sized if not math.isnan(s[1])]
    if len(sized) < FOCUS_RUN_MIN_FRAMES:
        return False
    sizes = [s for _, s in sorted(sized)]
    low = int(np.argmin(sizes))
    # Through focus and out again: at least two frames on each side, each side growing to the range.
    before, after = sizes[:low], sizes[low + 1:]
    if len(before) < 2 or len(after) < 2:
        return False
    if max(before) < FOCUS_RUN_RANGE * sizes[low] or max(after) < FOCUS_RUN_RANGE * sizes[low]:
        return False
    slack = 1.0 + FOCUS_RUN_SLACK
    falling = all(sizes[i + 1] <= sizes[i] * slack for i in range(low))
    rising = all(sizes[i + 1] * slack >= sizes[i] for i in range(low, len(sizes) - 1))
    return falling and rising


def _sharpest(s: BandStats, frames: list) -> BandStats:
    """The band statistics with the sizes and profile of the sharpest frame (the smallest HFD)."""
    sized = [f for f in frames if not math.isnan(_num(f.hfd))]
    if not sized:
        return s
    best = min(sized, key=lambda f: _num(f.hfd))
    return replace(s, best_hfd=_num(best.hfd), best_fwhm=across_fwhm(best.fwhm, best.elongation),
                   best_profile=_profile(best))


def sky_explanation(f: FrameMetricsInput) -> tuple[bool | None, str, dict]:
    """Whether the Sun or the Moon explains a bright sky for this frame.

    Returns
    -------
    explained : bool or None
        None when the Sun and Moon were not computed.
    text : str
        What they were ("Sun -8.2 deg (twilight)", "Moon 35 deg up, 87 % lit, 40 deg away", ...).
    evidence : dict
        ``sun_alt``, ``moon_alt``, ``moon_sep``, ``moon_illum`` (None when unknown).
    """
    evidence = {"sun_alt": _opt(f.sun_alt), "moon_alt": _opt(f.moon_alt), "moon_sep": _opt(f.moon_sep),
                "moon_illum": _opt(f.moon_illum)}
    sun = _num(f.sun_alt)
    if math.isnan(sun):
        return None, f"Sun and Moon not computed ({f.sky_note or 'no site or time'})", evidence
    moon, illum, sep = _num(f.moon_alt), _num(f.moon_illum), _num(f.moon_sep)
    moon_text = "Moon below the horizon" if not moon > 0 else (
        f"Moon {moon:.0f} deg up, {illum * 100:.0f} % lit" + (f", {sep:.0f} deg from the target"
                                                             if not math.isnan(sep) else ""))
    if sun > TWILIGHT_SUN_ALT:
        return True, f"Sun at {sun:.1f} deg (twilight, above {TWILIGHT_SUN_ALT:g}); {moon_text}", evidence
    if moon > 0 and illum >= MOONLIGHT_ILLUMINATION:
        return True, f"moonlight: {moon_text}; Sun at {sun:.0f} deg", evidence
    return False, f"dark sky: Sun at {sun:.0f} deg, {moon_text}", evidence


def evaluate(frames: Iterable[FrameMetricsInput], thresholds: QaThresholds | None = None, *,
             yardstick: Iterable[FrameMetricsInput] | None = None,
             yardstick_text: str | None = None) -> list[TagDecision]:
    """Apply the QA rules to a group's frames.

    Parameters
    ----------
    frames : iterable of FrameMetricsInput
        The frames to judge.
    thresholds : QaThresholds, optional
        Defaults when omitted.
    yardstick : iterable of FrameMetricsInput, optional
        The frames the band statistics come from (default: ``frames``); the caller adds the
        instrument's history here when the group is too small (:data:`MIN_YARDSTICK_FRAMES`).
        With one frame in all, the relative rules cannot fire.
    yardstick_text : str, optional
        How the yardstick is named in the reasons (default ``"band X"``).

    Returns
    -------
    list of TagDecision
        In frame order, at most one decision per frame and tag.  A frame gets at most one
        sky verdict (cloud, bright-sky or unknown) and at most one size verdict (focus, seeing
        or soft).  The shape rules are not applied to a clouded frame whose transparency is
        unknown (its detections match no reference star) nor to a star-poor one.
    """
    t = thresholds or QaThresholds()
    frames = list(frames)
    pool = frames if yardstick is None else list(yardstick)
    stats = band_statistics(pool, t)
    pool_sizes: dict = {}
    for f in pool:
        pool_sizes[f.band] = pool_sizes.get(f.band, 0) + 1
    run = focus_run(frames)
    if run:
        # In a focus run most frames are out of focus by design: the yardstick is its sharpest frame.
        stats = {band: _sharpest(s, [f for f in frames if f.band == band]) for band, s in stats.items()}
    decisions: list[TagDecision] = []
    for f in frames:
        s = stats.get(f.band) or band_statistics([f], t)[f.band]
        relative = pool_sizes.get(f.band, 0) > 1
        name = yardstick_text or (f"band {f.band}" if f.band is not None else "band")
        decisions.extend(_judge(f, s, t, name, relative, run))
    return decisions


def _judge(f: FrameMetricsInput, s: BandStats, t: QaThresholds, name: str, relative: bool,
           run: bool) -> list[TagDecision]:
    out: list[TagDecision] = []
    n_stars = _num(f.n_stars)
    need = _shape_min_stars(t, s.typical_stars if relative else float("nan"))
    has_stars = not math.isnan(n_stars) and n_stars >= need
    base = {"airmass": _opt(f.airmass), "n_stars": None if math.isnan(n_stars) else int(n_stars)}
    if f.n_streaks is not None:
        base["n_streaks"] = int(f.n_streaks)

    def decide(tag, reason, value, threshold, rule, **extra):
        evidence = {"value": _opt(value), "threshold": _opt(threshold), "rule": rule, **base, **extra}
        out.append(TagDecision(f.key, tag, reason, float(value), float(threshold), rule, evidence))

    # ---- the sky: cloud (flux lost), bright-sky (Sun or Moon, stars at full flux), unknown
    background = _num(f.background)
    transparency = _num(f.transparency) if has_stars else float("nan")
    raised = None  # (text, value, threshold, rule, extra)
    if relative and not math.isnan(background) and s.clear_background > 0:
        limit = t.cloud_background_ratio * s.clear_background
        if background > limit:
            raised = (f"background {_fmt(background, 'ADU')} = {background / s.clear_background:.1f} x "
                      f"{name} clear median {_fmt(s.clear_background, 'ADU')} (> {t.cloud_background_ratio:g} x)",
                      background, limit, "cloud-background", {"clear_background": _opt(s.clear_background)})
    saturation = _num(f.saturation)
    if raised is None and saturation > 0 and background > SKY_SATURATION_FRACTION * saturation:
        raised = (f"background {_fmt(background, 'ADU')} = {background / saturation * 100:.0f} % of the "
                  f"saturation level {_fmt(saturation, 'ADU')} (> {SKY_SATURATION_FRACTION * 100:.0f} %: "
                  f"no night sky)", background, SKY_SATURATION_FRACTION * saturation, "cloud-sky-saturated",
                  {"saturation": _opt(saturation)})
    if raised is None and t.cloud_background_max is not None and background > t.cloud_background_max:
        raised = (f"background {_fmt(background, 'ADU')} > limit {_fmt(t.cloud_background_max, 'ADU')}",
                  background, float(t.cloud_background_max), "cloud-background-max", {})
    sky = None
    if transparency < t.cloud_transparency:
        lost = (f"transparency {transparency:.2f} < {t.cloud_transparency:g} (stars lose flux against the "
                f"{name} reference)")
        if raised:
            text, value, limit, rule, extra = raised
            decide("cloud", f"cloud: {text}; {lost}", value, limit, rule, transparency=_opt(transparency), **extra)
        else:
            decide("cloud", f"cloud: {lost}", transparency, t.cloud_transparency, "cloud-transparency",
                   transparency=_opt(transparency), background=_opt(background))
        sky = "cloud"
    elif raised is not None:
        text, value, limit, rule, extra = raised
        explained, sun_moon, sun_moon_evidence = sky_explanation(f)
        extra = {**extra, **sun_moon_evidence, "transparency": _opt(transparency)}
        full = transparency >= t.full_flux_transparency
        if full and explained:
            sky = "bright-sky"
            decide("bright-sky", f"bright-sky: {text} with the stars at full flux (transparency "
                                 f"{transparency:.2f} >= {t.full_flux_transparency:g}); {sun_moon}",
                   value, limit, "bright-sky", **extra)
        elif full and explained is None:
            sky = "unknown"
            decide("unknown", f"unknown: {text} with the stars at full flux (transparency {transparency:.2f}); "
                              f"{sun_moon}, so twilight or moonlight cannot be told from lit cloud",
                   value, limit, "sky-unexplained", **extra)
        elif not math.isnan(transparency) or explained is not True:
            sky = "cloud"
            why = (f"stars at {transparency:.2f} of their flux" if not math.isnan(transparency)
                   else "no star flux measured")
            decide("cloud", f"cloud: {text}; {why}; {sun_moon}", value, limit, rule, **extra)
        else:
            sky = "unknown"
            decide("unknown", f"unknown: {text}; {sun_moon}, but no star flux was measured to tell "
                              f"twilight or moonlight from cloud", value, limit, "sky-unexplained", **extra)

    # ---- stars: few against the typical count, else fewer than the absolute minimum
    below_minimum = sky is None and not math.isnan(n_stars) and n_stars < t.min_stars

    def minimum():
        decide("few-stars", f"few-stars: {int(n_stars)} stars < minimum {t.min_stars}", n_stars, t.min_stars,
               "few-stars-min")

    typical = s.typical_stars
    if sky is None and relative and not math.isnan(typical) and not math.isnan(n_stars):
        limit = t.few_stars_ratio * typical
        if n_stars < limit:
            decide("few-stars", f"few-stars: {int(n_stars)} stars < {t.few_stars_ratio:g} x the {int(round(typical))} "
                                f"typical of {name}", n_stars, limit, "few-stars", typical_stars=_opt(typical))
            if has_stars:
                # A trail or a blur spreads the light and loses the faint stars: when the shape
                # rules name that cause, it replaces few-stars.
                few = out.pop()
                shaped = _shape(f, s, t, name, relative, run, decide)
                if not shaped:
                    out.append(few)
                elif below_minimum:
                    minimum()
            return out
    if below_minimum:
        minimum()
    if not has_stars:
        return out
    if sky in ("cloud", "unknown") and math.isnan(transparency):
        # Under cloud, detections that match none of the reference's stars are cloud
        # structure or stray light; their "FWHM" and "elongation" would name defects
        # (trail, focus) the frame may not have.
        return out

    _shape(f, s, t, name, relative, run, decide)
    return out


def _shape(f: FrameMetricsInput, s: BandStats, t: QaThresholds, name: str, relative: bool, run: bool,
           decide) -> bool:
    """The shape rules (trail; focus, seeing or soft); True when one of them fired."""
    fired: list[str] = []

    def decide_(tag, *args, **kwargs):
        fired.append(tag)
        decide(tag, *args, **kwargs)

    elongation = _num(f.elongation)
    trailed = elongation > t.trail_elongation
    # Far out of focus a star is a broken ring: its pieces are elongated without any tracking error.
    ring = run and _num(f.hfd) > FOCUS_RUN_RANGE * s.best_hfd
    if trailed and not ring:
        decide_("trail", f"trail: elongation {elongation:.2f} > {t.trail_elongation:g} (stars drawn out: tracking)",
               elongation, t.trail_elongation, "trail-elongation")

    # ---- size: focus, seeing or soft
    width = across_fwhm(f.fwhm, f.elongation)
    ratio, measure, best, value = float("nan"), "", float("nan"), float("nan")
    if relative and not math.isnan(width) and s.best_fwhm > 0:
        ratio, measure, best, value = width / s.best_fwhm, "minor-axis FWHM", s.best_fwhm, width
    hfd = _num(f.hfd)
    if relative and not trailed and not math.isnan(hfd) and s.best_hfd > 0 and (
            math.isnan(ratio) or hfd / s.best_hfd > ratio):
        ratio, measure, best, value = hfd / s.best_hfd, "HFD", s.best_hfd, hfd
    over = ratio > t.focus_fwhm_ratio
    threshold = t.focus_fwhm_ratio * best
    if not over and t.focus_fwhm_max is not None and width > t.focus_fwhm_max:
        over, ratio, measure, best, value = True, float("nan"), "minor-axis FWHM", float("nan"), width
        threshold = float(t.focus_fwhm_max)
    if not over:
        return bool(fired)
    size = (f"{measure} {value:.2f} px = {ratio:.2f} x {name} best {best:.2f} px (> {t.focus_fwhm_ratio:g} x)"
            if not math.isnan(ratio) else f"{measure} {value:.2f} px > limit {threshold:g} px")
    extra = {"best": _opt(best), "measure": measure, "ratio": _opt(ratio)}
    # Defocus evidence: the focuser moved, the profile changed shape, or a focus run.
    position, best_position = _num(f.focus_position), _num(s.best_focus)
    card = f.focus_card or "focuser"
    if not math.isnan(position):
        extra.update(focus_position=_opt(position), focus_best=_opt(best_position), focus_card=card)
    profile = _profile(f)
    if not math.isnan(profile) and not math.isnan(s.best_profile):
        extra.update(profile=_opt(profile), profile_best=_opt(s.best_profile))
    evidence = []
    if not math.isnan(position) and not math.isnan(best_position) and position != best_position:
        evidence.append(f"{card} {position:g} vs {best_position:g} on the sharpest frames")
    if not trailed and abs(profile - s.best_profile) > PROFILE_CHANGE:
        evidence.append(f"star profile hfd/fwhm {profile:.2f} vs {s.best_profile:.2f} on the sharpest frames "
                        f"(flat-topped or annular: defocused)")
    if run:
        evidence.append("the group is a focus run (star size falls to one minimum and rises again in time order)")
        extra["focus_run"] = True
    if evidence:
        decide_("focus", f"focus: {size}; " + "; ".join(evidence), value, threshold, "focus-fwhm", **extra)
        return bool(fired)
    if trailed:
        # A trail widens even the minor axis a little; with the trail named, a size verdict
        # needs evidence of its own (above), not a ratio alone.
        return bool(fired)
    airmass, best_airmass = _num(f.airmass), _num(s.best_airmass)
    predicted = float("nan")
    if not math.isnan(airmass) and best_airmass > 0:
        predicted = (airmass / best_airmass) ** SEEING_AIRMASS_EXPONENT
        extra.update(airmass_best=_opt(best_airmass), predicted_ratio=_opt(predicted))
    if not math.isnan(position) and position == best_position:
        why = f"{card} unchanged at {position:g}"
        if not math.isnan(predicted):
            why += f"; airmass {airmass:.2f} vs {best_airmass:.2f} predicts {predicted:.2f} x"
        decide_("seeing", f"seeing: {size}; round stars, {why}", value, threshold, "seeing-fwhm", **extra)
    elif (not math.isnan(predicted) and airmass / best_airmass > AIRMASS_CHANGE
          and ratio <= predicted * (1 + SEEING_TOLERANCE)):
        decide_("seeing", f"seeing: {size}; round stars, airmass {airmass:.2f} vs {best_airmass:.2f} on the "
                         f"sharpest frames predicts {predicted:.2f} x (airmass^{SEEING_AIRMASS_EXPONENT:g}, "
                         f"within {SEEING_TOLERANCE * 100:.0f} %)", value, threshold, "seeing-fwhm", **extra)
    else:
        missing = []
        missing.append("no focuser card" if math.isnan(position) else f"{card} {position:g}")
        missing.append("no airmass" if math.isnan(predicted)
                       else f"airmass {airmass:.2f} vs {best_airmass:.2f} predicts only {predicted:.2f} x")
        missing.append("star profile unchanged" if not math.isnan(profile) else "no profile")
        decide_("soft", f"soft: {size}; seeing or focus cannot be told apart ({', '.join(missing)})",
               value, threshold, "soft-fwhm", **extra)
    return bool(fired)
