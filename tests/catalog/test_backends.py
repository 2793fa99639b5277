"""One catalog contract, two backends: the same two nights give the same answers on SQLite and PostgreSQL.

Every front-door call a user makes is run on each backend (`catalog_url`: an SQLite file, and a
PostgreSQL database created for the test and dropped after it): ingest, qa, align, manual tags and
their retraction, nights, summaries, selectors (numbers, ranges, qualified labels, paths), ``--where``
on columns, metrics, header keywords and the registration, history, show and the log.  The answers,
without ids and times, must be the ones a reference run on SQLite gives.
"""

from __future__ import annotations

import pytest

from obsdb import Catalog

SMALL = dict(size=192, bands=("V", "R"), n_groups=1, cloud_fraction=0.2, trail_fraction=0.2, defocus_fraction=0)
NIGHT1, NIGHT2 = "2026-03-14", "2026-03-16"


@pytest.fixture(scope="module")
def nights(tmp_path_factory, simulated_nights):
    root = tmp_path_factory.mktemp("backends")
    simulated_nights.copy(root / "n1", seed=97, n_frames=8, **SMALL)
    simulated_nights.copy(root / "n2", seed=98, n_frames=6, night_start="2026-03-16T23:10:00", **SMALL)
    return root


def _answers(url: str, root) -> dict:
    with Catalog.open(url, create=True) as catalog:
        ingested = catalog.ingest([root / "n1", root / "n2"])
        again = catalog.ingest([root / "n1"])                           # verify, never duplicate
        qa = catalog.qa()
        catalog.align()
        catalog.tag(f"{NIGHT1}:1002-1003", "tracking-slight", reason="doubled stars", author="nico")
        catalog.untag(f"{NIGHT1}:1003", "tracking-slight", reason="fine after all", author="nico")
        records = catalog.frame_dicts(night="all")

        def numbers(**filters):
            return sorted((r["night"], r["number"]) for r in catalog.frame_dicts(**filters))

        answers = {
            "ingest": (len(ingested.added), len(again.unchanged), len(ingested.failed)),
            "qa": sorted((str(n), t) for n, t, _ in qa.added),
            "frames": sorted((r["night"], r["number"], r["band"], r["status"], tuple(r["reasons"]),
                              round(r["stats"]["median"], 5), r["metrics"]["n_stars"],
                              None if not r["shift"] else (round(r["shift"]["dx"], 5), round(r["shift"]["dy"], 5)))
                             for r in records),
            "nights": [(n["night"], n["frames"], n["accepted"], n["rejected"]) for n in catalog.nights()],
            "summary": sorted((r["band"], r["frames"], r["accepted"], r["rejected"], round(r["median_fwhm"], 5))
                              for r in catalog.summary(night="all")),
            "range": numbers(night=NIGHT1, where="number >= 1003 and number <= 1006"),
            "where header": numbers(night="all", where="FILTER == 'V' and EXPTIME >= 1"),
            "where metrics": numbers(night="all", where="fwhm > 0 and n_stars > 3 and median > 0"),
            "where registration": numbers(night="all", where="align_matches >= 4 or align_rms is None"),
            "band any case": numbers(night="all", band="v"),
            "rejected": numbers(night="all", status="rejected"),
            "tag": numbers(night="all", tag="tracking-slight"),
            "show": [(d["number"], len(d["tag_history"])) for d in catalog.show(f"{NIGHT1}:1002-1003")],
            "history": [len(h["runs"]) for h in catalog.history(f"{NIGHT1}:1004")],
            "path": [d["number"] for d in catalog.show(str(next(iter(sorted((root / "n2").glob("*.fits"))))))],
            "log": [e["command"] for e in catalog.log(limit=20)],
        }
    return answers


def test_the_catalog_contract_holds_on_each_backend(nights, catalog_url, tmp_path):
    got = _answers(catalog_url, nights)
    assert got["ingest"] == (14, 8, 0)
    assert got["nights"] and [n for n, *_ in got["nights"]] == [NIGHT1, NIGHT2]
    assert got["tag"] == [(NIGHT1, 1002)]                       # 1003's was retracted
    assert got["band any case"] and got["where registration"] and got["rejected"]
    assert dict(got["show"])[1003] == 1                          # the retracted tag is in the history
    if catalog_url.startswith("postgresql"):
        assert got == _answers(f"sqlite:///{tmp_path / 'reference.sqlite'}", nights)
