"""SQLAlchemy 2 models of the obsdb catalog.

Every column carries a ``doc`` string so the schema documents itself.
Tables that record decisions (tags, shift steps, events) are append-only:
retraction sets a timestamp, nothing is deleted.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer,
                        MetaData, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Current time in UTC (stored naive, always UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Frame(Base):
    """One FITS file of the night, readable or not."""

    __tablename__ = "frame"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True, doc="Absolute path of the file.")
    file_name: Mapped[str] = mapped_column(String, doc="Base name of the file.")
    size: Mapped[int] = mapped_column(Integer, doc="File size in bytes.")
    mtime: Mapped[float] = mapped_column(Float, doc="Modification time (POSIX seconds) when measured.")
    sha256: Mapped[str | None] = mapped_column(String(64), doc="SHA-256 of the file's bytes.")
    number: Mapped[int | None] = mapped_column(Integer, index=True, doc="Frame number from the file name.")
    band: Mapped[str | None] = mapped_column(String, index=True, doc="Filter band (FILTER keyword).")
    image_type: Mapped[str | None] = mapped_column(
        String, index=True, doc="Normalised type: light, bias, dark, flat or unknown.")
    object: Mapped[str | None] = mapped_column(String, doc="OBJECT keyword.")
    exptime: Mapped[float | None] = mapped_column(Float, doc="Exposure time in seconds.")
    date_obs: Mapped[datetime | None] = mapped_column(DateTime, index=True, doc="Start of exposure, UTC.")
    airmass: Mapped[float | None] = mapped_column(Float, doc="AIRMASS keyword.")
    width: Mapped[int | None] = mapped_column(Integer, doc="NAXIS1, pixels.")
    height: Mapped[int | None] = mapped_column(Integer, doc="NAXIS2, pixels.")
    bitpix: Mapped[int | None] = mapped_column(Integer, doc="BITPIX of the stored data.")
    header: Mapped[dict | None] = mapped_column(JSON, doc="Full header of the image HDU.")
    readable: Mapped[bool] = mapped_column(Boolean, default=True, doc="False when the file could not be read.")
    error: Mapped[str | None] = mapped_column(Text, doc="Why the file could not be read.")
    ingested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, doc="First ingest, UTC.")
    measured_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, doc="Last measurement, UTC.")

    stats: Mapped[FrameStats | None] = relationship(
        back_populates="frame", uselist=False, cascade="all, delete-orphan")
    metrics: Mapped[FrameMetrics | None] = relationship(
        back_populates="frame", uselist=False, cascade="all, delete-orphan")
    tags: Mapped[list[Tag]] = relationship(back_populates="frame", order_by="Tag.id")

    @property
    def label(self) -> int | str:
        """How the user names this frame: its number, or its file name when it has none."""
        return self.number if self.number is not None else self.file_name


class FrameStats(Base):
    """Pixel statistics of a frame, from the ingest read."""

    __tablename__ = "frame_stats"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    min: Mapped[float] = mapped_column(Float, doc="Minimum finite pixel value.")
    max: Mapped[float] = mapped_column(Float, doc="Maximum finite pixel value.")
    mean: Mapped[float] = mapped_column(Float, doc="Mean of finite pixels.")
    median: Mapped[float] = mapped_column(Float, doc="Exact median of finite pixels.")
    std: Mapped[float] = mapped_column(Float, doc="Standard deviation of finite pixels.")
    background: Mapped[float] = mapped_column(Float, doc="Sigma-clipped background level.")
    background_rms: Mapped[float] = mapped_column(Float, doc="Sigma-clipped background rms.")
    n_nan: Mapped[int] = mapped_column(Integer, doc="Count of NaN/inf pixels.")
    n_saturated: Mapped[int] = mapped_column(Integer, doc="Count of pixels at or above saturation.")
    saturation: Mapped[float | None] = mapped_column(Float, doc="Saturation level used.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the statistics algorithm.")

    frame: Mapped[Frame] = relationship(back_populates="stats")


class FrameMetrics(Base):
    """Quality metrics of a frame: stars, PSF size and shape, sky, transparency."""

    __tablename__ = "frame_metrics"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    n_stars: Mapped[int] = mapped_column(Integer, doc="Stars detected (cosmic rays and hot pixels excluded).")
    fwhm: Mapped[float | None] = mapped_column(Float, doc="Median FWHM of the brightest unsaturated stars, px.")
    hfd: Mapped[float | None] = mapped_column(Float, doc="Median half-flux diameter, px.")
    elongation: Mapped[float | None] = mapped_column(Float, doc="Median a/b of the brightest stars.")
    background: Mapped[float | None] = mapped_column(Float, doc="Background level, ADU.")
    background_rms: Mapped[float | None] = mapped_column(Float, doc="Background rms, ADU.")
    background_gradient: Mapped[float | None] = mapped_column(Float, doc="Background peak-to-peak across the frame, ADU.")
    transparency: Mapped[float | None] = mapped_column(Float, doc="Star flux relative to the band's reference frame.")
    stars: Mapped[list | None] = mapped_column(JSON, doc="Brightest stars as [x, y, flux] for transparency.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the metrics algorithm.")
    measured_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, doc="When measured, UTC.")
    assessed_at: Mapped[datetime | None] = mapped_column(
        DateTime, doc="When the QA rules last judged these metrics, UTC; NULL until `obsdb qa`.")

    frame: Mapped[Frame] = relationship(back_populates="metrics")


class Tag(Base):
    """A tag on a frame, manual or automatic. Append-only: untag retracts."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String, index=True, doc="Tag name, e.g. cloud, trail, reject.")
    source: Mapped[str] = mapped_column(String, doc="'manual', 'plan' or 'rule:<name>'.")
    reason: Mapped[str] = mapped_column(Text, doc="Why: for rules, the value and the threshold.")
    author: Mapped[str] = mapped_column(String, doc="Who (login name, or obsdb for rules).")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, doc="When tagged, UTC.")
    retracted_at: Mapped[datetime | None] = mapped_column(DateTime, doc="When retracted, UTC; NULL while active.")
    retracted_by: Mapped[str | None] = mapped_column(String, doc="Who retracted it.")
    retract_reason: Mapped[str | None] = mapped_column(Text, doc="Why it was retracted.")

    frame: Mapped[Frame] = relationship(back_populates="tags")


