"""The weights step: each light frame's stacking weights, relative to the frames of its set.

A set is the frames of one night, instrument, band and target (the group `obsdb qa` judges
together): Siril's FWHM and star-count weights are min-max normalised over the frames stacked, and
every weight is scaled to a mean of 1 over its set (:mod:`obsdb.imaging.weights` has the formulas).
All frames of a set are weighed, whatever their verdict, so that a weight does not change when a
person accepts or rejects another frame; the worst frame of a set has FWHM and star-count weight 0.
`obsdb qa` runs this step at its end; `render --weight` runs it for frames that lack current weights.
"""

from __future__ import annotations

SNR_STARS = 20
"""Brightest stars whose median S/N is a frame's S/N: enough for a stable median, few enough to be
well above the noise in a frame through thin cloud.  A set takes as many as its poorest frame has
(:func:`set_weights`): the median of a frame's 20 brightest stars is fainter than that of another's
8 brightest, and a frame that lost its faint stars to a bright sky would seem the better one (it
did, by 2.3 times, before the count was shared: docs/archive.md)."""


def frame_snr(fluxes, background_rms, fwhm, n_stars: int = SNR_STARS) -> float:
    """A frame's S/N: the median flux of its ``n_stars`` brightest stars over the sky noise in
    an aperture of radius FWHM, ``flux / (rms sqrt(pi) FWHM)`` (the stars' own photon noise left out,
    as for faint stars; the ratio between frames is what the weight uses).

    Examples
    --------
    >>> round(frame_snr([1000.0, 500.0, 10.0], 2.0, 3.0), 2)
    47.02
    """
    import numpy as np

    if fluxes is None or not background_rms or not fwhm or background_rms <= 0 or fwhm <= 0:
        return float("nan")
    flux = np.sort(np.asarray(fluxes, dtype=float)[np.isfinite(fluxes)])[::-1][:max(1, n_stars)]
    if not len(flux):
        return float("nan")
    return float(np.median(flux) / (background_rms * np.sqrt(np.pi) * fwhm))


def set_weights(members: list[dict]) -> list[dict]:
    """The weight rows of one set's frames (dicts of :meth:`WeightStore.weight_inputs`)."""
    import numpy as np

    from obsdb.imaging.weights import (WEIGHTS_VERSION, fwhm_weights, noise_weights, snr_weights,
                                       star_count_weights, weighted_fwhm)

    rms = np.array([_nan(m["background_rms"]) for m in members])
    fwhm = np.array([_nan(m["fwhm"]) for m in members])
    n_stars = np.array([_nan(m["n_stars"]) for m in members])
    # Siril penalises a frame by the stars it lost against the registration reference; before
    # registration the yardstick is the set's richest frame.
    n_reference = np.nanmax(n_stars) if np.isfinite(n_stars).any() else np.nan
    listed = [len(m["fluxes"]) for m in members if m["fluxes"] is not None and len(m["fluxes"])]
    shared = min([SNR_STARS, *listed])
    snr = np.array([frame_snr(m["fluxes"], m["background_rms"], m["fwhm"], shared) for m in members])
    columns = {"noise": noise_weights(rms), "fwhm": fwhm_weights(weighted_fwhm(fwhm, n_stars, n_reference)),
               "stars": star_count_weights(n_stars), "snr": snr_weights(snr)}
    rows = []
    for i, member in enumerate(members):
        row = {"frame_id": member["id"], "set_key": member["set_key"], "set_size": len(members),
               "algorithm": WEIGHTS_VERSION, "snr_value": _none(snr[i])}
        row.update({name: _none(values[i]) for name, values in columns.items()})
        rows.append(row)
    return rows


def compute_weights(db, *, nights=None, frame_ids=None) -> int:
    """Weigh every frame of the sets in ``nights`` (or of the sets ``frame_ids`` belong to); returns
    how many frames were weighed.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
    nights : str or list of str, optional
        Nights to weigh (default: every night).
    frame_ids : iterable of int, optional
        Weigh the sets these frames belong to instead.
    """
    from obsdb.catalog.weights import WeightStore

    store = WeightStore(db)
    inputs = store.weight_inputs(nights=nights, frame_ids=frame_ids)
    sets: dict[str, list[dict]] = {}
    for row in inputs:
        sets.setdefault(row["set_key"], []).append(row)
    rows = [row for members in sets.values() for row in set_weights(members)]
    store.store_weights(rows)
    return len(rows)


def ensure_weights(db, frame_ids) -> int:
    """Weigh the sets of the frames among ``frame_ids`` that have no current weights; returns how many
    frames were weighed (0 when every one had them)."""
    from obsdb.catalog.weights import WeightStore
    from obsdb.imaging.weights import WEIGHTS_VERSION

    missing = WeightStore(db).unweighted(frame_ids, WEIGHTS_VERSION)
    return compute_weights(db, frame_ids=missing) if missing else 0


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


def _none(value) -> float | None:
    import math

    return None if value is None or not math.isfinite(value) else float(value)
