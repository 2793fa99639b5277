"""Planning a night: the frames' bands, pointing groups, kinds and drawn conditions, before any pixel."""

from __future__ import annotations

import math

import numpy as np

from obsdb.simulate.model import FrameSpec, _rng


def plan_night(*, seed=0, n_frames: int = 36, bands=("B", "V", "R"), n_groups: int = 4,
               first_number: int = 1001, cloud_fraction: float = 0.15, trail_fraction: float = 0.1,
               defocus_fraction: float = 0.1, max_group_offset: float = 150.0,
               max_rotation_deg: float = 0.0) -> list[FrameSpec]:
    """Plan a night: the sequence of frames, their bands, groups, kinds and pointings.

    Frames come in contiguous runs, one per (group, band), groups in turn and
    bands in turn inside each group, like a real night.  Clouds and focus drift
    come in spells of consecutive frames, trails hit single frames.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Seed of the plan.
    n_frames : int
        Number of frames.
    bands : sequence of str
        Filters, in the order they are taken within a group.
    n_groups : int
        Number of pointing groups.
    first_number : int
        Number of the first frame; numbers are consecutive.
    cloud_fraction, trail_fraction, defocus_fraction : float
        Approximate fraction of frames of each bad kind.
    max_group_offset : float
        Largest pointing offset of a group from the first one, in pixels.
    max_rotation_deg : float
        Largest absolute rotation of a frame (the first frame is never rotated).

    Returns
    -------
    list of FrameSpec
        In time order.  The first frame is ``"good"`` and every band with at
        least 3 frames has at least 3 good ones.  Offsets and rotations are set;
        seeing, sky and trail parameters are left ``None`` for
        :func:`simulate_night` to draw.
    """
    rng = _rng(seed)
    bands = tuple(bands)
    if n_frames < 1 or not bands or n_groups < 1:
        raise ValueError("need n_frames >= 1, at least one band and n_groups >= 1")
    runs = [(g, b) for g in range(n_groups) for b in bands]
    runs = runs[:n_frames]
    per_run = np.full(len(runs), n_frames // len(runs))
    per_run[: n_frames % len(runs)] += 1
    specs = []
    number = first_number
    for (group, band), count in zip(runs, per_run):
        for _ in range(count):
            specs.append(FrameSpec(number=number, band=band, group=group))
            number += 1

    kinds = np.array(["good"] * n_frames, dtype=object)
    free = np.ones(n_frames, dtype=bool)
    free[0] = False  # the reference frame must be good

    def spell(n_wanted, max_spells):
        # Consecutive runs of free frames, as a passing cloud or a focus drift would give.
        chosen = []
        n_spells = min(max_spells, n_wanted)
        sizes = np.full(n_spells, n_wanted // n_spells) if n_spells else []
        for i in range(n_wanted % n_spells if n_spells else 0):
            sizes[i] += 1
        for size in sizes:
            starts = [i for i in range(1, n_frames - size + 1) if free[i:i + size].all()]
            if not starts:
                break
            s = int(rng.choice(starts))
            free[s:s + size] = False
            chosen.extend(range(s, s + size))
        return chosen

    kinds[spell(round(cloud_fraction * n_frames), 2)] = "cloud"
    kinds[spell(round(defocus_fraction * n_frames), 1)] = "defocus"
    n_trail = min(round(trail_fraction * n_frames), int(free.sum()))
    if n_trail:
        trail = rng.choice(np.flatnonzero(free), size=n_trail, replace=False)
        kinds[trail] = "trail"
        free[trail] = False

    band_of = np.array([s.band for s in specs], dtype=object)
    for band in bands:
        idx = np.flatnonzero(band_of == band)
        n_good = int((kinds[idx] == "good").sum())
        bad = [i for i in idx if kinds[i] != "good"]
        while n_good < min(3, len(idx)) and bad:
            kinds[bad.pop(int(rng.integers(len(bad))))] = "good"
            n_good += 1
    for spec, kind in zip(specs, kinds):
        spec.kind = str(kind)
    _draw_pointing(specs, rng, max_group_offset=max_group_offset, max_rotation_deg=max_rotation_deg)
    return specs


def _draw_pointing(specs, rng, *, max_group_offset, max_rotation_deg):
    """Fill missing offsets and rotations: group offsets plus a sub-pixel drift per frame."""
    group_offset = {}
    position = {}
    for i, spec in enumerate(specs):
        g = spec.group
        if g not in group_offset:
            if not group_offset:
                base = rng.uniform(-0.5, 0.5, 2)
            else:
                r = max_group_offset * math.sqrt(rng.uniform(0.1, 1.0))
                a = rng.uniform(0, 2 * math.pi)
                base = np.array([r * math.cos(a), r * math.sin(a)]) + rng.uniform(-0.5, 0.5, 2)
            group_offset[g] = base
            position[g] = base.copy()
        else:
            # Tracking drift: 0.2-1 px per frame in a random direction.
            step = rng.uniform(0.2, 1.0)
            a = rng.uniform(0, 2 * math.pi)
            position[g] = position[g] + step * np.array([math.cos(a), math.sin(a)])
        if spec.offset is None:
            spec.offset = (float(position[g][0]), float(position[g][1]))
        if spec.rotation_deg is None:
            spec.rotation_deg = 0.0 if i == 0 or max_rotation_deg == 0 else float(
                rng.uniform(-max_rotation_deg, max_rotation_deg))
    return specs


def _draw_conditions(specs, rng):
    """Fill missing seeing, sky, transparency and trail parameters from night-wide distributions."""
    night_fwhm = rng.uniform(2.5, 3.0)
    night_sky = rng.uniform(400.0, 900.0)
    # One generator per frame, so editing one frame's kind leaves the others' draws alone.
    for spec, rng in zip(specs, rng.spawn(len(specs))):
        kind = spec.kind
        if spec.fwhm is None:
            fwhm = float(np.clip(night_fwhm * math.exp(rng.normal(0, 0.06)), 2.2, 3.5))
            if kind == "defocus":
                fwhm = night_fwhm * rng.uniform(2.0, 3.0)
            spec.fwhm = float(fwhm)
        if spec.background is None:
            spec.background = float(rng.uniform(5000.0, 20000.0) if kind == "cloud"
                                    else night_sky * rng.uniform(0.85, 1.3))
        if spec.transparency is None:
            spec.transparency = float(rng.uniform(0.1, 0.6) if kind == "cloud" else rng.uniform(0.9, 1.0))
        if spec.trail_length is None:
            spec.trail_length = float(rng.uniform(10.0, 30.0)) if kind == "trail" else 0.0
        if spec.trail_angle_deg is None:
            spec.trail_angle_deg = float(rng.uniform(0.0, 180.0)) if kind == "trail" else 0.0
    return specs