class Event(Base):
    """Every command that changed the catalog."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, doc="When, UTC.")
    user: Mapped[str] = mapped_column(String, doc="Login name of who ran it.")
    command: Mapped[str] = mapped_column(String, doc="The command, e.g. ingest.")
    summary: Mapped[str] = mapped_column(Text, doc="One line of what changed.")
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id", ondelete="SET NULL"), index=True,
                                                 doc="The frame concerned, if one.")
    details: Mapped[dict | None] = mapped_column(JSON, doc="Structured details (old and new hash, ...).")


class Decision(Base):
    """A night-level decision (reference frame, reference star, fine box), append-only:
    the newest row per key is current, older rows are its history."""

    __tablename__ = "decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String, index=True, doc="reference_frame, reference_star or fine_box.")
    value: Mapped[dict] = mapped_column(JSON, doc="The decision, e.g. {'frame': 4056, 'x': 681, 'y': 409}.")
    source: Mapped[str] = mapped_column(String, doc="'manual', 'plan' or 'auto'.")
    author: Mapped[str] = mapped_column(String, doc="Who decided.")
    note: Mapped[str | None] = mapped_column(Text, doc="Why, or where it came from (plan file).")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PointingGroup(Base):
    """Frames that share a pointing, with the box used to centroid within it."""

    __tablename__ = "pointing_group"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True, doc="Group name.")
    band: Mapped[str | None] = mapped_column(String, doc="Band, when the group has one.")
    reference_frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id"), doc="Group's reference member.")
    box_x0: Mapped[int | None] = mapped_column(Integer, doc="Centroid box, half-open, 0-based.")
    box_x1: Mapped[int | None] = mapped_column(Integer)
    box_y0: Mapped[int | None] = mapped_column(Integer)
    box_y1: Mapped[int | None] = mapped_column(Integer)
    ref_star_x: Mapped[float | None] = mapped_column(Float, doc="Position of the night's reference star in this group.")
    ref_star_y: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String, doc="'auto', 'manual' or 'plan'.")
    author: Mapped[str] = mapped_column(String, doc="Who defined it.")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(back_populates="group", cascade="all, delete-orphan")


class GroupMember(Base):
    """Membership of a frame in a pointing group (a frame is in at most one)."""

    __tablename__ = "group_member"

    group_id: Mapped[int] = mapped_column(ForeignKey("pointing_group.id", ondelete="CASCADE"), primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)

    group: Mapped[PointingGroup] = relationship(back_populates="members")

    __table_args__ = (UniqueConstraint("frame_id"),)


class AlignmentRun(Base):
    """One run of `obsdb align`: method, reference and parameters."""

    __tablename__ = "alignment_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String, doc="auto or staged.")
    reference_frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id"), doc="The night's reference.")
    parameters: Mapped[dict | None] = mapped_column(JSON, doc="Everything needed to repeat the run.")
    software_version: Mapped[str] = mapped_column(String)
    author: Mapped[str] = mapped_column(String)


class Centroid(Base):
    """A measured star position, so any shift can be re-derived from the catalog."""

    __tablename__ = "centroid"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("alignment_run.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String, doc="'box' or 'detection'.")
    method: Mapped[str] = mapped_column(String, doc="centroid_2dg, centroid_com, centroid_quadratic, windowed, ...")
    box_x0: Mapped[int | None] = mapped_column(Integer)
    box_x1: Mapped[int | None] = mapped_column(Integer)
    box_y0: Mapped[int | None] = mapped_column(Integer)
    box_y1: Mapped[int | None] = mapped_column(Integer)
    x: Mapped[float] = mapped_column(Float, doc="0-based column.")
    y: Mapped[float] = mapped_column(Float, doc="0-based row.")
    flux: Mapped[float | None] = mapped_column(Float)
    matched_x: Mapped[float | None] = mapped_column(Float, doc="Matched reference star position, if matched.")
    matched_y: Mapped[float | None] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShiftStep(Base):
    """One step of a frame's shift in a run; the frame's shift is the sum of its steps."""

    __tablename__ = "shift_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("alignment_run.id", ondelete="CASCADE"), index=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), index=True)
    stage: Mapped[int] = mapped_column(Integer, doc="1, 2, 3 for the staged method; 1 for auto.")
    kind: Mapped[str] = mapped_column(String, doc="within-group, group-offset, fine, auto or manual.")
    method: Mapped[str] = mapped_column(String, doc="stars, xcorr, centroid_2dg, manual, ...")
    dx: Mapped[float] = mapped_column(Float, doc="x_reference - x_frame, px.")
    dy: Mapped[float] = mapped_column(Float, doc="y_reference - y_frame, px.")
    rotation_deg: Mapped[float] = mapped_column(Float, default=0.0, doc="Rotation about the frame centre.")
    scale: Mapped[float] = mapped_column(Float, default=1.0)
    reference_frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id"), doc="Frame this step refers to.")
    centroid_id: Mapped[int | None] = mapped_column(ForeignKey("centroid.id"), doc="The frame's centroid used.")
    reference_centroid_id: Mapped[int | None] = mapped_column(ForeignKey("centroid.id"))
    n_matched: Mapped[int | None] = mapped_column(Integer, doc="Stars matched (automatic method).")
    residual_rms: Mapped[float | None] = mapped_column(Float, doc="Fit residual rms, px.")
    parameters: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_shift_step_run_frame", "run_id", "frame_id"),)


class RenderOutput(Base):
    """A file written by `obsdb render`: an aligned frame or a stack."""

    __tablename__ = "render_output"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("alignment_run.id", ondelete="SET NULL"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String, doc="aligned, stack or preview.")
    band: Mapped[str | None] = mapped_column(String)
    path: Mapped[str] = mapped_column(String)
    sha256: Mapped[str] = mapped_column(String(64))
    interpolation: Mapped[str | None] = mapped_column(String)
    parameters: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
