"""Rules that turn per-frame quality metrics into automatic tags.

Pure functions, no database: the ``qa`` step reads the metrics from the
catalog, calls :func:`evaluate`, and records each :class:`TagDecision` as a
tag with its reason.

Each band is judged against itself: its *clear* background and *best* FWHM
are medians over the better part of its frames (backgrounds at or below the
band's ``clear_quantile`` quantile, FWHMs likewise), so a night where up to
half the frames of a band are cloudy or out of focus still has a sound
yardstick.  When every frame of a band is bad the relative rules cannot see
it; the optional absolute limits (``cloud_background_max``,
``focus_fwhm_max``) are for that case.

Tags
    ``cloud``
        background > ``cloud_background_ratio`` x the band's clear background,
        or transparency < ``cloud_transparency`` (or background >
        ``cloud_background_max`` when set).  The background test needs no
        stars, so it applies to every frame.
    ``trail``
        median elongation a/b > ``trail_elongation``.
    ``focus``
        FWHM across the major axis > ``focus_fwhm_ratio`` x the band's best
        (or > ``focus_fwhm_max`` px when set).  The width across the major
        axis, ``fwhm * sqrt(2 / (1 + elongation**2))``, is what a trail leaves
        unchanged, so a trailed but focused frame is not also tagged focus.
    ``few-stars``
        fewer than ``min_stars`` stars.  The star-based rules (trail, focus,
        transparency) are skipped for such a frame: its medians mean little.

Comparisons are strict (a value equal to its threshold passes) and missing
or NaN metrics never fire a rule.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np

TAGS = ("cloud", "trail", "focus", "few-stars")
"""Tags the rules can give."""


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
        Few-stars below this many stars.
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
    min_stars: int = 5
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
    """

    key: Hashable
    band: str | None
    n_stars: int | None = None
    fwhm: float | None = None
    hfd: float | None = None
    elongation: float | None = None
    background: float | None = None
    transparency: float | None = None


@dataclass(frozen=True)
class TagDecision:
    """One automatic tag for one frame.

    Attributes
    ----------
    key : hashable
        The frame's key.
    tag : str
        ``cloud``, ``trail``, ``focus`` or ``few-stars``.
    reason : str
        A sentence naming the measured value and the threshold.
    value : float
        The measured value the rule compared.
    threshold : float
        The value it was compared with (already multiplied by any ratio).
    rule : str
        Which test fired: ``cloud-background``, ``cloud-background-max``,
        ``cloud-transparency``, ``trail-elongation``, ``focus-fwhm``,
        ``focus-fwhm-max`` or ``few-stars``.
    """

    key: Hashable
    tag: str
    reason: str
    value: float
    threshold: float
    rule: str


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
    """

    band: str | None
    n_frames: int
    clear_background: float
    best_fwhm: float


def _num(value) -> float:
    """float(value), NaN for None or anything not a finite number."""
    if value is None:
        return float("nan")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if math.isfinite(value) else float("nan")


def _round_equivalent(fwhm: float | None, width: float) -> str:
    """`` (fwhm column 6.85)``: the catalog's FWHM beside the minor-axis one, when they differ."""
    if fwhm is None or math.isnan(fwhm) or f"{fwhm:.2f}" == f"{width:.2f}":
        return ""
    return f" (fwhm column {fwhm:.2f})"


def across_fwhm(fwhm, elongation) -> float:
    """FWHM across the major axis (the minor axis's FWHM): ``fwhm * sqrt(2 / (1 + e**2))``; fwhm when e
    is unknown.  The catalog's ``fwhm`` is round-equivalent (both axes); a trail widens it, not this."""
    f, e = _num(fwhm), _num(elongation)
    if math.isnan(f):
        return f
    if math.isnan(e) or e < 1.0:
        return f
    return f * math.sqrt(2.0 / (1.0 + e * e))


def _lower_median(values: Iterable[float], quantile: float) -> float:
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return float("nan")
    cut = np.quantile(v, quantile)
    return float(np.median(v[v <= cut]))


