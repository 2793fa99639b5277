"""The photometry step on a simulated night of known truth: zero points, repeatability, identification,
staleness, the front door's tables, the commands, SQLite and PostgreSQL, and the real frames."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app
from obsdb.imaging.photometry import EDGE, SATURATED

SIZE = 384
N_FRAMES = 20


@pytest.fixture(scope="module")
def night(tmp_path_factory, simulated_nights):
    """20 frames of 384 px in V and R, two pointings 60 px apart, a transparency drawn per frame between 0.6
    and 1.0 (every frame accepted by hand, so that all are aligned), ingested, QA'd, aligned, photometered."""
    from obsdb.api import Catalog
    from obsdb.simulate.plan import plan_night

    specs = plan_night(seed=31, n_frames=N_FRAMES, bands=("V", "R"), n_groups=2, cloud_fraction=0.0,
                       trail_fraction=0.0, defocus_fraction=0.0, max_group_offset=60)
    rng = np.random.default_rng(31)
    for spec in specs:
        spec.transparency = float(rng.uniform(0.6, 1.0))
    root = tmp_path_factory.mktemp("phot-night")
    # No cosmic rays or hot pixels: a hit on a star moves its detected centroid, which is ingest's matter.
    truth = simulated_nights.copy(root / "frames", specs, seed=31, size=SIZE, n_cosmic_rays=0, n_hot_pixels=0)
    catalog = Catalog.open(str(root / "obsdb.sqlite"), create=True)
    catalog.ingest([root / "frames"])
    catalog.qa()
    catalog.tag("1001-1020", "accept", reason="test: every frame measured", author="test")
    runs = catalog.align()
    first = catalog.photometer()
    second = catalog.photometer()
    yield {"catalog": catalog, "truth": truth, "first": first, "second": second, "root": root,
           "reference": runs[0].reference_label, "db": str(root / "obsdb.sqlite")}
    catalog.close()


def _frame_numbers(catalog):
    table = catalog.photometry()
    ids = {}
    for frame, frame_id in zip(table["frame"], table["frame_id"]):
        ids[int(frame_id)] = int(frame)
    return table, ids


def _zero_points(catalog):
    """{frame number: (band, zero point, error)} from the photometry table."""
    table = catalog.photometry()
    out = {}
    for row in table:
        out[int(row["frame"])] = (row["band"], float(row["zero_point"]))
    return out


def test_every_frame_measured_once_and_a_second_run_measures_nothing(night):
    assert night["first"].measured == N_FRAMES
    assert night["first"].failed == []
    assert night["first"].identified == N_FRAMES
    assert night["second"].measured == 0
    assert night["second"].current == N_FRAMES
    # Every simulated star is constant: none is flagged variable (blended pairs, whose share of a
    # neighbour's light follows the seeing, are kept out of the index).
    assert night["first"].variables == 0
    assert not any(night["catalog"].sources()["variable"])


def test_zero_points_follow_the_transparency_within_5_mmag(night):
    truth = night["truth"]
    zero_points = _zero_points(night["catalog"])
    for band in ("V", "R"):
        numbers = [n for n, (b, _) in zero_points.items() if b == band]
        measured = np.array([zero_points[n][1] for n in numbers])
        expected = np.array([-2.5 * math.log10(truth.frame(n)["transparency"]) for n in numbers])
        # Relative zero points: the ensemble's scale is free, so the offset of the two is.
        offset = np.median(measured - expected)
        errors = np.abs(measured - expected - offset)
        print(f"{band}: zero points within {errors.max() * 1000:.2f} mmag of the truth over {len(numbers)} frames "
              f"(transparency {np.ptp(expected):.2f} mag peak to peak)")
        assert np.ptp(expected) > 0.2                    # the test has something to recover
        assert errors.max() < 0.005


def test_bright_stars_repeat_within_5_mmag(night):
    catalog = night["catalog"]
    sources = catalog.sources()
    for band in ("V", "R"):
        spreads, snr = [], []
        for source_id in sources["id"]:
            curve = catalog.lightcurve(int(source_id), band=band)
            good = (curve["flags"] == 0) & np.isfinite(curve["mag"])
            if good.sum() < 8:
                continue
            error = float(np.median(curve["mag_err"][good]))
            if error < 2.5 / math.log(10) / 300:          # S/N above 300
                spreads.append(float(np.std(curve["mag"][good], ddof=1)))
                snr.append(1.0857 / error)
        print(f"{band}: {len(spreads)} stars of S/N > 300 repeat within {max(spreads) * 1000:.1f} mmag "
              f"(median {np.median(spreads) * 1000:.1f})")
        assert len(spreads) >= 3
        assert max(spreads) < 0.005
    assert all(v < 0.010 for v in night["first"].repeatability.values())


