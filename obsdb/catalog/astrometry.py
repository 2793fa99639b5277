"""The catalog side of plate solving: frames to solve with their stars and headers, the verified
solutions, and "the frame's WCS" (its header's own, else its recorded solution).

:class:`AstrometryStore` holds every SQL statement of `obsdb solve`; the step
(:mod:`obsdb.pipeline.solve`) never touches a session.  It refuses to record a solution that did not
pass verification: an unverified WCS never reaches the catalog.
"""

from __future__ import annotations

from obsdb.catalog.stores import EventLog

ID_CHUNK = 500
"""Ids per IN list (bounded SQL parameter lists)."""


class UnverifiedSolution(ValueError):
    """A solution that did not pass verification was handed to the catalog (a bug in the caller)."""


class AstrometryStore(EventLog):
    """Plate solutions in one catalog (see the module docstring)."""

    def solve_inputs(self, frame_ids: list[int]) -> list[dict]:
        """What solving needs of each frame: ``id``, ``label``, ``night``, ``path``, ``shape`` (ny, nx),
        ``header`` (dict), ``stars`` (the stored star list, None when missing or of an older detection
        version), ``has_header_wcs`` and the current solution's ``algorithm`` (None when unsolved)."""
        from sqlalchemy import func, select

        from obsdb.catalog.models import Frame, Night, StarList, WcsSolution
        from obsdb.catalog.selectors import frame_label
        from obsdb.imaging.astrometry import header_wcs
        from obsdb.imaging.stars import STARS_VERSION, decode_stars

        out = []
        with self.db.session() as session:
            qualified = session.scalar(select(func.count(Night.id))) > 1
            for start in range(0, len(frame_ids), ID_CHUNK):
                chunk = frame_ids[start:start + ID_CHUNK]
                query = (select(Frame, Night.name, StarList, WcsSolution.algorithm)
                         .join(Night, Night.id == Frame.night_id)
                         .outerjoin(StarList, StarList.frame_id == Frame.id)
                         .outerjoin(WcsSolution, WcsSolution.frame_id == Frame.id)
                         .where(Frame.id.in_(chunk)))
                for frame, night, star_list, algorithm in session.execute(query):
                    current = star_list is not None and star_list.algorithm == STARS_VERSION
                    out.append({"id": frame.id, "night": night, "path": frame.path,
                                "label": frame_label(night, frame.number, frame.file_name, qualified=qualified,
                                                     shared=frame.number_shared),
                                "shape": (frame.height, frame.width), "header": frame.header or {},
                                "stars": decode_stars(star_list.data) if current else None,
                                "has_header_wcs": header_wcs(frame.header or {}) is not None,
                                "solved_with": algorithm})
        order = {fid: i for i, fid in enumerate(frame_ids)}
        return sorted(out, key=lambda row: order[row["id"]])

    def record_solution(self, frame_id: int, solution, *, author: str) -> None:
        """Store a verified solution for a frame (replacing an earlier one) and log it, in one transaction.

        Raises
        ------
        UnverifiedSolution
            When ``solution`` did not pass verification: it is never stored.
        """
        from sqlalchemy import delete

        from obsdb.catalog.models import WcsSolution, utcnow
        from obsdb.catalog.writes import record_event
        from obsdb.imaging.astrometry import SOLVE_VERSION

        verification = solution.verification
        if not verification.passed:
            raise UnverifiedSolution(f"frame {frame_id}: refusing to record an unverified plate solution "
                                     f"({verification.reason})")

        def write(session):
            session.execute(delete(WcsSolution).where(WcsSolution.frame_id == frame_id))
            session.add(WcsSolution(
                frame_id=frame_id, solver=solution.solver, solver_version=solution.solver_version,
                index_used=solution.index, hints=solution.hints.to_dict(),
                residual_arcsec=verification.residual_arcsec, residual_pixels=verification.residual_pixels,
                n_matched=verification.n_matched, n_reference=verification.n_reference,
                pixel_scale=verification.pixel_scale, wcs_header=solution.header_text,
                cpu_seconds=solution.cpu_seconds, algorithm=SOLVE_VERSION, created_at=utcnow()))
            record_event(session, author, "solve",
                         f"frame {frame_id} plate-solved: {verification.n_matched} index stars matched, median "
                         f"residual {verification.residual_arcsec:.2f}\"",
                         frame_id=frame_id, details={"index": solution.index,
                                                     "verification": verification.to_dict()})

        self.db.retry_on_conflict(write)

    def solutions(self, frame_ids: list[int] | None = None) -> list[dict]:
        """Recorded solutions (all, or of ``frame_ids``) as dicts, oldest frame id first."""
        from sqlalchemy import select

        from obsdb.catalog.models import WcsSolution

        with self.db.session() as session:
            query = select(WcsSolution).order_by(WcsSolution.frame_id)
            if frame_ids is not None:
                query = query.where(WcsSolution.frame_id.in_(list(frame_ids)[:ID_CHUNK * 20]))
            return [_solution_dict(row) for row in session.scalars(query)]

    def wcs_sources(self, frame_id: int) -> tuple[dict | None, str | None]:
        """A frame's header (dict, None when the frame is unknown) and its recorded solution's WCS cards."""
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, WcsSolution

        with self.db.session() as session:
            header = session.scalar(select(Frame.header).where(Frame.id == frame_id))
            if header is None and session.get(Frame, frame_id) is None:
                return None, None
            text = session.scalar(select(WcsSolution.wcs_header).where(WcsSolution.frame_id == frame_id))
            return header or {}, text


def _solution_dict(row) -> dict:
    return {"frame_id": row.frame_id, "solver": row.solver, "solver_version": row.solver_version,
            "index": row.index_used, "hints": row.hints, "residual_arcsec": row.residual_arcsec,
            "residual_pixels": row.residual_pixels, "n_matched": row.n_matched, "n_reference": row.n_reference,
            "pixel_scale": row.pixel_scale, "wcs_header": row.wcs_header, "cpu_seconds": row.cpu_seconds,
            "algorithm": row.algorithm, "created_at": row.created_at}
