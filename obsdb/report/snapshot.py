"""Everything the report shows, read from the catalog in one go through its public read methods."""

from __future__ import annotations

from dataclasses import dataclass, field

from obsdb.imaging.header import LIGHT_IMAGE_TYPES

THUMBNAIL_TYPES = LIGHT_IMAGE_TYPES
"""Image types shown in the thumbnail grid and the quality plots (those QA judges)."""


@dataclass
class Snapshot:
    """Everything the report needs from the catalog, read in one session."""

    url: str
    """The catalog's URL as shown (a file path; a server URL without its password)."""
    records: list[dict]
    runs: list[dict]
    run_shifts: dict[int, dict[int, tuple[float, float]]]
    stacks: list[dict]
    details: dict = field(default_factory=dict)
    """:meth:`obsdb.Catalog.report_details`: nights, instruments, per-frame extras, histories, QA thresholds."""

    @property
    def light(self) -> list[dict]:
        """The readable frames QA judges (:data:`THUMBNAIL_TYPES`)."""
        return [r for r in self.records if r["readable"] and r["type"] in THUMBNAIL_TYPES]


def read_snapshot(catalog, nights=None) -> Snapshot:
    """The catalog's records, runs, stacks and details for the report (only these ``nights`` when given).

    Parameters
    ----------
    catalog : obsdb.Catalog
        An open catalog (only read: :meth:`~obsdb.Catalog.report_facts`, :meth:`~obsdb.Catalog.report_details`).
    nights : str or list of str, optional
        Only these nights [default: all].

    Returns
    -------
    Snapshot
    """
    facts = catalog.report_facts(nights=nights)
    details = catalog.report_details(nights=nights)
    return Snapshot(url=catalog.display_url, records=facts["records"], runs=facts["runs"],
                    run_shifts=facts["run_shifts"], stacks=newest_per_path(facts["stacks"]), details=details)


def newest_per_path(stacks: list[dict]) -> list[dict]:
    """One entry per stack file: a re-render overwrites the file, so only its newest row describes it."""
    newest: dict[str, dict] = {}
    for stack in stacks:
        newest[stack["path"]] = stack
    return sorted(newest.values(), key=lambda s: ((s["band"] or ""), s["id"]))