def test_stars_of_snr_100_scatter_as_their_errors_say(night):
    catalog = night["catalog"]
    pulls = []
    for source_id in catalog.sources()["id"]:
        curve = catalog.lightcurve(int(source_id), band="V")
        good = (curve["flags"] == 0) & np.isfinite(curve["mag"])
        if good.sum() < 8 or np.median(curve["mag_err"][good]) > 0.0109:
            continue
        mags, errors = np.asarray(curve["mag"][good]), np.asarray(curve["mag_err"][good])
        pulls.extend((mags - np.average(mags, weights=errors**-2)) / np.hypot(errors, 0.002))
    assert len(pulls) > 50
    assert 0.7 < np.std(pulls) < 1.5


def test_a_star_is_identified_in_every_frame_it_falls_in_and_in_no_other(night):
    from scipy.spatial import cKDTree

    catalog, truth = night["catalog"], night["truth"]
    sources = catalog.sources()
    reference = int(night["reference"])
    sky_x, sky_y, flux = truth.sky_positions_in_frame(reference, margin=-10 * SIZE)
    tree = cKDTree(np.column_stack([sky_x, sky_y]))
    # Bright (S/N well above 50 in every frame), isolated truth stars: each must be found wherever it is.
    bright = flux > np.quantile(flux, 0.85)
    neighbours = tree.query_ball_point(np.column_stack([sky_x, sky_y]), 8.0)
    isolated = np.array([len(n) == 1 for n in neighbours])
    source_tree = cKDTree(np.column_stack([sources["x"], sources["y"]]))
    table, frame_of = _frame_numbers(catalog)
    member_frames: dict[int, set] = {}
    for row in table:
        if row["source"] >= 0:
            member_frames.setdefault(int(row["source"]), set()).add(int(row["frame"]))
    checked = 0
    for i in np.flatnonzero(bright & isolated):
        distance, index = source_tree.query([sky_x[i], sky_y[i]])
        inside, outside = set(), set()
        for number in truth.numbers:
            xf, yf, _ = truth.sky_positions_in_frame(number, margin=-10 * SIZE)
            x, y = xf[i], yf[i]
            if 8 <= x <= SIZE - 9 and 8 <= y <= SIZE - 9:
                inside.add(number)
            elif x < -3 or y < -3 or x > SIZE + 2 or y > SIZE + 2:
                outside.add(number)
        if not inside:
            continue
        assert distance < 1.0, f"truth star at {sky_x[i]:.1f},{sky_y[i]:.1f} has no source"
        found = member_frames.get(int(sources["id"][index]), set())
        assert inside <= found, f"star {i}: missing in frames {sorted(inside - found)}"
        assert not (found & outside), f"star {i}: claimed in frames {sorted(found & outside)} it is not in"
        checked += 1
    assert checked >= 10
    # The two pointings are 60 px apart: some checked stars fall outside some frames.
    assert len({n for n in truth.numbers}) == N_FRAMES


def test_source_ids_stay_when_the_night_is_measured_again(night, tmp_path):
    import sqlite3

    from obsdb.api import Catalog

    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(night["db"]) as source, sqlite3.connect(copy) as target:
        source.backup(target)                                # the WAL's pages too
    with Catalog.open(str(copy)) as catalog:
        before = catalog.sources()
        again = catalog.photometer(radius=5.0)              # another radius rule: every frame is stale
        after = catalog.sources()
        assert again.measured == N_FRAMES
        frame_rows = catalog.photometry()
    assert set(frame_rows["radius_rule"]) == {"fixed"}
    assert set(np.round(frame_rows["radius"], 3)) == {5.0}
    common = set(before["id"]) & set(after["id"])
    assert len(common) >= 0.9 * len(before)
    b = {int(i): (x, y) for i, x, y in zip(before["id"], before["x"], before["y"])}
    a = {int(i): (x, y) for i, x, y in zip(after["id"], after["x"], after["y"])}
    moved = [i for i in common if math.hypot(a[i][0] - b[i][0], a[i][1] - b[i][1]) > 0.5]
    assert len(moved) <= 0.05 * len(common)


