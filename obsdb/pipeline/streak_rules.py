"""The ``satellite`` rule: a frame crossed by a straight streak, with the streak's numbers.

Pure functions on what the catalog stores (the ``streak`` rows found at ingest by
:mod:`obsdb.imaging.streaks`); no database, no pixels.  A satellite tag does not
reject its frame by itself: `obsdb render` masks every stored streak (NaN along
the line, :data:`obsdb.imaging.streaks.MASK_MARGIN` beyond its half width)
before it resamples and stacks, so the rest of the frame is still good data.
The evidence gives the fraction of the frame the mask takes, for a rule (or a
person) that would reject frames whose streaks take too much.
"""

from __future__ import annotations

import math

SATELLITE_TAG = "satellite"
"""Name of the tag (and of its rule: source ``rule:satellite``)."""

LARGE_MASK_FRACTION = 0.05
"""A frame whose streak masks cover more than this fraction is flagged as such in the reason (the
stack loses that much of the frame's light there); the tag itself still does not reject."""


def masked_fraction(streaks, width: int | None, height: int | None) -> float | None:
    """Fraction of a ``width`` x ``height`` frame that the masks of ``streaks`` cover (overlaps counted
    twice: an upper bound), or None without a frame size."""
    from obsdb.imaging.streaks import MASK_MARGIN

    if not width or not height:
        return None
    area = 0.0
    for s in streaks:
        length = math.hypot(s["x1"] - s["x0"], s["y1"] - s["y0"])
        area += length * (s["width"] + 2 * MASK_MARGIN)
    return min(1.0, area / (width * height))


def describe(streak: dict) -> str:
    """``"streak from (12, 830) to (2040, 95), 5 px wide, S/N 4.1 per px"``."""
    significance = streak.get("significance")
    snr = f", S/N {significance:.1f} per px" if significance is not None else ""
    return (f"streak from ({streak['x0']:.0f}, {streak['y0']:.0f}) to ({streak['x1']:.0f}, {streak['y1']:.0f}), "
            f"{streak['width']:.0f} px wide{snr}")


def satellite_decisions(frames) -> list[tuple[int, str, str, dict]]:
    """The ``satellite`` tag of each frame crossed by at least one streak.

    Parameters
    ----------
    frames : iterable of dict
        ``id``, ``streaks`` (dicts with ``x0, y0, x1, y1, width, significance``) and
        optionally ``width`` and ``height`` of the frame, as
        :meth:`obsdb.catalog.stores.QualityStore.frame_streaks` gives them.

    Returns
    -------
    list of (frame id, "satellite", reason, evidence)
        ``reason`` names each streak's end points, width and per-pixel signal-to-noise,
        e.g. ``"satellite: streak from (12, 830) to (2040, 95), 5 px wide, S/N 4.1 per px;
        masked in the stack"``; ``evidence`` holds the streaks, the masked fraction and the
        yardstick (the frame's own background rms).
    """
    out = []
    for frame in frames:
        streaks = list(frame.get("streaks") or ())
        if not streaks:
            continue
        fraction = masked_fraction(streaks, frame.get("width"), frame.get("height"))
        parts = "; ".join(describe(s) for s in streaks)
        count = f"{len(streaks)} streaks: " if len(streaks) > 1 else ""
        note = "masked in the stack"
        if fraction is not None and fraction > LARGE_MASK_FRACTION:
            note += f" ({fraction:.0%} of the frame)"
        reason = f"{SATELLITE_TAG}: {count}{parts}; {note}"
        evidence = {
            "streaks": [{k: s[k] for k in ("x0", "y0", "x1", "y1", "width", "significance") if k in s}
                        for s in streaks],
            "masked_fraction": fraction,
            "yardstick": "the frame's own background rms per pixel",
        }
        out.append((frame["id"], SATELLITE_TAG, reason, evidence))
    return out