def band_statistics(frames: Iterable[FrameMetricsInput],
                    thresholds: QaThresholds | None = None) -> dict:
    """Clear background and best FWHM of each band.

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
        # Star-poor frames' medians are noise; they do not set the standard.
        widths = [across_fwhm(f.fwhm, f.elongation) for f in members
                  if _num(f.n_stars) >= t.min_stars]
        out[band] = BandStats(band, len(members), _lower_median(backgrounds, t.clear_quantile),
                              _lower_median(widths, t.clear_quantile))
    return out


def _fmt(value: float, unit: str = "") -> str:
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def evaluate(frames: Iterable[FrameMetricsInput],
             thresholds: QaThresholds | None = None) -> list[TagDecision]:
    """Apply the QA rules to a night's frames.

    Parameters
    ----------
    frames : iterable of FrameMetricsInput
        All frames to judge (band statistics come from these).
    thresholds : QaThresholds, optional
        Defaults when omitted.

    Returns
    -------
    list of TagDecision
        In frame order, at most one decision per frame and tag (for cloud,
        the background test is reported before the transparency test).  The
        shape rules (trail, focus) are not applied to a clouded frame whose
        transparency is unknown, i.e. whose detections match no reference star.
    """
    t = thresholds or QaThresholds()
    frames = list(frames)
    stats = band_statistics(frames, t)
    decisions: list[TagDecision] = []
    for f in frames:
        s = stats[f.band]
        n_stars = _num(f.n_stars)
        has_stars = not math.isnan(n_stars) and n_stars >= t.min_stars
        band = f"band {f.band}" if f.band is not None else "band"

        background = _num(f.background)
        cloud = None
        if not math.isnan(background) and not math.isnan(s.clear_background):
            limit = t.cloud_background_ratio * s.clear_background
            if background > limit and s.clear_background > 0:
                cloud = TagDecision(
                    f.key, "cloud",
                    f"cloud: background {_fmt(background, 'ADU')} > {t.cloud_background_ratio:g} x "
                    f"{band} clear median {_fmt(s.clear_background, 'ADU')}",
                    background, limit, "cloud-background")
        if cloud is None and t.cloud_background_max is not None and background > t.cloud_background_max:
            cloud = TagDecision(
                f.key, "cloud",
                f"cloud: background {_fmt(background, 'ADU')} > limit "
                f"{_fmt(t.cloud_background_max, 'ADU')}",
                background, float(t.cloud_background_max), "cloud-background-max")
        transparency = _num(f.transparency)
        if cloud is None and has_stars and transparency < t.cloud_transparency:
            cloud = TagDecision(
                f.key, "cloud",
                f"cloud: transparency {transparency:.2f} < {t.cloud_transparency:g} "
                f"(star flux relative to the {band} reference)",
                transparency, float(t.cloud_transparency), "cloud-transparency")
        if cloud is not None:
            decisions.append(cloud)

        if not has_stars:
            shown = 0 if math.isnan(n_stars) else int(n_stars)
            decisions.append(TagDecision(
                f.key, "few-stars", f"few-stars: {shown} stars < minimum {t.min_stars}",
                float(shown), float(t.min_stars), "few-stars"))
            continue

        if cloud is not None and math.isnan(transparency):
            # Under cloud, detections that match none of the reference's stars are cloud
            # structure or stray light; their "FWHM" and "elongation" would name defects
            # (trail, focus) the frame may not have.
            continue

        elongation = _num(f.elongation)
        if elongation > t.trail_elongation:
            decisions.append(TagDecision(
                f.key, "trail",
                f"trail: elongation {elongation:.2f} > {t.trail_elongation:g}",
                elongation, float(t.trail_elongation), "trail-elongation"))

        width = across_fwhm(f.fwhm, f.elongation)
        focus = None
        if not math.isnan(width) and not math.isnan(s.best_fwhm):
            limit = t.focus_fwhm_ratio * s.best_fwhm
            if width > limit:
                focus = TagDecision(
                    f.key, "focus",
                    f"focus: minor-axis FWHM {width:.2f} px{_round_equivalent(f.fwhm, width)} > "
                    f"{t.focus_fwhm_ratio:g} x {band} best {s.best_fwhm:.2f} px",
                    width, limit, "focus-fwhm")
        if focus is None and t.focus_fwhm_max is not None and width > t.focus_fwhm_max:
            focus = TagDecision(
                f.key, "focus",
                f"focus: minor-axis FWHM {width:.2f} px{_round_equivalent(f.fwhm, width)} > limit "
                f"{t.focus_fwhm_max:g} px",
                width, float(t.focus_fwhm_max), "focus-fwhm-max")
        if focus is not None:
            decisions.append(focus)
    return decisions
