"""The review desk's picture cache: a frame's large preview, thumbnail and star cut-outs as PNG files,
its preview on its alignment reference's grid (the blink), and 1:1 crops (drawn per request, not stored).

Each file is named by the frame's catalog id, its size and modification time
and the kind of picture, so a rewritten frame gets new pictures and the old
ones are simply no longer used.  File names are built from integers and fixed
words only: nothing from a request becomes a path.  One FITS read draws every
missing picture of a frame, and a background thread draws a band's pictures
ahead of the reviewer, so paging through a night waits for no drawing.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

KINDS = ("zscale", "asinh", "thumb", "stars", "aligned-zscale", "aligned-asinh")
"""What can be drawn: the large preview in either stretch, the grid's thumbnail, the star cut-outs, and the
large preview of the frame resampled onto its alignment reference's grid (for the blink) in either stretch."""

ALIGNED_KINDS = ("aligned-zscale", "aligned-asinh")
"""Kinds that need the record's ``alignment``: ``{"run", "transform", "reference_shape"}``."""

WARM_KINDS = ("zscale", "thumb", "stars")
"""What the background thread draws ahead (asinh only when asked for)."""

LARGE_SIDE = 1024
THUMB_SIDE = 200
STAR_ZOOM = 4
"""Screen pixels per detector pixel in the star cut-outs (the issue's 4x)."""


