"""Automatic QA rules: each rule, borderlines, robust band statistics, bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from obsdb.pipeline.qa_rules import (
    REJECTING,
    TAGS,
    FrameMetricsInput,
    QaThresholds,
    TagDecision,
    across_fwhm,
    band_statistics,
    evaluate,
    focus_run,
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
    assert d.reason.startswith("cloud: background 14,210 ADU = ")
    assert "transparency 0.30 < 0.5 (stars lose flux" in d.reason
    clear_median = band_statistics(frames)["V"].clear_background
    assert d.threshold == pytest.approx(3 * clear_median)
    assert f"band V clear median {clear_median:,.0f} ADU (> 3 x)" in d.reason
    assert d.evidence["rule"] == "cloud-background" and d.evidence["value"] == 14_210.0
    assert d.evidence["transparency"] == 0.3


def test_cloud_by_transparency():
    frames = night(10) + [clear("t", transparency=0.3)]
    (d,) = evaluate(frames)
    assert (d.key, d.tag, d.rule) == ("t", "cloud", "cloud-transparency")
    assert "transparency 0.30 < 0.5" in d.reason


def sky_frame(key, *, sun, moon=-30.0, illum=0.5, sep=60.0, **kw):
    base = clear(key, **kw)
    return dataclasses.replace(base, sun_alt=sun, moon_alt=moon, moon_illum=illum, moon_sep=sep)


@pytest.mark.parametrize("sun, moon, illum, tag, words", [
    (-8.0, -30.0, 0.5, "bright-sky", "Sun at -8.0 deg (twilight"),
    (-40.0, 35.0, 0.9, "bright-sky", "moonlight: Moon 35 deg up, 90 % lit, 60 deg from the target"),
    (-40.0, -20.0, 0.9, "cloud", "dark sky: Sun at -40 deg, Moon below the horizon"),
    (-40.0, 20.0, 0.05, "cloud", "dark sky"),
])
def test_raised_sky_with_stars_at_full_flux(sun, moon, illum, tag, words):
    """A raised sky with the stars at full flux is twilight or moonlight only when the Sun or
    the Moon is there to explain it; in a dark sky it stays cloud (town-lit cloud)."""
    frames = [sky_frame(f"v{i}", sun=-40.0) for i in range(8)]
    frames.append(sky_frame("x", sun=sun, moon=moon, illum=illum, background=3000.0, transparency=0.97))
    (d,) = [d for d in evaluate(frames) if d.key == "x"]
    assert d.tag == tag and words in d.reason, d.reason
    assert "background 3,000 ADU" in d.reason
    assert d.evidence["sun_alt"] == sun and d.evidence["moon_alt"] == moon
    assert d.evidence["moon_illum"] == illum and d.evidence["transparency"] == 0.97


def test_raised_sky_without_sun_and_moon_is_unknown_and_says_why():
    frames = night(8) + [dataclasses.replace(clear("x", background=3000.0, transparency=0.97), sky_note="no site")]
    (d,) = evaluate(frames)
    assert d.tag == "unknown" and d.rule == "sky-unexplained"
    assert "Sun and Moon not computed (no site)" in d.reason and "cannot be told from lit cloud" in d.reason
    # Stars that lost flux need no Sun or Moon: cloud.
    (c,) = evaluate(night(8) + [clear("y", background=3000.0, transparency=0.3)])
    assert c.tag == "cloud"
    # Twilight does not excuse lost flux either.
    (c,) = evaluate(night(8) + [sky_frame("z", sun=-5.0, background=3000.0, transparency=0.3)])
    assert c.tag == "cloud"


def test_sky_near_saturation_is_cloud_even_alone():
    """The overcast all-sky frame alone in its catalog: no yardstick, but no night sky at 83 % of saturation."""
    lone = dataclasses.replace(clear("alone", background=54_238.0, n_stars=29, fwhm=13.5, elongation=3.04,
                                     transparency=float("nan")), saturation=65_535.0)
    (d,) = evaluate([lone])
    assert (d.tag, d.rule) == ("cloud", "cloud-sky-saturated")
    assert "83 % of the saturation level 65,535 ADU" in d.reason


def test_clouded_frame_whose_detections_match_no_star_is_not_judged_by_shape():
    """The overcast all-sky case: a few broad, elongated blobs that are not the reference's stars."""
    blobs = dict(background=52_000.0, fwhm=13.5, elongation=3.0, n_stars=29)
    unmatched = evaluate(night(10) + [clear("u", transparency=float("nan"), **blobs)])
    assert tags_of(unmatched, "u") == ["cloud"]
    # The same shapes on stars that do match the reference are judged: cloud and trail.
    matched = evaluate(night(10) + [clear("m", transparency=0.2, **blobs)])
    assert tags_of(matched, "m") == ["cloud", "trail"]
    # And a clear frame with unknown transparency (no reference) is still judged by shape.
    unknown = evaluate(night(10) + [clear("k", transparency=float("nan"), fwhm=13.5, elongation=3.0)])
    assert tags_of(unknown, "k") == ["trail"]