def test_tables_have_units_and_the_stated_columns(night):
    catalog = night["catalog"]
    table = catalog.photometry(band="V")
    assert set(table["band"]) == {"V"}
    assert str(table["mag"].unit) == "mag" and str(table["flux"].unit) == "adu"
    assert str(table["mjd_utc"].unit) == "d" and str(table["x"].unit) == "pix"
    assert set(table["gain_source"]) <= {"GAIN", "EGAIN", "assumed", "given", "CCDGAIN", "GAIN_E"}
    sources = catalog.sources()
    assert {"mag_V", "mag_R", "chi2_V", "variable_V"} <= set(sources.colnames)
    assert str(sources["mag_V"].unit) == "mag"
    curve = catalog.lightcurve(near=(float(sources["x"][5]) + 0.7, float(sources["y"][5]) - 0.4))
    assert curve.meta["id"] == int(sources["id"][5])
    assert list(curve["mjd_utc"]) == sorted(curve["mjd_utc"])
    assert set(curve["status"]) == {"accepted"}


def test_near_and_radec_refuse_with_one_line(night):
    from obsdb.errors import ObsdbError

    catalog = night["catalog"]
    with pytest.raises(ObsdbError, match="px away"):
        catalog.lightcurve(near=(-500.0, -500.0))
    with pytest.raises(ObsdbError, match="no WCS"):
        catalog.lightcurve(radec=(10.0, 20.0))
    with pytest.raises(ObsdbError, match="no such source"):
        catalog.lightcurve(999999)


def test_commands_print_the_summary_the_sources_and_a_light_curve(night, tmp_path):
    runner = CliRunner()
    db = ["--db", night["db"]]
    result = runner.invoke(app, db + ["photometry"])
    assert result.exit_code == 0, result.output
    print(result.output)                                  # docs/photometry.md shows it
    assert f"frames measured: 0 ({N_FRAMES} already current, 0 failed)" in result.output
    assert "median zero-point error:" in result.output and "mmag" in result.output
    assert "repeatability of bright stars" in result.output

    listed = runner.invoke(app, db + ["sources", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    sources = json.loads(listed.stdout)
    assert sources and {"id", "x", "y", "ra", "dec", "n_frames", "variable", "mag_V"} <= set(sources[0])
    table = runner.invoke(app, db + ["sources"])
    assert table.exit_code == 0 and max(len(line) for line in table.output.splitlines()) <= 80

    brightest = min((s for s in sources if s["mag_V"] is not None), key=lambda s: s["mag_V"] + 0 * s["id"])
    csv_out = runner.invoke(app, db + ["lightcurve", "--near", f"{brightest['x']:.2f},{brightest['y']:.2f}",
                                       "--format", "csv", "--band", "V"])
    assert csv_out.exit_code == 0, csv_out.output
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0] == "frame,band,mjd_utc,mag,mag_err,airmass,status,flags"
    assert len(lines) - 1 == brightest["n_frames"] // 2 or len(lines) > 3
    assert all(line.split(",")[1] == "V" for line in lines[1:])

    as_json = runner.invoke(app, db + ["lightcurve", str(brightest["id"]), "--format", "json"])
    document = json.loads(as_json.stdout)
    assert document["source"] == brightest["id"] and "MJD" in document["time"]
    assert {"V", "R"} == {row["band"] for row in document["rows"]}

    plot = tmp_path / "lc.svg"
    drawn = runner.invoke(app, db + ["lightcurve", str(brightest["id"]), "--plot", str(plot)])
    assert drawn.exit_code == 0, drawn.output
    assert plot.read_text().lstrip().startswith("<?xml") and "MJD UTC mid-exp" in drawn.output
    # The table fits 80 columns; the last line names the plot's path, as long as the path is.
    assert max(len(line) for line in drawn.output.splitlines() if not line.startswith("plot:")) <= 80

    for arguments, message in ((["lightcurve"], "give one of"), (["lightcurve", "--near", "1;2"], "two numbers"),
                               (["lightcurve", "3", "--plot", str(tmp_path / "x.gif")], ".png or .svg")):
        refused = runner.invoke(app, db + arguments)
        assert refused.exit_code == 1 and message in refused.output and "Traceback" not in refused.output


def test_the_same_night_on_each_backend(catalog_url, copy_night, tmp_path):
    """Measured, identified and fitted alike on SQLite and PostgreSQL; a second run measures nothing."""
    from obsdb.api import Catalog

    copy_night(tmp_path / "frames", seed=3, size=256, n_frames=18, bands=("B", "V", "R"), n_groups=3)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "frames"])
        catalog.qa()
        catalog.align()
        first = catalog.photometer(workers=2)               # through the process pool
        second = catalog.photometer()
        sources = catalog.sources()
        table = catalog.photometry()
    assert first.measured == 18 and second.measured == 0 and second.current == 18
    assert first.identified >= 10 and first.sources == len(sources) > 30
    assert len(first.not_identified) == 18 - first.identified
    identified = table[np.isfinite(table["zero_point"])]
    assert len(set(identified["frame_id"])) == first.identified
    assert (table["source"] >= 0).mean() > 0.5
    # Both backends (one worker runs both: --dist loadfile) give the same sources and zero points.
    result = (len(sources), sorted(np.round(np.asarray(identified["zero_point"]), 6).tolist()))
    for earlier in _BACKEND_RESULTS:
        assert earlier[0] == result[0] and np.allclose(earlier[1], result[1], atol=1e-6)
    _BACKEND_RESULTS.append(result)


