"""The modules a pool's workers need are imported by the parent before it forks them."""

import json
import subprocess
import sys

PROBE = """
import json, sys
from obsdb.config import IngestConfig
from obsdb.pipeline import ingest, pool

pool._IN_POOL_WORKER = True                      # measured as a pool worker measures (no fork)
ingest.preload_worker_modules()
before = set(sys.modules)
measurement = ingest.measure_file(sys.argv[1], IngestConfig())
heavy = ("astropy", "scipy", "sep", "obsdb")
new = sorted(name for name in set(sys.modules) - before if name.split(".")[0] in heavy)
print(json.dumps({"error": measurement.error, "n_stars": (measurement.metrics or {}).get("n_stars"),
                  "streaks": measurement.streaks is not None, "new": new}))
"""


def test_a_light_frame_is_measured_with_the_preloaded_modules_alone(small_night):
    folder, truth = small_night
    path = folder / truth.frames[0]["file"]
    done = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["error"] is None and answer["n_stars"] > 5 and answer["streaks"]
    # A module imported here would be imported again by every worker, on its first frame.
    assert answer["new"] == []


def test_the_pool_ingest_preloads_and_still_contains_a_crash(catalog, small_night, monkeypatch):
    from obsdb.pipeline import ingest

    calls = []
    monkeypatch.setattr(ingest, "preload_worker_modules", lambda: calls.append(1))
    folder, truth = small_night
    report = catalog.ingest([folder], workers=2)
    assert calls == [1]
    assert len(report.added) == len(truth.frames) and not report.failed
