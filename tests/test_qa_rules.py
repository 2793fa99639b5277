"""Automatic QA rules: each rule, borderlines, robust band statistics, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obsdb.pipeline.qa_rules import (
    FrameMetricsInput,
    QaThresholds,
    TagDecision,
    across_fwhm,
    band_statistics,
    evaluate,
)


def clear(key, band="V", *, background=900.0, fwhm=2.6, elongation=1.05, n_stars=300,
          transparency=1.0, hfd=2.7):
    return FrameMetricsInput(key, band, n_stars, fwhm, hfd, elongation, background, transparency)


def night(n=10, band="V", **overrides):
    """n clear frames with a little scatter, like a real clear spell."""
    rng = np.random.default_rng(len(band) + n)
    frames = []
    for i in range(n):
        frames.append(clear(f"{band}{i}", band, background=900.0 * rng.uniform(0.9, 1.2),
                            fwhm=2.6 * rng.uniform(0.95, 1.08)))
    return frames


def tags_of(decisions, key):
    return sorted(d.tag for d in decisions if d.key == key)


def by_key(decisions):
    out = {}
    for d in decisions:
        out.setdefault(d.key, []).append(d)
    return out


def test_clear_night_no_tags():
    assert evaluate(night(20)) == []


def test_cloud_by_background_with_reason():
    frames = night(10) + [clear("c", background=14_210.0, transparency=0.3)]
    decisions = evaluate(frames)
    assert tags_of(decisions, "c") == ["cloud"]
    d = decisions[0]
    assert isinstance(d, TagDecision) and d.rule == "cloud-background"
    assert d.value == 14_210.0
    assert "cloud: background 14,210 ADU > 3 x band V clear median" in d.reason
    clear_median = band_statistics(frames)["V"].clear_background
    assert d.threshold == pytest.approx(3 * clear_median)
    assert f"{clear_median:,.0f} ADU" in d.reason


def test_cloud_by_transparency():
    frames = night(10) + [clear("t", transparency=0.3)]
    (d,) = evaluate(frames)
    assert (d.key, d.tag, d.rule) == ("t", "cloud", "cloud-transparency")
    assert "transparency 0.30 < 0.5" in d.reason


def test_clouded_frame_whose_detections_match_no_star_is_not_judged_by_shape():
    """The overcast all-sky case: a few broad, elongated blobs that are not the reference's stars."""
    blobs = dict(background=52_000.0, fwhm=13.5, elongation=3.0, n_stars=29)
    unmatched = evaluate(night(10) + [clear("u", transparency=float("nan"), **blobs)])
    assert tags_of(unmatched, "u") == ["cloud"]
    # The same shapes on stars that do match the reference are judged: cloud, trail and focus.
    matched = evaluate(night(10) + [clear("m", transparency=0.2, **blobs)])
    assert tags_of(matched, "m") == ["cloud", "focus", "trail"]
    # And a clear frame with unknown transparency (no reference) is still judged by shape.
    unknown = evaluate(night(10) + [clear("k", transparency=float("nan"), fwhm=13.5, elongation=3.0)])
    assert tags_of(unknown, "k") == ["focus", "trail"]


def test_trail_and_focus_separate():
    frames = night(10) + [
        clear("trail", fwhm=7.5, elongation=4.5),        # trailed, in focus across the trail
        clear("defocus", fwhm=5.6, elongation=1.05),
        clear("both", fwhm=14.0, elongation=2.5),
    ]
    decisions = evaluate(frames)
    assert tags_of(decisions, "trail") == ["trail"]
    assert tags_of(decisions, "defocus") == ["focus"]
    assert tags_of(decisions, "both") == ["focus", "trail"]
    focus = [d for d in decisions if d.key == "defocus"][0]
    assert focus.rule == "focus-fwhm" and "band V best" in focus.reason
    assert focus.value == pytest.approx(across_fwhm(5.6, 1.05))


@pytest.mark.parametrize("field, below, above, tag", [
    ("elongation", 1.59, 1.61, "trail"),
    ("transparency", 0.51, 0.49, "cloud"),
    ("n_stars", 5, 4, "few-stars"),
])
def test_borderline_absolute(field, below, above, tag):
    base = night(10)
    ok = clear("x", **{field: below})
    bad = clear("x", **{field: above})
    assert tags_of(evaluate(base + [ok]), "x") == []
    assert tags_of(evaluate(base + [bad]), "x") == [tag]
    # Exactly at the threshold passes (comparisons are strict).
    t = QaThresholds()
    at = {"elongation": t.trail_elongation, "transparency": t.cloud_transparency,
          "n_stars": t.min_stars}[field]
    assert tags_of(evaluate(base + [clear("x", **{field: at})]), "x") == []


def test_borderline_relative():
    base = [clear(f"v{i}", background=1000.0, fwhm=2.0) for i in range(9)]
    for value, expect in ((2999.0, []), (3001.0, ["cloud"])):
        assert tags_of(evaluate(base + [clear("x", background=value, fwhm=2.0)]), "x") == expect
    w = across_fwhm(2.0, 1.05)   # the band best, across the major axis
    for scale, expect in ((0.999, []), (1.001, ["focus"])):
        fwhm = 1.5 * w * scale / across_fwhm(1.0, 1.05)
        assert tags_of(evaluate(base + [clear("x", fwhm=fwhm, elongation=1.05)]), "x") == expect


