"""The whole pipeline on a real dithered sequence (ZWO Seestar, M 94, 5 frames of 512x512)."""

import csv

import numpy as np

from obsdb.config import IngestConfig
from obsdb.pipeline.align import align_auto


def test_seestar_sequence_end_to_end(catalog, real_data, tmp_path):
    folder = real_data / "seestar_m94_crops"
    config = IngestConfig(number_pattern=r"set1_(\d+)")
    report = catalog.ingest([folder], config=config)
    assert len(report.added) == 5 and not report.failed
    catalog.qa()
    aligned = align_auto(catalog.db, status="any", reference="212046")
    assert not aligned.failures, [(r.number, r.reason) for r in aligned.failures]
    # shifts_estimated.csv: a star at (y, x) in the first frame appears at (y - dy, x - dx) here,
    # i.e. dx = x_reference - x_frame, obsdb's convention.  Estimates, good to 0.1-1 px.
    with open(folder / "shifts_estimated.csv") as handle:
        rows = [r for r in csv.reader(line for line in handle if not line.startswith("#"))]
    estimated = {int(r[0].split("_")[2]): (float(r[3]), float(r[2])) for r in rows}
    found = {r.number: (r.dx, r.dy) for r in aligned.results}
    errors = np.array([np.subtract(found[n], estimated[n]) for n in estimated])
    assert np.abs(errors).max() < 0.6, dict(zip(estimated, errors.round(2).tolist()))
    # A frame moved by 12-17 px: the test is not passing on zero shifts.
    assert max(np.hypot(*found[n]) for n in found) > 15
    written = catalog.render(tmp_path / "out", run=aligned.run_id, status="any", stack="median")
    assert len(written.frames) == 5 and len(written.stacks) == 1
