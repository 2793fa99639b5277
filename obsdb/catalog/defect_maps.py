"""Render's detector-defect maps: a night's warm pixels, kept so that a later render reads them.

The search (:func:`obsdb.imaging.defects.detector_defects`) reads several of a
night's frames; its answer depends only on which frames (and their bytes), the
FWHM it was given and the search's version.  :class:`DetectorDefectStore`
keeps one map per night, instrument and frame size, with a digest of those
inputs (``sample``): a render whose sample and version match reads the stored
indices, any other recomputes and replaces the row.  Nothing here imports
:mod:`obsdb.pipeline`.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from obsdb.catalog.db import Database


def pack_indices(indices: "np.ndarray") -> bytes:
    """Ascending flat indices as zlib-compressed little-endian int64 differences (a few bytes a defect).

    Examples
    --------
    >>> unpack_indices(pack_indices([3, 70, 4100])).tolist()
    [3, 70, 4100]
    """
    import numpy as np

    values = np.asarray(indices, dtype=np.int64)
    steps = np.diff(values, prepend=np.int64(0)).astype("<i8")
    return zlib.compress(steps.tobytes(), 6)


def unpack_indices(blob: bytes) -> "np.ndarray":
    """The int64 indices :func:`pack_indices` packed."""
    import numpy as np

    return np.cumsum(np.frombuffer(zlib.decompress(blob), dtype="<i8")).astype(np.int64)


class DetectorDefectStore:
    """Stored detector-defect maps, one per night, instrument and frame size (see the module)."""

    def __init__(self, db: "Database"):
        self.db = db

    def sample_digest(self, frame_ids: list[int], fwhm: float | None, version: str) -> str:
        """SHA-256 of what a search reads: the frames (ids and the catalog's file digests, in order),
        the FWHM and the search's version.  A re-ingested file whose bytes changed changes it."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame

        with self.db.session() as session:
            digests = dict(session.execute(select(Frame.id, Frame.sha256).where(Frame.id.in_(frame_ids))).all())
        key = {"frames": [[i, digests.get(i)] for i in frame_ids],
               "fwhm": None if fwhm is None else round(float(fwhm), 6), "version": version}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def load(self, night_id: int | None, instrument_id: int | None, shape: tuple[int, int], *,
             version: str, sample: str) -> "np.ndarray | None":
        """The stored flat indices for this night, instrument and shape, when computed by this
        ``version`` from this ``sample``; ``None`` otherwise (compute and :meth:`save`)."""
        from sqlalchemy import select

        from obsdb.catalog.models import DetectorDefectMap as Map

        with self.db.session() as session:
            row = session.execute(
                select(Map.indices).where(*self._key(night_id, instrument_id, shape),
                                          Map.version == version, Map.sample == sample)
                .order_by(Map.id.desc()).limit(1)).first()
        return None if row is None else unpack_indices(row.indices)

    def save(self, night_id: int | None, instrument_id: int | None, shape: tuple[int, int],
             indices: "np.ndarray", *, version: str, sample: str) -> None:
        """Keep a map (replacing this night's, instrument's and shape's earlier one), in one transaction."""
        import numpy as np
        from sqlalchemy import delete

        from obsdb.catalog.models import DetectorDefectMap as Map

        indices = np.sort(np.asarray(indices, dtype=np.int64))
        with self.db.session() as session:
            session.execute(delete(Map).where(*self._key(night_id, instrument_id, shape)))
            session.add(Map(night_id=night_id, instrument_id=instrument_id, height=int(shape[0]),
                            width=int(shape[1]), version=version, sample=sample, n_defects=int(indices.size),
                            indices=pack_indices(indices)))

    @staticmethod
    def _key(night_id, instrument_id, shape):
        from obsdb.catalog.models import DetectorDefectMap as Map

        return (Map.night_id.is_(None) if night_id is None else Map.night_id == night_id,
                Map.instrument_id.is_(None) if instrument_id is None else Map.instrument_id == instrument_id,
                Map.height == int(shape[0]), Map.width == int(shape[1]))