def test_band_statistics_robust_to_half_the_frames_bad():
    frames = night(10)
    frames += [clear(f"c{i}", background=12_000.0 + 500 * i) for i in range(5)]
    frames += [clear(f"f{i}", fwhm=6.0) for i in range(4)]
    s = band_statistics(frames)["V"]
    assert 850 < s.clear_background < 1100
    assert 2.3 < s.best_fwhm < 2.9
    decisions = evaluate(frames)
    for i in range(5):
        assert tags_of(decisions, f"c{i}") == ["cloud"]
    for i in range(4):
        assert tags_of(decisions, f"f{i}") == ["focus"]
    assert not any(d.key.startswith("V") for d in decisions)


def test_bands_judged_separately():
    # R's clear sky is 4x brighter than B's: no band is cloudy.
    frames = night(6, "B") + [clear(f"R{i}", "R", background=3600.0 + 10 * i) for i in range(6)]
    assert evaluate(frames) == []
    frames.append(clear("Rc", "R", background=15_000.0))
    assert [d.key for d in evaluate(frames)] == ["Rc"]


def test_all_frames_of_a_band_bad():
    # Every frame trailed: elongation is absolute, so all are tagged.
    trailed = [clear(f"t{i}", elongation=3.0 + 0.1 * i, fwhm=8.0) for i in range(5)]
    assert all(tags_of(evaluate(trailed), f"t{i}") == ["trail"] for i in range(5))
    # Every frame out of focus or cloudy: no relative yardstick, no tag ...
    blurred = [clear(f"d{i}", fwhm=6.0 + 0.1 * i) for i in range(5)]
    cloudy = [clear(f"c{i}", background=15_000.0 + 100 * i) for i in range(5)]
    assert evaluate(blurred) == [] and evaluate(cloudy) == []
    # ... unless absolute limits are set.
    t = QaThresholds(focus_fwhm_max=4.5, cloud_background_max=5000.0)
    assert {d.rule for d in evaluate(blurred, t)} == {"focus-fwhm-max"}
    assert {d.rule for d in evaluate(cloudy, t)} == {"cloud-background-max"}
    assert len(evaluate(blurred + cloudy, t)) == 10


def test_no_stars_and_nan_metrics():
    nan = float("nan")
    frames = night(8) + [
        FrameMetricsInput("empty", "V", 0, nan, nan, nan, 950.0, nan),
        FrameMetricsInput("none", "V", None, None, None, None, None, None),
        FrameMetricsInput("nan-psf", "V", 200, nan, nan, nan, nan, nan),
        FrameMetricsInput("inf", "V", 200, math.inf, 2.7, 1.05, 900.0, 1.0),
    ]
    decisions = by_key(evaluate(frames))
    assert [d.tag for d in decisions["empty"]] == ["few-stars"]
    assert decisions["empty"][0].reason == "few-stars: 0 stars < minimum 5"
    assert [d.tag for d in decisions["none"]] == ["few-stars"]
    assert "nan-psf" not in decisions and "inf" not in decisions
    # A frame with no stars under a bright overcast sky is still cloudy.
    frames.append(FrameMetricsInput("overcast", "V", 0, nan, nan, nan, 50_000.0, nan))
    assert sorted(d.tag for d in by_key(evaluate(frames))["overcast"]) == ["cloud", "few-stars"]
    # Star-poor frames do not set the band's best FWHM.
    poor = [FrameMetricsInput(f"p{i}", "V", 2, 1.0, 1.0, 1.0, 900.0, 1.0) for i in range(20)]
    assert band_statistics(night(8) + poor)["V"].best_fwhm > 2.3


def test_single_frame_and_empty_input():
    assert evaluate([]) == []
    assert evaluate([clear("only")]) == []
    assert evaluate([clear("only", elongation=2.0)])[0].tag == "trail"


def test_thresholds_from_mapping():
    t = QaThresholds.from_mapping({"cloud_background_ratio": 4, "trail-elongation": 1.8,
                                   "min_stars": 10})
    assert (t.cloud_background_ratio, t.trail_elongation, t.min_stars) == (4, 1.8, 10)
    assert t.focus_fwhm_ratio == QaThresholds().focus_fwhm_ratio
    assert QaThresholds.from_mapping(None) == QaThresholds()
    assert QaThresholds.from_mapping({"focus_fwhm_max": None}).focus_fwhm_max is None
    with pytest.raises(ValueError, match=r"unknown QA threshold\(s\): cloud_ratio; known: "):
        QaThresholds.from_mapping({"cloud_ratio": 3})
    with pytest.raises(ValueError, match="trail_elongation must be a number"):
        QaThresholds.from_mapping({"trail_elongation": "high"})
    with pytest.raises(ValueError, match="must be a number"):
        QaThresholds.from_mapping({"min_stars": True})
    with pytest.raises(ValueError, match="finite number >= 0"):
        QaThresholds.from_mapping({"cloud_transparency": -1})
    with pytest.raises(ValueError, match="clear_quantile"):
        QaThresholds.from_mapping({"clear_quantile": 0})
    with pytest.raises(ValueError, match="whole number"):
        QaThresholds.from_mapping({"min_stars": 2.5})
    with pytest.raises(ValueError, match="must be a mapping"):
        QaThresholds.from_mapping([("min_stars", 3)])
    with pytest.raises(ValueError, match="must be a number"):
        QaThresholds(cloud_background_ratio=None)
