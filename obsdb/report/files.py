"""The report's files: written atomically, listed with their SHA-256 in a manifest, and only its own replaced.

The output folder may hold the user's own files beside the report's; a file the report wrote and the user
edited since is refused, never overwritten; a sub-folder that is a symbolic link is refused.
"""

from __future__ import annotations

from pathlib import Path

SUBDIRS = ("plots", "thumbs", "stacks", "zooms", "frames")
"""The report's sub-folders.  ``plots/`` held the PNG plots of earlier reports (the plots are now SVG in the
pages): those files are removed by the next report, and a link there is still refused."""

CLAIMED = "claimed"
"""The manifest's digest for a file a report was about to write when it stopped (killed, a full disk)."""

MANIFEST = ".obsdb-report.json"
"""The report's list of the files it wrote, with their SHA-256, in the output folder."""


class ReportFiles:
    """The files an earlier report wrote in ``out`` (its manifest): the only ones it may replace or delete.

    A report written before the manifest existed is recognised by its page's
    footer; the images that page shows are then taken as the report's own.
    An output folder, or one of its ``plots/``, ``thumbs/``, ``stacks/``, ``zooms/``,
    ``frames/`` (:data:`SUBDIRS`), that is a symbolic link is refused: the report
    writes only inside ``--out``.
    """

    def __init__(self, out: Path):
        import json

        from obsdb.errors import ObsdbError

        self.out = out
        if out.exists() and not out.is_dir():
            raise ObsdbError(f"--out {out}: is a file, not a folder")
        for sub in SUBDIRS:
            if (out / sub).is_symlink():
                raise ObsdbError(f"{out / sub}: is a symbolic link; the report writes only inside --out "
                                 "(remove the link, or choose another --out)")
        self.before: dict[str, str] = {}
        self.now: dict[str, str] = {}
        manifest = out / MANIFEST
        if manifest.is_file():
            try:
                files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
                self.before = {str(rel): str(digest) for rel, digest in files.items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise ObsdbError(f"{manifest}: is not the report's list of its files; remove it to write "
                                 "the report here") from None
        elif (out / "index.html").is_file():
            self.before = self._adopt_old_report()

    def _adopt_old_report(self) -> dict[str, str]:
        import re

        from obsdb.pipeline.outputs import file_sha256

        try:
            page = (self.out / "index.html").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        if "<footer>Written by obsdb " not in page:
            return {}
        rels = {"index.html"} | {rel for rel in re.findall(r'(?:src|href)="([^"]+\.(?:png|html))"', page)
                                 if rel.split("/")[0] in SUBDIRS and ".." not in rel}
        # A frame's page (linked from the index) shows its own images, e.g. its star zoom: its own too.
        for rel in [r for r in rels if r.startswith("frames/") and r.endswith(".html")]:
            try:
                text = (self.out / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            rels |= {ref[3:] for ref in re.findall(r'src="(\.\./[^"]+\.png)"', text)
                     if ref[3:].split("/")[0] in SUBDIRS and ".." not in ref[3:]}
        return {rel: file_sha256(self.out / rel) for rel in rels if (self.out / rel).is_file()}

    def _changed(self, rel: str) -> bool:
        from obsdb.pipeline.outputs import file_sha256

        return self.before[rel] != CLAIMED and file_sha256(self.out / rel) != self.before[rel]

    def is_own(self, rel: str) -> bool:
        """Whether ``rel`` exists as the earlier report left it."""
        path = self.out / rel
        return rel in self.before and path.is_file() and not path.is_symlink() and not self._changed(rel)

    def refuse_foreign(self, rels) -> None:
        """Raise for the first of ``rels`` that exists and is not the report's own unchanged file;
        then remove the temporary files an interrupted report left beside them."""
        from obsdb.errors import ObsdbError
        from obsdb.pipeline.outputs import remove_own_leftovers

        rels = list(rels)
        for rel in rels:
            path = self.out / rel
            if not (path.exists() or path.is_symlink()):
                continue
            if rel not in self.before:
                raise ObsdbError(f"{path}: exists and was not written by obsdb report; refusing to replace it "
                                 "(move it, or choose another --out)")
            if not self.is_own(rel):
                raise ObsdbError(f"{path}: was written by obsdb report but changed since; refusing to "
                                 "replace it (move it, or choose another --out)")
        remove_own_leftovers([self.out / rel for rel in [*rels, MANIFEST]])
        self._claim(rels)

    def _claim(self, rels: list[str]) -> None:
        """Record the files about to be written before writing them: a report killed half-way has
        claimed what it left, so the next one may replace it (see :data:`CLAIMED`)."""
        import json

        from obsdb.imaging.fitsio import atomic_write_bytes

        new = [rel for rel in rels if rel not in self.before]
        if not new:
            return
        self.before.update({rel: CLAIMED for rel in new})
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {"written_by": "obsdb report", "files": dict(sorted(self.before.items()))}
        atomic_write_bytes(self.out / MANIFEST, json.dumps(payload, indent=1).encode("utf-8"))

    def wrote(self, rel: str, digest: str | None = None) -> None:
        """Note a file of this report (its digest, or read from disk)."""
        from obsdb.pipeline.outputs import file_sha256

        self.now[rel] = digest or file_sha256(self.out / rel)

    def finish(self, keep: set[str]) -> None:
        """Delete what the earlier report wrote and this one no longer shows (if unchanged); save the list."""
        import json

        from obsdb.imaging.fitsio import atomic_write_bytes

        for rel in sorted(set(self.before) - keep):
            path = self.out / rel
            if path.is_file() and not path.is_symlink() and not self._changed(rel):
                try:
                    path.unlink()
                except OSError:
                    pass
        payload = {"written_by": "obsdb report", "files": dict(sorted(self.now.items()))}
        atomic_write_bytes(self.out / MANIFEST, json.dumps(payload, indent=1).encode("utf-8"))