class PreviewCache:
    """Pictures of frames in one folder, drawn on first request or ahead of it.

    Parameters
    ----------
    folder : path
        The cache folder (created); the only place the review desk writes.
    stars_of : callable
        ``stars_of(record)`` gives the frame's stored stars as (x, y, flux, fwhm, flag), brightest first
        (the catalog's star list; the desk never measures stars itself).
    """

    def __init__(self, folder: str | os.PathLike, stars_of):
        self.folder = Path(folder)
        # Private: whoever could write here could plant a link under a picture's predictable name.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            if self.folder.stat().st_uid == os.getuid():
                os.chmod(self.folder, 0o700)
        except (OSError, AttributeError):
            pass
        self._stars_of = stars_of
        # matplotlib's Agg canvases are not guaranteed thread-safe: draw one frame at a time.
        self._draw_lock = threading.Lock()
        # Frame ids in drawing order, and for each the record and the kinds of picture still wanted.
        self._queue: collections.deque[int] = collections.deque()
        self._wanted: dict[int, tuple[dict, set[str]]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._busy = 0
        self._recent: collections.OrderedDict = collections.OrderedDict()
        self._pixels_lock = threading.Lock()

    def path(self, record: dict, kind: str) -> Path | None:
        """Where a picture of this frame is (or will be) cached; None when the file cannot be seen now."""
        if kind not in KINDS:
            raise ValueError(f"unknown picture kind {kind!r}")
        try:
            st = os.stat(record["path"])
        except OSError:
            return None
        if kind in ALIGNED_KINDS:
            # A run's transform of a frame never changes: the run's id names it.
            kind = f"{kind}-run{int(record['alignment']['run'])}"
        return self.folder / f"{int(record['id'])}-{st.st_size}-{st.st_mtime_ns}-{kind}.png"

    def get(self, record: dict, kind: str) -> Path | None:
        """The picture, drawn now if it is not cached; None when the frame cannot be read (or has no stars).

        A symbolic link (or anything but a regular file) under the picture's name is removed, never
        followed, and the picture drawn anew.
        """
        target = self.path(record, kind)
        if target is None:
            return None
        if not _regular(target):
            if os.path.lexists(target):
                try:
                    os.unlink(target)
                except OSError:
                    return None
            self._draw(record, [kind])
        return target if _regular(target) else None

    def read(self, record: dict, kind: str) -> bytes | None:
        """The picture's bytes (see :meth:`get`), opened without following links (``O_NOFOLLOW``)."""
        target = self.get(record, kind)
        if target is None:
            return None
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def warm(self, records: list[dict], kinds=WARM_KINDS) -> None:
        """Draw these frames' pictures in the background, in this order, ahead of anything queued before.

        Parameters
        ----------
        records : list of dict
            Frames as :meth:`obsdb.Catalog.frame_dicts` gives them.
        kinds : sequence of str
            The pictures wanted (default :data:`WARM_KINDS`); a frame queued before keeps its kinds too.
        """
        with self._wake:
            ids = []
            for record in records:
                frame_id = int(record["id"])
                ids.append(frame_id)
                _, before = self._wanted.get(frame_id, (record, set()))
                self._wanted[frame_id] = (record, before | set(kinds))
            first = set(ids)
            self._queue = collections.deque([*dict.fromkeys(ids), *(i for i in self._queue if i not in first)])
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="obsdb-previews", daemon=True)
                self._thread.start()
            self._wake.notify()

    def pending(self) -> int:
        """Frames waiting for the background thread, or being drawn by it."""
        with self._wake:
            return len(self._queue) + self._busy

    def wait(self, timeout: float) -> bool:
        """Wait until the background thread has drawn everything asked for; False if ``timeout`` s passed first."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self) -> None:
        """Stop the background thread after the frame it is drawing."""
        with self._wake:
            self._stopped = True
            self._queue.clear()
            self._wanted.clear()
            self._wake.notify_all()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                record, kinds = self._wanted.pop(self._queue.popleft())
                self._busy = 1
            try:
                self._draw(record, [k for k in KINDS if k in kinds])
            except Exception:  # noqa: BLE001 - a frame that cannot be drawn ahead is drawn (or refused) on request
                pass
            finally:
                with self._wake:
                    self._busy = 0
                    self._wake.notify_all()

    def _draw(self, record: dict, kinds: list[str]) -> None:
        """Read the frame once and write every missing picture of the kinds asked for."""
        from obsdb.imaging.fitsio import FitsReadError, read_fits_image
        from obsdb.imaging.preview import (aligned_preview, write_preview_png, write_stack_preview_png,
                                           write_star_zooms_png)
        from obsdb.present.facts import zoom_stars

        with self._draw_lock:
            targets = {kind: self.path(record, kind) for kind in kinds}
            missing = {k: t for k, t in targets.items() if t is not None and not t.is_file()}
            if not missing:
                return
            try:
                data = read_fits_image(record["path"], hash_mode="none").data
            except (FitsReadError, OSError, ValueError):
                return
            for kind, target in missing.items():
                try:
                    if kind in ("zscale", "asinh"):
                        write_preview_png(target, data, max_size=LARGE_SIDE, stretch=kind)
                        compact_png(target)
                    elif kind in ALIGNED_KINDS:
                        alignment = record["alignment"]
                        pixels = aligned_preview(data, alignment["transform"], alignment["reference_shape"],
                                                 max_size=LARGE_SIDE)
                        if kind == "aligned-zscale":
                            # The same pixels as write_preview_png draws, without matplotlib (5x faster):
                            # the first blink of a frame waits for this.
                            write_stack_preview_png(target, pixels, max_size=LARGE_SIDE)
                        else:
                            write_preview_png(target, pixels, max_size=LARGE_SIDE, stretch="asinh")
                        compact_png(target)
                    elif kind == "thumb":
                        write_preview_png(target, data, max_size=THUMB_SIDE)
                        compact_png(target)
                    else:
                        half, picks = zoom_stars(self._stars_of(record), data.shape,
                                                 (record.get("metrics") or {}).get("fwhm"))
                        if picks:
                            labels = [f"x {s[0] + 1:.0f} y {s[1] + 1:.0f}\nFWHM {s[3]:.2f} px" for s in picks]
                            write_star_zooms_png(target, data, [(s[0], s[1]) for s in picks], half=half,
                                                 scale=STAR_ZOOM, labels=labels)
                except (ValueError, OSError):
                    continue

    def crop(self, record: dict, x: float, y: float, width: int, height: int, *, stretch: str = "zscale",
             transform=None) -> bytes | None:
        """A 1:1 crop of the frame as PNG bytes (:func:`obsdb.imaging.preview.crop_png_bytes`); None when the
        frame cannot be read.  The last frames read are kept in memory, so moving the zoom reads no file."""
        from obsdb.imaging.preview import crop_png_bytes

        data = self._pixels(record)
        if data is None:
            return None
        return crop_png_bytes(data, x, y, width, height, transform=transform, stretch=stretch)

    def _pixels(self, record: dict):
        """The frame's pixels, from the small in-memory cache or the file; None when it cannot be read."""
        from obsdb.imaging.fitsio import FitsReadError, read_fits_image

        try:
            st = os.stat(record["path"])
        except OSError:
            return None
        key = (int(record["id"]), st.st_size, st.st_mtime_ns)
        with self._pixels_lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        try:
            data = read_fits_image(record["path"], hash_mode="none").data
        except (FitsReadError, OSError, ValueError):
            return None
        with self._pixels_lock:
            self._recent[key] = data
            while len(self._recent) > RECENT_FRAMES:
                self._recent.popitem(last=False)
        return data


RECENT_FRAMES = 2
"""Frames whose pixels the 1:1 zoom keeps in memory: the frame and its reference, while the reviewer looks."""


def _regular(path: Path) -> bool:
    """True for a regular file that is not a symbolic link."""
    import stat

    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def compact_png(path: Path) -> None:
    """Rewrite a PNG as 8-bit grey when it has no colour (else as RGB without alpha), atomically.

    The previews are grey images saved as RGBA: grey is a third of the bytes to send and to decode,
    which is most of what a cached review page costs.
    """
    import io

    import numpy as np
    from PIL import Image

    from obsdb.imaging.fitsio import atomic_write_bytes

    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    buffer = io.BytesIO()
    Image.fromarray(rgb[..., 0] if grey else rgb, mode="L" if grey else "RGB").save(buffer, format="PNG",
                                                                                     compress_level=3)
    atomic_write_bytes(path, buffer.getvalue())
