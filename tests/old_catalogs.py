"""Catalogs as older releases wrote them, built with raw SQL at their revision (for upgrade tests)."""

from __future__ import annotations

import json


def catalog_at_0001(url: str) -> None:
    """A catalog of the first release (revision 0001) at ``url``: two frames, a rule's tag and an event."""
    from alembic import command
    from sqlalchemy import text

    from obsdb.catalog.db import alembic_config, make_engine

    command.upgrade(alembic_config(url), "0001")
    engine = make_engine(url)
    header = json.dumps({"DATE-OBS": "2026-03-15T02:30:00", "FILTER": "V", "TELESCOP": "T", "INSTRUME": "C"})
    with engine.begin() as c:
        for i, (number, date) in enumerate([(1001, "2026-03-15 02:30:00"), (1002, "2026-03-15 02:35:00")], 1):
            c.execute(text(
                "INSERT INTO frame (id, path, file_name, size, mtime, sha256, number, band, image_type, date_obs, "
                "width, height, header, readable, ingested_at, measured_at) VALUES (:id, :path, :name, 10, 0, "
                "'ab', :number, 'V', 'light', :date, 64, 64, :header, :yes, '2026-03-15 08:00:00', "
                "'2026-03-15 08:00:00')"),
                {"id": i, "path": f"/n/f{number}.fits", "name": f"f{number}.fits", "number": number, "date": date,
                 "header": header, "yes": True})
        c.execute(text("INSERT INTO tag (frame_id, name, source, reason, author, created_at) VALUES "
                       "(2, 'cloud', 'rule:cloud', 'cloud: background 9,000 ADU > 3 x band V', 'obsdb', "
                       "'2026-03-15 08:01:00')"))
        c.execute(text('INSERT INTO event (at, "user", command, summary) VALUES '
                       "('2026-03-15 08:00:00', 'nico', 'ingest', '2 files')"))
    engine.dispose()