_BACKEND_RESULTS: list = []


def test_real_frames_are_measured_and_flag_saturated_cores_and_edges(real_data, tmp_path):
    """The Seestar sequence, the focus sequence and the DSS pair: photometry runs on each; saturated cores and
    apertures over the edge are flagged; the repeatability of the brightest unsaturated stars is printed."""
    import shutil

    from obsdb.api import Catalog

    found = {}
    for name in ("seestar_m94_crops", "focus_seq", "pair_dss"):
        folder = tmp_path / name
        shutil.copytree(real_data / name, folder, ignore=shutil.ignore_patterns("*.csv"))
        with Catalog.open(str(tmp_path / f"{name}.sqlite"), create=True) as catalog:
            catalog.ingest([folder])
            catalog.qa()
            try:
                catalog.align()
            except Exception:  # noqa: BLE001 - the focus sequence of one star cannot be registered
                pass
            report = catalog.photometer()
            table = catalog.photometry()
            sources = catalog.sources()
            found[name] = (report, table, sources)
            if name == "pair_dss":
                # The DSS plates carry a plate solution: every source has sky coordinates, and --radec finds it.
                assert np.isfinite(np.asarray(sources["ra"])).all() and np.isfinite(np.asarray(sources["dec"])).all()
                curve = catalog.lightcurve(radec=(float(sources["ra"][3]) + 1e-4, float(sources["dec"][3])))
                assert curve.meta["id"] == int(sources["id"][3])
            flags = np.asarray(table["flags"])
            print(f"{name}: {report.measured} frames, {len(table)} measurements, {report.sources} sources, "
                  f"{int((flags & SATURATED).astype(bool).sum())} saturated, {int((flags & EDGE).astype(bool).sum())} "
                  f"at the edge; repeatability of bright stars {report.repeatability}")
            assert report.failed == []
            assert report.measured == len(set(table["frame_id"])) > 0
    seestar, focus, dss = found["seestar_m94_crops"], found["focus_seq"], found["pair_dss"]
    assert seestar[0].measured == 5 and seestar[0].identified >= 3
    # The Seestar crops peak at 13,000 of 65,535 ADU: nothing is saturated there, and nothing is flagged so.
    assert not (np.asarray(seestar[1]["flags"]) & SATURATED).any()
    assert (np.asarray(seestar[1]["flags"]) & EDGE).any()
    assert seestar[0].repeatability and all(v < 0.05 for v in seestar[0].repeatability.values())
    # The DSS plates' brightest stars sit at the scan's ceiling: saturated cores.
    assert dss[0].measured == 2 and (np.asarray(dss[1]["flags"]) & SATURATED).sum() >= 2
    # The through-focus star fills the 85x65 frame when defocused: its aperture crosses the edge.
    assert focus[0].measured == 17 and (np.asarray(focus[1]["flags"]) & EDGE).sum() >= 3
