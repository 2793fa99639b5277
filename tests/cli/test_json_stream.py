"""A streamed JSON listing is one JSON document, whatever the size of the chunks it is written in."""

from __future__ import annotations

import io
import json
import math

import pytest

from obsdb.cli import common


@pytest.mark.parametrize("chunk", [1, 40, 1 << 20])
@pytest.mark.parametrize("count", [0, 1, 7])
def test_a_streamed_listing_reads_back_whole(monkeypatch, chunk, count):
    items = [{"id": i, "label": f"2026-03-14:{1000 + i}", "fwhm": math.nan if i == 3 else 2.5 + i} for i in range(count)]
    out = io.StringIO()
    writes = []
    real_write = out.write
    monkeypatch.setattr(out, "write", lambda text: writes.append(text) or real_write(text))
    monkeypatch.setattr(common.sys, "stdout", out)
    monkeypatch.setattr(common, "STREAM_CHUNK", chunk)
    common.print_json_stream(iter(items))
    expected = [{**item, "fwhm": None} if item["id"] == 3 else item for item in items]
    assert json.loads(out.getvalue()) == expected
    # One record a line (a script may read them so), written a chunk at a time.
    assert out.getvalue().count("\n") == (count + 2 if count else 1)
    if chunk == 1:  # every record past the chunk: written as it comes, then the closing bracket
        assert len(writes) == count + 1
    elif chunk == 1 << 20:  # all of it within one chunk: one write
        assert len(writes) == 1
