"""Synthetic nights with known truth: the test bed and demo input of obsdb.

A night is a list of :class:`FrameSpec` (what each frame should be: band,
pointing group, quality kind, optional overrides), rendered into FITS files
that look like a calibrated CCD night, plus a ``truth.json`` that says exactly
where every star is in every frame and how each frame maps onto the reference.

Geometry
--------
Stars live in *sky pixel* coordinates, which coincide with the pixel grid of a
frame pointed at offset ``(0, 0)`` with no rotation.  A frame with pointing
offset ``o`` and rotation ``t`` (about the frame centre ``c``) maps its own
pixels to the sky by::

    sky = c + R(t) (p - c) + o

so a star at sky position ``S`` appears at ``p = c + R(-t) (S - c - o)``.
The truth transform from a frame to the reference (obsdb's convention,
``dx = x_reference - x_frame``) is then ``T_ref^-1 . T_frame``, returned as an
:class:`obsdb.imaging.transform.Transform` centred on the frame centre.

Stars are pixel-integrated Gaussians (differences of ``erf`` over each pixel
edge, so the rendered centroid is the true centre), trails are sums of such
Gaussians spaced evenly and symmetrically along a segment whose midpoint is
the true position.

Modules: :mod:`~obsdb.simulate.model` (specs, sky, detector),
:mod:`~obsdb.simulate.plan` (a night's plan), :mod:`~obsdb.simulate.frames`
(one frame's pixels), :mod:`~obsdb.simulate.truth` (the answer key),
:mod:`~obsdb.simulate.night` (a night written to disk) and
:mod:`~obsdb.simulate.scenarios` (the notebook's night, a night for QA).
"""

from obsdb.simulate.frames import render_streak, simulate_frame
from obsdb.simulate.model import IMAGE_TYPES, KINDS, SATURATE, Detector, FrameSpec, SkyField, make_detector, make_sky
from obsdb.simulate.night import simulate_night
from obsdb.simulate.plan import plan_night
from obsdb.simulate.scenarios import like_notebook_night, simulate_qa_night
from obsdb.simulate.truth import NightTruth

__all__ = [
    "FrameSpec",
    "SkyField",
    "Detector",
    "NightTruth",
    "plan_night",
    "simulate_night",
    "simulate_frame",
    "like_notebook_night",
    "simulate_qa_night",
    "make_sky",
    "make_detector",
    "render_streak",
    "KINDS",
    "IMAGE_TYPES",
    "SATURATE",
]