def test_trail_and_size_separate():
    frames = night(10) + [
        clear("trail", fwhm=7.5, elongation=4.5),        # trailed, in focus across the trail
        clear("blurred", fwhm=5.6, hfd=5.8, elongation=1.05),
        clear("both", fwhm=14.0, elongation=2.5),
    ]
    decisions = evaluate(frames)
    assert tags_of(decisions, "trail") == ["trail"]
    assert tags_of(decisions, "blurred") == ["soft"]
    # Trailed and wider: the trail is named; a size verdict needs evidence of its own (a focuser move).
    assert tags_of(decisions, "both") == ["trail"]
    moved = [dataclasses.replace(f, focus_position=100.0) for f in frames]
    moved[-1] = dataclasses.replace(moved[-1], focus_position=180.0, focus_card="FOCPOS")
    assert tags_of(evaluate(moved), "both") == ["focus", "trail"]
    soft = [d for d in decisions if d.key == "blurred"][0]
    assert soft.rule == "soft-fwhm" and "band V best" in soft.reason
    assert "seeing or focus cannot be told apart (no focuser card, no airmass, star profile unchanged)" in soft.reason
    assert soft.value == pytest.approx(across_fwhm(5.6, 1.05))  # the larger of the two ratios


def test_focuser_change_is_focus_and_unchanged_focuser_is_seeing():
    frames = [dataclasses.replace(f, focus_position=5000.0, focus_card="FOCPOS") for f in night(10)]
    moved = dataclasses.replace(clear("moved", fwhm=5.6, hfd=5.8), focus_position=5230.0, focus_card="FOCPOS")
    still = dataclasses.replace(clear("still", fwhm=5.6, hfd=5.8), focus_position=5000.0, focus_card="FOCPOS")
    decisions = by_key(evaluate(frames + [moved, still]))
    (d,) = decisions["moved"]
    assert d.tag == "focus" and "FOCPOS 5230 vs 5000 on the sharpest frames" in d.reason
    assert d.evidence["focus_position"] == 5230.0 and d.evidence["focus_best"] == 5000.0
    (s,) = decisions["still"]
    assert s.tag == "seeing" and "FOCPOS unchanged at 5000" in s.reason


def test_seeing_follows_airmass():
    frames = [dataclasses.replace(f, airmass=1.05) for f in night(10)]
    # 2.6 px at airmass 1.05; at 2.2 seeing alone gives 2.6 * (2.2 / 1.05) ** 0.6 = 4.1 px.
    high = dataclasses.replace(clear("high", fwhm=4.1, hfd=4.25), airmass=2.2)
    low = dataclasses.replace(clear("low", fwhm=4.1, hfd=4.25), airmass=1.1)
    decisions = by_key(evaluate(frames + [high, low]))
    (d,) = decisions["high"]
    assert d.tag == "seeing" and "airmass 2.20 vs 1.05" in d.reason and "airmass^0.6" in d.reason
    assert d.evidence["airmass"] == 2.2 and d.evidence["predicted_ratio"] == pytest.approx((2.2 / 1.05) ** 0.6, abs=1e-3)
    (u,) = decisions["low"]
    assert u.tag == "soft" and "predicts only 1.03 x" in u.reason


def test_annular_profile_is_focus():
    """Defocused stars are rings: wide second moments for their half-flux diameter."""
    frames = night(10) + [clear("ring", fwhm=9.0, hfd=5.6)]
    (d,) = evaluate(frames)
    assert d.tag == "focus" and "flat-topped or annular" in d.reason
    assert d.evidence["profile"] == pytest.approx(5.6 / 9.0, abs=1e-3)


def test_focus_run_ranks_and_rejects_only_the_defocused():
    """A real focus run's HFDs (the README's): the frames beyond 1.5 x its sharpest are focus."""
    hfd = [25, 24, 15, 8.7, 7.1, 6.8, 6.3, 5.6, 4.8, 4.4, 4.0, 3.7, 4.9, 7.8, 12.8, 19.6, 26]
    frames = [FrameMetricsInput(i + 1, "L", 1, h, h, 1.1, 400.0, 1.0, time=float(i)) for i, h in enumerate(hfd)]
    decisions = by_key(evaluate(frames))
    assert focus_run(frames)
    focused = {k for k, ds in decisions.items() if [d.tag for d in ds] == ["focus"]}
    assert focused == {i + 1 for i, h in enumerate(hfd) if h > 1.5 * 3.7}
    assert all("focus run" in ds[0].reason for ds in decisions.values())
    # Shuffled in time, it is no run (and a single star per frame is not few-stars).
    rng = np.random.default_rng(0)
    shuffled = [dataclasses.replace(f, time=float(t)) for f, t in zip(frames, rng.permutation(len(frames)))]
    assert not focus_run(shuffled)
    # A night that ends trailed (sizes grow on one side only) is no focus run.
    assert not focus_run([dataclasses.replace(f, hfd=h) for f, h in zip(frames[:6], [3.4, 3.0, 3.2, 3.2, 10, 14])])
    assert not focus_run(frames[:12])
    assert not any(d.tag == "few-stars" for d in evaluate(shuffled))


def test_few_stars_is_relative():
    frames = night(10) + [clear("few", n_stars=20), clear("some", n_stars=40)]
    decisions = by_key(evaluate(frames))
    (d,) = decisions["few"]
    assert d.tag == "few-stars" and d.reason == "few-stars: 20 stars < 0.1 x the 300 typical of band V"
    assert "some" not in decisions
    # A sparse field alone, or among its like, is not few-stars.
    assert evaluate([clear("sparse", n_stars=4)]) == []
    assert evaluate([clear(f"s{i}", n_stars=4 + i % 2) for i in range(5)]) == []


def test_yardstick_from_history():
    """One frame judged against other frames (the instrument's history) passed as the yardstick."""
    history = night(6)
    (d,) = evaluate([clear("x", background=9000.0, transparency=float("nan"))],
                    yardstick=history + [clear("x", background=9000.0)], yardstick_text="the history")
    assert d.tag == "cloud" and "the history clear median" in d.reason
    # Without a yardstick the relative rules cannot fire.
    assert evaluate([clear("x", background=9000.0, n_stars=3)]) == []


def test_borderline_absolute():
    base = night(10)
    for field, below, above, tag in (("elongation", 1.59, 1.61, "trail"), ("transparency", 0.51, 0.49, "cloud")):
        assert tags_of(evaluate(base + [clear("x", **{field: below})]), "x") == []
        assert tags_of(evaluate(base + [clear("x", **{field: above})]), "x") == [tag]
        t = QaThresholds()
        at = {"elongation": t.trail_elongation, "transparency": t.cloud_transparency}[field]
        assert tags_of(evaluate(base + [clear("x", **{field: at})]), "x") == []
    # few-stars: strictly below 0.1 x the typical 300.
    assert tags_of(evaluate(base + [clear("x", n_stars=30)]), "x") == []
    assert tags_of(evaluate(base + [clear("x", n_stars=29)]), "x") == ["few-stars"]


def test_borderline_relative():
    base = [clear(f"v{i}", background=1000.0, fwhm=2.0, hfd=2.0) for i in range(9)]
    for value, expect in ((2999.0, []), (3001.0, ["cloud"])):
        x = clear("x", background=value, fwhm=2.0, hfd=2.0, transparency=float("nan"))
        assert tags_of(evaluate(base + [x]), "x") == expect
    w = across_fwhm(2.0, 1.05)   # the band best, across the major axis
    for scale, expect in ((0.999, []), (1.001, ["soft"])):
        fwhm = 1.5 * w * scale / across_fwhm(1.0, 1.05)
        assert tags_of(evaluate(base + [clear("x", fwhm=fwhm, hfd=fwhm, elongation=1.05)]), "x") == expect


def test_band_statistics_robust_to_half_the_frames_bad():
    frames = night(10)
    frames += [clear(f"c{i}", background=12_000.0 + 500 * i) for i in range(5)]
    frames += [clear(f"f{i}", fwhm=6.0, hfd=6.2) for i in range(4)]
    s = band_statistics(frames)["V"]
    assert 850 < s.clear_background < 1100
    assert 2.3 < s.best_fwhm < 2.9
    decisions = evaluate(frames)
    for i in range(5):
        assert tags_of(decisions, f"c{i}") == ["unknown"]  # full flux, no Sun or Moon computed
    for i in range(4):
        assert tags_of(decisions, f"f{i}") == ["soft"]
    assert not any(d.key.startswith("V") for d in decisions)


def test_bands_judged_separately():
    # R's clear sky is 4x brighter than B's: no band is cloudy.
    frames = night(6, "B") + [clear(f"R{i}", "R", background=3600.0 + 10 * i) for i in range(6)]
    assert evaluate(frames) == []
    frames.append(clear("Rc", "R", background=15_000.0, transparency=0.2))
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
    assert {d.tag for d in evaluate(blurred, t)} == {"soft"}
    assert {d.rule for d in evaluate(cloudy, t)} == {"sky-unexplained"}
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
    assert decisions["empty"][0].reason == "few-stars: 0 stars < 0.1 x the 300 typical of band V"
    assert "none" not in decisions  # no star count: nothing to compare
    assert "nan-psf" not in decisions and "inf" not in decisions
    # A frame with no stars under a bright overcast sky is cloudy (the cause named, not few-stars).
    frames.append(FrameMetricsInput("overcast", "V", 0, nan, nan, nan, 50_000.0, nan))
    assert [d.tag for d in by_key(evaluate(frames))["overcast"]] == ["cloud"]
    # Star-poor frames do not set the band's best FWHM.
    poor = [FrameMetricsInput(f"p{i}", "V", 2, 1.0, 1.0, 1.0, 900.0, 1.0) for i in range(20)]
    assert band_statistics(night(8) + poor)["V"].best_fwhm > 2.3


def test_single_frame_and_empty_input():
    assert evaluate([]) == []
    assert evaluate([clear("only")]) == []
    assert evaluate([clear("only", elongation=2.0)])[0].tag == "trail"


def test_tag_names_and_rejecting():
    assert set(REJECTING) <= set(TAGS)
    assert {"cloud", "focus", "trail", "few-stars", "soft", "unknown", "bright-sky", "seeing"} == REJECTING


def test_thresholds_from_mapping():
    t = QaThresholds.from_mapping({"cloud_background_ratio": 4, "trail-elongation": 1.8,
                                   "min_stars": 10, "few_stars_ratio": 0.1})
    assert t.few_stars_ratio == 0.1
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


def test_no_star_at_all_is_few_stars_whatever_the_yardstick():
    """A night of starless frames has no typical count to compare with; no star is still few-stars."""
    starless = [FrameMetricsInput(f"s{i}", "V", 0, None, None, None, 1000.0, None) for i in range(6)]
    decisions = evaluate(starless)
    assert [d.reason for d in decisions] == ["few-stars: 0 stars < minimum 1"] * 6
    assert {d.rule for d in decisions} == {"few-stars-min"}
    # An asked minimum applies to every frame, the sharp single star of a focus run included.
    assert evaluate([clear("one", n_stars=1)]) == []
    assert [d.tag for d in evaluate(night(4), QaThresholds(min_stars=100_000))] == ["few-stars"] * 4
