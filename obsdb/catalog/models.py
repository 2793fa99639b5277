"""SQLAlchemy 2 models of the obsdb catalog.

Every column carries a ``doc`` string so the schema documents itself.
Tables that record decisions (tags, shift steps, events) are append-only:
retraction sets a timestamp, nothing is deleted.

The schema is the same on SQLite and PostgreSQL: timestamps are timezone-aware
and stored in UTC (:class:`UtcDateTime`), JSON is JSONB on PostgreSQL
(:class:`JSONType`), file sizes are 64-bit, enumerated columns have CHECK
constraints, and no column is named after an SQL reserved word.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index,
                        Integer, LargeBinary, MetaData, String, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES
from obsdb.catalog.records import PENDING_DIGEST  # noqa: F401  (models and steps share it)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class JSONType(TypeDecorator):
    """JSON on SQLite, JSONB (indexable, compact) on PostgreSQL.

    A decorator rather than ``JSON().with_variant(JSONB(), "postgresql")`` so
    that the PostgreSQL dialect is imported only when a PostgreSQL catalog is
    opened: importing it costs every SQLite query command ~15 ms of start-up.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

TAG_SOURCE_RULE_PREFIX = "rule:"

SHIFT_KINDS = ("within-group", "group-offset", "fine", "auto", "manual")
"""Kinds of shift step (see :class:`ShiftStep`)."""

NIGHT_SOURCES = ("date-obs", "folder", "manual")
"""How a night was assigned: from DATE-OBS, from the folder (no usable date), or ``ingest --night``."""


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A timezone-aware timestamp stored in UTC.

    PostgreSQL keeps it as ``timestamptz``; SQLite, which has no time zones,
    as naive UTC text.  Naive values given to the catalog are taken as UTC;
    values read back are always aware (UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _natural_path(context) -> str | None:
    """The default of ``frame.sort_key``: the natural-order key of the row's path."""
    from obsdb.text import natural_key

    path = context.get_current_parameters().get("path")
    return None if path is None else natural_key(path)


def made_on(schema_object, dialect: str) -> bool:
    """Whether a table's index or constraint is made on ``dialect`` (its ``ddl_if``).

    ``Base.metadata.create_all`` honours ``ddl_if``; Alembic's autogenerate comparison does not, and
    would report an index made on PostgreSQL only as missing from a SQLite catalog: the migrations'
    environment and their test pass this as ``include_object``.
    """
    condition = getattr(schema_object, "_ddl_if", None)
    if condition is None or condition.dialect is None:
        return True
    return dialect in ((condition.dialect,) if isinstance(condition.dialect, str) else tuple(condition.dialect))


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Night(Base):
    """An observing session: the frames taken between one noon and the next at the site."""

    __tablename__ = "night"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True,
                                      doc="Local date at the start of the night (YYYY-MM-DD), or a given name.")
    source: Mapped[str] = mapped_column(String, doc="How frames were assigned: date-obs, folder or manual.")
    site: Mapped[str | None] = mapped_column(String, doc="Site name from the header (SITENAME/OBSERVAT), if any.")
    longitude: Mapped[float | None] = mapped_column(
        Float, doc="Site longitude used for local noon, degrees east; NULL: UTC - 12 h was used.")
    latitude: Mapped[float | None] = mapped_column(
        Float, doc="Site latitude, degrees north (SITELAT, LAT-OBS, OBSGEO-*, or [site] in obsdb.toml); "
                   "NULL when unknown.  With the longitude, it places the Sun and the Moon.")
    elevation: Mapped[float | None] = mapped_column(Float, doc="Site height above sea level, m; NULL when unknown.")
    first_date_obs: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="Earliest DATE-OBS, UTC.")
    last_date_obs: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="Latest DATE-OBS, UTC.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When first seen, UTC.")

    __table_args__ = (CheckConstraint(_in("source", NIGHT_SOURCES), name="source"),)


class Instrument(Base):
    """A telescope, camera and read-out mode: QA references are never pooled across instruments."""

    __tablename__ = "instrument"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String, unique=True,
                                     doc="Canonical identity: telescope|camera|WIDTHxHEIGHT|binning.")
    telescope: Mapped[str | None] = mapped_column(String, doc="TELESCOP keyword.")
    camera: Mapped[str | None] = mapped_column(String, doc="INSTRUME keyword.")
    width: Mapped[int | None] = mapped_column(Integer, doc="Detector read-out width (NAXIS1), px.")
    height: Mapped[int | None] = mapped_column(Integer, doc="Detector read-out height (NAXIS2), px.")
    binning_x: Mapped[int | None] = mapped_column(Integer, doc="XBINNING keyword.")
    binning_y: Mapped[int | None] = mapped_column(Integer, doc="YBINNING keyword.")
    pixel_size: Mapped[float | None] = mapped_column(Float, doc="Pixel size (XPIXSZ/PIXSIZE1), micron.")

    @property
    def label(self) -> str:
        """A short human name: telescope / camera, WxH."""
        parts = [p for p in (self.telescope, self.camera) if p]
        shape = f"{self.width}x{self.height}" if self.width else "?"
        return f"{' / '.join(parts) or 'unknown'} {shape}"


class Frame(Base):
    """One FITS file, readable or not, in one night."""

    __tablename__ = "frame"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night_id: Mapped[int] = mapped_column(ForeignKey("night.id"), doc="The night the frame belongs to.")
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instrument.id"), index=True,
                                                      doc="Telescope and camera; NULL when unreadable.")
    path: Mapped[str] = mapped_column(String, unique=True, doc="Absolute path of the file.")
    file_name: Mapped[str] = mapped_column(String, doc="Base name of the file.")
    size: Mapped[int] = mapped_column(BigInteger, doc="File size in bytes.")
    mtime: Mapped[float] = mapped_column(Float, doc="Modification time (POSIX seconds) when measured.")
    sha256: Mapped[str | None] = mapped_column(String(64), doc="SHA-256 of the file's bytes.")
    number: Mapped[int | None] = mapped_column(Integer, index=True, doc="Frame number from the file name.")
    band: Mapped[str | None] = mapped_column(String, index=True, doc="Filter band (FILTER keyword).")
    image_type: Mapped[str | None] = mapped_column(
        String, doc="Normalised type: light, bias, dark, flat or unknown.")
    object: Mapped[str | None] = mapped_column(String, doc="OBJECT keyword.")
    exptime: Mapped[float | None] = mapped_column(Float, doc="Exposure time in seconds.")
    date_obs: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True, doc="Start of exposure, UTC.")
    airmass: Mapped[float | None] = mapped_column(Float, doc="AIRMASS keyword.")
    width: Mapped[int | None] = mapped_column(Integer, doc="NAXIS1, pixels.")
    height: Mapped[int | None] = mapped_column(Integer, doc="NAXIS2, pixels.")
    bitpix: Mapped[int | None] = mapped_column(Integer, doc="BITPIX of the stored data.")
    header: Mapped[dict | None] = mapped_column(JSONType(), doc="Full header of the image HDU.")
    readable: Mapped[bool] = mapped_column(Boolean, default=True, doc="False when the file could not be read.")
    error: Mapped[str | None] = mapped_column(Text, doc="Why the file could not be read.")
    ingested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="First ingest, UTC.")
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="Last measurement, UTC.")
    keywords: Mapped[dict | None] = mapped_column(
        JSONType(), doc="Which header card(s) gave each column, e.g. {'date_obs': 'DATE-OBS+UTCSTART', "
                        "'band': 'FILTNAME'}; a column absent here had no card.")
    number_shared: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0",
        doc="Another file of the same night has this number: the frame is named by its file name.")
    sort_key: Mapped[str | None] = mapped_column(
        String, default=_natural_path,
        doc="The path with every run of digits zero-padded (obsdb.text.natural_key): listings order by it, "
            "so that STAR_FOCUS_2 comes before STAR_FOCUS_10.")
    status: Mapped[str] = mapped_column(
        String(8), default="pending", server_default="pending",
        doc="accepted, rejected or pending: the status rule (obsdb.catalog.status) as it stands, kept up to "
            "date in the transaction of every write it depends on (obsdb.catalog.maintained).")

    night: Mapped[Night] = relationship(lazy="joined", innerjoin=True)
    instrument: Mapped[Instrument | None] = relationship()
    stats: Mapped[FrameStats | None] = relationship(
        back_populates="frame", uselist=False, cascade="all, delete-orphan")
    metrics: Mapped[FrameMetrics | None] = relationship(
        back_populates="frame", uselist=False, cascade="all, delete-orphan",
        foreign_keys="FrameMetrics.frame_id")
    star_list: Mapped[StarList | None] = relationship(
        back_populates="frame", uselist=False, cascade="all, delete-orphan")
    tags: Mapped[list[Tag]] = relationship(back_populates="frame", order_by="Tag.id")

    __table_args__ = (
        Index("ix_frame_night_band_type", "night_id", "band", "image_type"),
        Index("ix_frame_night_number", "night_id", "number"),
        # Covers `obsdb nights`' bands, targets and instruments of every night without reading frame rows.
        Index("ix_frame_night_facets", "night_id", "band", "object", "instrument_id"),
        # One status (and band) of a batch of nights: `obsdb rejected --band V --night all` reads the
        # frames it lists and no others; per-night status counts read this index alone.
        Index("ix_frame_night_status_band", "night_id", "status", "band"),
        # `obsdb rejected` over an archive, from the index alone on PostgreSQL: the rejected frames
        # (a fifth of the rows), with every column the listing shows and orders by but the read
        # error (readers.rejected_reason_rows), so that no frame row, most of a page each with its
        # header, is read: PostgreSQL's time for `rejected --band V --night all` on 1,000,000 frames,
        # 651 -> 407 ms.  Not on SQLite, which has no INCLUDE and gains nothing from a covering index
        # here (its cost is building the rows' Python values).  Alembic's comparison does not read
        # ddl_if: see made_on.  Its WHERE and INCLUDE: POSTGRESQL_INDEX_OPTIONS.
        Index("ix_frame_rejected", "night_id", "band").ddl_if(dialect="postgresql"),
    )

    @property
    def label(self) -> int | str:
        """How the user names this frame within its night: its number, or its file name (no number, or
        one that other files of the night share)."""
        from obsdb.catalog.labels import frame_name

        return frame_name(self.number, self.file_name, self.number_shared)

    @property
    def night_label(self) -> str:
        """``NIGHT:NUMBER`` (or ``NIGHT:file name``): unique across nights."""
        from obsdb.catalog.labels import frame_label

        return frame_label(self.night.name, self.number, self.file_name, qualified=True, shared=self.number_shared)


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
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the statistics algorithm (STATS_VERSION).")

    frame: Mapped[Frame] = relationship(back_populates="stats")


class FrameMetrics(Base):
    """Quality metrics of a frame: stars, PSF size and shape, sky, transparency."""

    __tablename__ = "frame_metrics"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    n_stars: Mapped[int] = mapped_column(Integer, doc="Stars detected (cosmic rays and hot pixels excluded).")
    fwhm: Mapped[float | None] = mapped_column(
        Float, doc="Median round-equivalent FWHM, 2.3548 sqrt((a^2+b^2)/2), of the brightest clean stars, px.")
    hfd: Mapped[float | None] = mapped_column(Float, doc="Median half-flux diameter, px.")
    elongation: Mapped[float | None] = mapped_column(Float, doc="Median a/b of the brightest stars.")
    background: Mapped[float | None] = mapped_column(Float, doc="Background level, ADU.")
    background_rms: Mapped[float | None] = mapped_column(Float, doc="Background rms, ADU.")
    background_gradient: Mapped[float | None] = mapped_column(Float, doc="Background peak-to-peak across the frame, ADU.")
    transparency: Mapped[float | None] = mapped_column(
        Float, doc="Star flux relative to the transparency reference of its night, instrument and band.")
    transparency_reference_id: Mapped[int | None] = mapped_column(
        ForeignKey("frame.id", ondelete="SET NULL"), doc="The frame transparency was measured against.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the metrics algorithm (METRICS_VERSION).")
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When measured, UTC.")
    assessed_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="When the QA rules last judged these metrics, UTC; NULL until `obsdb qa`.")
    n_streaks: Mapped[int | None] = mapped_column(
        Integer, doc="Straight streaks (satellites, aircraft) found across the frame; NULL: not searched.")
    calibration: Mapped[str | None] = mapped_column(
        String, doc="Masters the pixels were calibrated with before measuring, e.g. 'bias 1, flat 3' "
                    "(obsdb.catalog.masters.calibration_signature); NULL: measured on the raw pixels.")

    frame: Mapped[Frame] = relationship(back_populates="metrics", foreign_keys=[frame_id])


class StarList(Base):
    """A frame's detected stars, measured once at ingest, as one compact binary array.

    ``data`` holds a little-endian numpy structured array of
    :data:`obsdb.imaging.stars.STAR_DTYPE` (the brightest stars, refined
    positions, flux, peak, shape, HFD, flags): one row per frame instead of
    one per star, chosen by measurement (see the README).
    """

    __tablename__ = "star_list"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    n_stars: Mapped[int] = mapped_column(Integer, doc="Stars in the list.")
    data: Mapped[bytes] = mapped_column(LargeBinary, doc="STAR_DTYPE records, little-endian, brightest first.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the detection algorithm (STARS_VERSION).")
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When detected, UTC.")

    frame: Mapped[Frame] = relationship(back_populates="star_list")


class Streak(Base):
    """A straight streak across a frame (a satellite or an aircraft), found in the ingest read.

    End points are 0-based pixel coordinates of the streak's centre line where it
    enters and leaves the frame; render masks ``width`` pixels around the line
    before it stacks.
    """

    __tablename__ = "streak"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), index=True)
    x0: Mapped[float] = mapped_column(Float, doc="First end point, 0-based column.")
    y0: Mapped[float] = mapped_column(Float, doc="First end point, 0-based row.")
    x1: Mapped[float] = mapped_column(Float, doc="Second end point, 0-based column.")
    y1: Mapped[float] = mapped_column(Float, doc="Second end point, 0-based row.")
    width: Mapped[float] = mapped_column(Float, doc="Full width to mask across the line, px.")
    significance: Mapped[float | None] = mapped_column(
        Float, doc="Mean excess along the line over the background rms (signal-to-noise per pixel).")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the streak detector (STREAKS_VERSION).")
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When found, UTC.")


class Tag(Base):
    """A tag on a frame, manual or automatic. Append-only: untag retracts."""

    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String, index=True, doc="Tag name, e.g. cloud, trail, reject.")
    source: Mapped[str] = mapped_column(String, doc="'manual', 'plan' or 'rule:<name>'.")
    reason: Mapped[str] = mapped_column(Text, doc="Why: for rules, the value and the threshold.")
    author: Mapped[str] = mapped_column(String, doc="Who (login name, or obsdb for rules).")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When tagged, UTC.")
    retracted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="When retracted, UTC; NULL while active.")
    retracted_by: Mapped[str | None] = mapped_column(String, doc="Who retracted it.")
    retract_reason: Mapped[str | None] = mapped_column(Text, doc="Why it was retracted.")
    evidence: Mapped[dict | None] = mapped_column(
        JSONType(), doc="For rules: the numbers behind the reason and the yardstick they were measured "
                        "against, e.g. {'value': 3.2, 'threshold': 3.0, 'yardstick': {...}}.")
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("alignment_run.id", ondelete="CASCADE"), index=True,
        doc="The alignment run a tag belongs to (`unregistered`): it speaks for that run only.")

    frame: Mapped[Frame] = relationship(back_populates="tags")

    __table_args__ = (
        CheckConstraint("source IN ('manual', 'plan', 'web') OR source LIKE 'rule:%'", name="source"),
        # Status is an EXISTS over a frame's active tags: this index answers it without the retracted rows.
        # Its WHERE on PostgreSQL: POSTGRESQL_INDEX_OPTIONS.
        Index("ix_tag_active_frame", "frame_id", "name", sqlite_where=retracted_at.is_(None)),
    )


class Event(Base):
    """Every command that changed the catalog."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When, UTC.")
    author: Mapped[str] = mapped_column(String, doc="Login name of who ran it.")
    command: Mapped[str] = mapped_column(String, index=True, doc="The command, e.g. ingest.")
    summary: Mapped[str] = mapped_column(Text, doc="One line of what changed.")
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id", ondelete="SET NULL"), index=True,
                                                 doc="The frame concerned, if one.")
    night_id: Mapped[int | None] = mapped_column(ForeignKey("night.id", ondelete="SET NULL"),
                                                 doc="The night concerned, if one.")
    details: Mapped[dict | None] = mapped_column(JSONType(), doc="Structured details (old and new hash, ...).")


class Decision(Base):
    """A night-level decision (reference frame, reference star, fine box), append-only:
    the newest row per night and key is current, older rows are its history."""

    __tablename__ = "decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night_id: Mapped[int | None] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"),
                                                 doc="The night decided for.")
    key: Mapped[str] = mapped_column(String, doc="reference_frame, reference_star or fine_box.")
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id", ondelete="SET NULL"),
                                                 doc="The frame a reference_frame decision names.")
    value: Mapped[dict] = mapped_column(JSONType(), doc="The decision as given, e.g. {'frame': 4056, 'x': 681}.")
    source: Mapped[str] = mapped_column(String, doc="'manual', 'plan' or 'auto'.")
    author: Mapped[str] = mapped_column(String, doc="Who decided.")
    note: Mapped[str | None] = mapped_column(Text, doc="Why, or where it came from (plan file).")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_decision_night_key", "night_id", "key"),
        CheckConstraint(_in("key", ("reference_frame", "reference_star", "fine_box")), name="key"),
        CheckConstraint(_in("source", ("manual", "plan", "auto")), name="source"),
    )


class PointingGroup(Base):
    """Frames of one night that share a pointing, with the box used to centroid within it."""

    __tablename__ = "pointing_group"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night_id: Mapped[int] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"), doc="The group's night.")
    name: Mapped[str] = mapped_column(String, doc="Group name, unique within the night.")
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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(back_populates="group", cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("night_id", "name"),
        CheckConstraint(_in("source", ("auto", "manual", "plan")), name="source"),
    )


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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String, doc="auto or staged.")
    night_id: Mapped[int | None] = mapped_column(
        ForeignKey("night.id", ondelete="SET NULL"), index=True,
        doc="The night aligned; NULL for a run across nights onto one reference.")
    target: Mapped[str | None] = mapped_column(String, doc="The OBJECT the run was restricted to, if one.")
    reference_frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id"), doc="The run's reference.")
    parameters: Mapped[dict | None] = mapped_column(JSONType(), doc="Everything needed to repeat the run.")
    software_version: Mapped[str] = mapped_column(String, doc="obsdb version.")
    algorithm: Mapped[str | None] = mapped_column(String, doc="Registration algorithm (REGISTER_VERSION).")
    author: Mapped[str] = mapped_column(String)

    __table_args__ = (CheckConstraint(_in("method", ("auto", "staged")), name="method"),)


class Centroid(Base):
    """A star position used by a run, so any shift can be re-derived from the catalog.

    Box centroids carry their position; a star matched by the automatic
    method points at its row in the frame's stored :class:`StarList`
    (``star_index``) and at the reference's matched star
    (``reference_star_index``) instead of copying them.
    """

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
    x: Mapped[float | None] = mapped_column(Float, doc="0-based column (box centroids).")
    y: Mapped[float | None] = mapped_column(Float, doc="0-based row (box centroids).")
    flux: Mapped[float | None] = mapped_column(Float)
    star_index: Mapped[int | None] = mapped_column(Integer, doc="Row of the frame's star list (detections).")
    reference_star_index: Mapped[int | None] = mapped_column(
        Integer, doc="Row of the reference's star list it matched, if matched.")
    matched_x: Mapped[float | None] = mapped_column(Float, doc="Matched reference star position (box method).")
    matched_y: Mapped[float | None] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("source", ("box", "detection")), name="source"),
        CheckConstraint("(x IS NOT NULL AND y IS NOT NULL) OR star_index IS NOT NULL", name="position"),
    )


class ShiftStep(Base):
    """One step of a frame's shift in a run; the frame's shift is the sum of its steps."""

    __tablename__ = "shift_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("alignment_run.id", ondelete="CASCADE"), index=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"))
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
    frame_sha256: Mapped[str | None] = mapped_column(
        String(64), doc="SHA-256 of the frame's content the step was measured on.")
    parameters: Mapped[dict | None] = mapped_column(JSONType())

    __table_args__ = (
        Index("ix_shift_step_frame_run", "frame_id", "run_id"),
        CheckConstraint(_in("kind", SHIFT_KINDS), name="kind"),
        CheckConstraint("stage IN (1, 2, 3)", name="stage"),
    )


class RenderOutput(Base):
    """A file written by `obsdb render`: an aligned frame or a stack."""

    __tablename__ = "render_output"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("alignment_run.id", ondelete="SET NULL"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String, doc="aligned, stack or preview.")
    band: Mapped[str | None] = mapped_column(String)
    path: Mapped[str] = mapped_column(String, index=True)
    sha256: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the file written, or 'pending' while "
                                                       "it is being written.")
    interpolation: Mapped[str | None] = mapped_column(String)
    parameters: Mapped[dict | None] = mapped_column(JSONType())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(_in("kind", ("aligned", "stack", "preview")), name="kind"),)


MASTER_KINDS = CALIBRATION_IMAGE_TYPES
"""Kinds of master calibration frame (see :class:`Master`): the calibration image types."""


class Master(Base):
    """A master calibration frame obsdb combined from a night's bias, dark or flat frames.

    The row is written before the file (its ``sha256`` is :data:`PENDING_DIGEST` until the file is
    written), so a build killed mid-way leaves its file recognisable as obsdb's own.  A master marked
    ``bad`` is never matched to a light again; rebuilding a set marks the older master bad
    ("superseded by master N").
    """

    __tablename__ = "master"

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    doc="The master's catalog id (OBSDB_MID in its FITS header).")
    kind: Mapped[str] = mapped_column(String, doc="bias, dark or flat.")
    night_id: Mapped[int] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"), index=True,
                                          doc="The night whose frames were combined.")
    instrument_id: Mapped[int | None] = mapped_column(
        ForeignKey("instrument.id"), index=True,
        doc="Telescope, camera, read-out shape and binning of every member (the master's too, before trim).")
    band: Mapped[str | None] = mapped_column(String, doc="Filter band of a flat; NULL for bias and dark.")
    exptime: Mapped[float | None] = mapped_column(Float, doc="Exposure of a dark's members, s; NULL otherwise.")
    ccd_temp: Mapped[float | None] = mapped_column(
        Float, doc="Median detector temperature of the members, C (CCD-TEMP, CCDTEMP, DETTEMP...); NULL: unknown.")
    readout: Mapped[str] = mapped_column(
        String, doc="Read-out key every member shares: binning and the header's read-out cards, e.g. "
                    "'bin=3x3|CAMMODE=Single|NUMAMP=1' (see obsdb.imaging.calibration.readout_key).")
    path: Mapped[str] = mapped_column(String, index=True, doc="Absolute path of the master FITS file written.")
    sha256: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the file written, or 'pending' while it "
                                                       "is being written.")
    n_frames: Mapped[int] = mapped_column(Integer, doc="Frames combined.")
    method: Mapped[str] = mapped_column(
        String, doc="How the members were combined, e.g. 'sigma-clipped median (3.0 sigma, 5 iterations)'.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the master builder (MASTER_VERSION).")
    stats: Mapped[dict | None] = mapped_column(
        JSONType(), doc="The master's numbers: median, noise (robust rms), pixels rejected by the clipping, "
                        "the overscan and trim sections used, the bias/dark master subtracted.")
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="First light time it may calibrate, UTC.")
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="Last light time it may calibrate, UTC.")
    bad: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0",
                                      doc="True: never matched to a light again.")
    bad_reason: Mapped[str | None] = mapped_column(Text, doc="Why it was marked bad.")
    bad_by: Mapped[str | None] = mapped_column(String, doc="Who marked it bad (obsdb when superseded).")
    author: Mapped[str] = mapped_column(String, doc="Who built it.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When built, UTC.")

    members: Mapped[list[MasterMember]] = relationship(back_populates="master", cascade="all, delete-orphan")

    __table_args__ = (CheckConstraint(_in("kind", MASTER_KINDS), name="kind"),)


class MasterMember(Base):
    """A raw calibration frame combined into a master, with the bytes it had then."""

    __tablename__ = "master_member"

    master_id: Mapped[int] = mapped_column(ForeignKey("master.id", ondelete="CASCADE"), primary_key=True,
                                           doc="The master.")
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True,
                                          index=True, doc="The raw frame combined into it.")
    sha256: Mapped[str | None] = mapped_column(String(64), doc="SHA-256 of the frame's file when combined.")

    master: Mapped[Master] = relationship(back_populates="members")


class Calibration(Base):
    """Which master of each kind calibrates a light, and why (or why none does).

    One row per light and kind: matching again replaces it.  ``master_id`` NULL means no master
    passed the gates; ``reason`` then says what was missing.
    """

    __tablename__ = "calibration"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), doc="The light frame.")
    kind: Mapped[str] = mapped_column(String, doc="bias, dark or flat.")
    master_id: Mapped[int | None] = mapped_column(
        ForeignKey("master.id", ondelete="SET NULL"), index=True,
        doc="The master chosen; NULL: none acceptable (the light is uncalibrated for this kind).")
    score: Mapped[float | None] = mapped_column(
        Float, doc="Time between the light and the master's members, hours (the preference: smaller wins).")
    scale: Mapped[float | None] = mapped_column(
        Float, doc="Factor a dark is multiplied by (light exposure / dark exposure); 1 for an exact match.")
    reason: Mapped[str] = mapped_column(
        Text, doc="Why: the chosen master and the refused ones with their gate, e.g. 'flat 12: VR, same "
                  "night, 0.4 h before; flat 11 refused: band V != VR'.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When matched, UTC.")

    __table_args__ = (
        UniqueConstraint("frame_id", "kind"),
        CheckConstraint(_in("kind", MASTER_KINDS), name="kind"),
    )


class WcsSolution(Base):
    """A frame's verified plate solution (``obsdb solve``), with its provenance.

    Only a solution that passed :func:`obsdb.imaging.astrometry.verify_wcs` is ever written; solving
    again replaces it.  A frame whose header has its own celestial WCS keeps using that one
    (:meth:`obsdb.Catalog.wcs`).
    """

    __tablename__ = "wcs_solution"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), unique=True,
                                          doc="The frame solved.")
    solver: Mapped[str] = mapped_column(String, doc="The plate solver, e.g. 'astrometry.net'.")
    solver_version: Mapped[str] = mapped_column(String, doc="The solver's version, e.g. '0.93'.")
    index_used: Mapped[str] = mapped_column(
        String, doc="The index file that solved it and its id, e.g. 'index-tycho2-11 (4111)'.")
    hints: Mapped[dict] = mapped_column(
        JSONType(), doc="Hints given to the solver: ra, dec, radius (deg), scale_low, scale_high (arcsec/px); "
                        "null ones were not known.")
    residual_arcsec: Mapped[float] = mapped_column(
        Float, doc="Median distance, arcsec, between the matched index stars through the WCS and the frame's stars.")
    residual_pixels: Mapped[float] = mapped_column(Float, doc="The same median distance in pixels.")
    n_matched: Mapped[int] = mapped_column(Integer, doc="Index stars with a catalogued star within the match radius.")
    n_reference: Mapped[int] = mapped_column(Integer, doc="Index stars (of the solver's matches) on the frame.")
    pixel_scale: Mapped[float] = mapped_column(Float, doc="The solution's mean pixel scale, arcsec per pixel.")
    wcs_header: Mapped[str] = mapped_column(Text, doc="The WCS as FITS header cards, one per line.")
    cpu_seconds: Mapped[float | None] = mapped_column(Float, doc="CPU time the solver spent, seconds.")
    algorithm: Mapped[str] = mapped_column(
        String, doc="Version of the solving and verification code (obsdb.imaging.astrometry.SOLVE_VERSION).")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When solved, UTC.")


PHOTOMETRY_RADIUS_RULES = ("fwhm", "fixed")
"""How a frame's aperture radius was chosen (see :class:`FramePhotometry`)."""


class FramePhotometry(Base):
    """One frame's aperture photometry: how it was measured, and the frame's ensemble zero point.

    The per-star rows are :class:`Photometry`; they share this row's aperture, annulus, gain and
    algorithm.  Re-measured when ``algorithm`` or ``inputs`` differ from what the step would use now.
    """

    __tablename__ = "frame_photometry"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True,
                                          doc="The light frame measured.")
    n_stars: Mapped[int] = mapped_column(Integer, doc="Stars measured (the frame's stored star list).")
    radius: Mapped[float] = mapped_column(Float, doc="Aperture radius, px.")
    radius_rule: Mapped[str] = mapped_column(
        String, doc="How the radius was chosen: 'fwhm' (a multiple of the frame's FWHM) or 'fixed' (given in px).")
    radius_fwhm: Mapped[float | None] = mapped_column(
        Float, doc="The radius in units of the frame's FWHM (the multiple when radius_rule is 'fwhm').")
    fwhm: Mapped[float | None] = mapped_column(Float, doc="The frame's median FWHM the apertures were sized by, px.")
    annulus_inner: Mapped[float] = mapped_column(Float, doc="Sky annulus inner radius, px.")
    annulus_outer: Mapped[float] = mapped_column(Float, doc="Sky annulus outer radius, px.")
    gain: Mapped[float] = mapped_column(Float, doc="Gain used for the stars' photon noise, e-/ADU.")
    gain_source: Mapped[str] = mapped_column(
        String, doc="Where the gain came from: the header keyword (EGAIN, GAIN, ...), 'given' or 'assumed' (1 e-/ADU).")
    exptime: Mapped[float | None] = mapped_column(
        Float, doc="Exposure time the magnitudes are per second of, s; NULL: per frame (no EXPTIME).")
    calibration: Mapped[str | None] = mapped_column(
        String, doc="Masters the pixels were calibrated with, e.g. 'bias 1, flat 3'; NULL: raw pixels.")
    inputs: Mapped[str] = mapped_column(
        String, doc="Fingerprint of what was measured (file digest, star list, calibration, radius rule): "
                    "a frame whose fingerprint changed is measured again.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the photometry algorithm (PHOTOMETRY_VERSION).")
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When measured, UTC.")
    zero_point: Mapped[float | None] = mapped_column(
        Float, doc="Ensemble zero point, mag: the frame's offset from the mean frame of its band and reference "
                   "(its transparency and extinction); NULL: not identified or too few comparison stars.")
    zero_point_err: Mapped[float | None] = mapped_column(Float, doc="1-sigma error of the zero point, mag.")
    n_comparison: Mapped[int | None] = mapped_column(Integer, doc="Constant stars that set the zero point.")
    reference_frame_id: Mapped[int | None] = mapped_column(
        ForeignKey("frame.id", ondelete="SET NULL"), index=True,
        doc="The reference whose grid the frame's stars were identified in; NULL: not identified.")
    identification: Mapped[str | None] = mapped_column(
        Text, doc="Why the frame's stars were not identified (no verified transform, ...); NULL when they were.")

    __table_args__ = (CheckConstraint(_in("radius_rule", PHOTOMETRY_RADIUS_RULES), name="radius_rule"),)


class Photometry(Base):
    """Aperture photometry of one star of a frame's star list (see :class:`FramePhotometry`)."""

    __tablename__ = "photometry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame_photometry.frame_id", ondelete="CASCADE"),
                                          doc="The frame measured (its frame_photometry row).")
    star_index: Mapped[int] = mapped_column(Integer, doc="Row of the frame's stored star list.")
    x: Mapped[float] = mapped_column(Float, doc="Aperture centre, 0-based column of the frame.")
    y: Mapped[float] = mapped_column(Float, doc="Aperture centre, 0-based row of the frame.")
    flux: Mapped[float | None] = mapped_column(Float, doc="Sky-subtracted flux in the aperture, ADU; NULL: no sky.")
    flux_err: Mapped[float | None] = mapped_column(Float, doc="1-sigma error of the flux (CCD equation), ADU.")
    sky: Mapped[float | None] = mapped_column(Float, doc="Sky level (clipped annulus median), ADU per pixel.")
    sky_rms: Mapped[float | None] = mapped_column(Float, doc="Sky scatter per pixel in the annulus, ADU.")
    mag: Mapped[float | None] = mapped_column(
        Float, doc="Instrumental magnitude 25 - 2.5 log10(flux / exptime); NULL for a non-positive flux.")
    mag_err: Mapped[float | None] = mapped_column(Float, doc="1-sigma error of mag.")
    flags: Mapped[int] = mapped_column(
        Integer, doc="Bits: 1 saturated, 2 edge, 4 defect, 8 blended, 16 sky (obsdb.imaging.photometry).")

    __table_args__ = (UniqueConstraint("frame_id", "star_index"),)


class Source(Base):
    """One star of a field, identified across a night's frames in its reference frame's grid."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="The source id users name.")
    reference_frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"),
                                                    doc="The reference frame whose pixel grid x, y are in.")
    number: Mapped[int] = mapped_column(
        Integer, doc="Number within the reference: the reference's own stars first, brightest first (stable).")
    x: Mapped[float] = mapped_column(Float, doc="Mean position, 0-based column of the reference frame.")
    y: Mapped[float] = mapped_column(Float, doc="Mean position, 0-based row of the reference frame.")
    ra: Mapped[float | None] = mapped_column(Float, doc="Right ascension, deg, from the reference's WCS; NULL: none.")
    dec: Mapped[float | None] = mapped_column(Float, doc="Declination, deg, from the reference's WCS; NULL: none.")
    n_frames: Mapped[int] = mapped_column(Integer, doc="Frames it was measured in.")

    __table_args__ = (UniqueConstraint("reference_frame_id", "number"),)


class SourceBand(Base):
    """A source's ensemble magnitude and variability in one band."""

    __tablename__ = "source_band"

    source_id: Mapped[int] = mapped_column(ForeignKey("source.id", ondelete="CASCADE"), primary_key=True,
                                           doc="The source.")
    band: Mapped[str] = mapped_column(String, primary_key=True, doc="Filter band ('' when frames have none).")
    mag: Mapped[float | None] = mapped_column(
        Float, doc="Mean instrumental magnitude on the band's ensemble scale (zero points removed).")
    mag_err: Mapped[float | None] = mapped_column(Float, doc="1-sigma error of mag.")
    n_frames: Mapped[int] = mapped_column(Integer, doc="Unflagged measurements in the band.")
    chi2: Mapped[float | None] = mapped_column(
        Float, doc="Variability index: reduced chi-square of its magnitudes about the mean after zero points.")
    variable: Mapped[bool] = mapped_column(Boolean, doc="chi2 beyond the ensemble's limit (VARIABLE_CHI2).")
    comparison: Mapped[bool] = mapped_column(Boolean, doc="Used to set the band's zero points.")


class SourceMember(Base):
    """Which source a photometry row measured."""

    __tablename__ = "source_member"

    photometry_id: Mapped[int] = mapped_column(ForeignKey("photometry.id", ondelete="CASCADE"), primary_key=True,
                                               doc="The measurement.")
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id", ondelete="CASCADE"), index=True,
                                           doc="The source it is.")

class NinaImage(Base):
    """One frame's row of N.I.N.A.'s ``ImageMetaData.csv`` (the Session Metadata plugin), joined to the frame.

    Columns are the plugin's ``ImageMetaDataRecord`` fields (see docs/interop.md); a value the capture
    software did not have (no guider: RMS 0, no focuser) is NULL here.  Importing the file again
    replaces a frame's row: one row per frame, the newest import wins.
    """

    __tablename__ = "nina_image"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), unique=True,
                                          doc="The catalogued frame the CSV row describes.")
    source: Mapped[str] = mapped_column(String, doc="Absolute path of the ImageMetaData.csv it came from.")
    source_sha256: Mapped[str] = mapped_column(String(64), doc="SHA-256 of that file when imported.")
    matched_by: Mapped[str] = mapped_column(
        String, doc="How the row was joined to the frame: 'file name' (FilePath's base name) or 'time' "
                    "(ExposureStartUTC within the tolerance of DATE-OBS, same filter).")
    exposure_number: Mapped[int | None] = mapped_column(Integer, doc="ExposureNumber: N.I.N.A.'s frame counter.")
    file_path: Mapped[str | None] = mapped_column(String, doc="FilePath as written by N.I.N.A.")
    exposure_start: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="ExposureStartUTC, UTC.")
    hfr: Mapped[float | None] = mapped_column(Float, doc="HFR: N.I.N.A.'s median half-flux radius, px.")
    hfr_stdev: Mapped[float | None] = mapped_column(Float, doc="HFRStDev: spread of the stars' HFR, px.")
    detected_stars: Mapped[int | None] = mapped_column(Integer, doc="DetectedStars: N.I.N.A.'s star count.")
    fwhm: Mapped[float | None] = mapped_column(Float, doc="FWHM (Hocus Focus plugin), px; NULL when absent.")
    eccentricity: Mapped[float | None] = mapped_column(Float, doc="Eccentricity (Hocus Focus plugin).")
    guiding_rms: Mapped[float | None] = mapped_column(Float, doc="GuidingRMS: total guiding RMS, guide-camera px.")
    guiding_rms_arcsec: Mapped[float | None] = mapped_column(Float, doc="GuidingRMSArcSec: total guiding RMS, arcsec.")
    guiding_rms_ra_arcsec: Mapped[float | None] = mapped_column(Float, doc="GuidingRMSRAArcSec, arcsec.")
    guiding_rms_dec_arcsec: Mapped[float | None] = mapped_column(Float, doc="GuidingRMSDECArcSec, arcsec.")
    focuser_position: Mapped[int | None] = mapped_column(Integer, doc="FocuserPosition, focuser steps.")
    focuser_temp: Mapped[float | None] = mapped_column(Float, doc="FocuserTemp, degrees C.")
    camera_temp: Mapped[float | None] = mapped_column(Float, doc="CameraTemp: sensor temperature, degrees C.")
    camera_target_temp: Mapped[float | None] = mapped_column(Float, doc="CameraTargetTemp: cooler set point, C.")
    gain: Mapped[int | None] = mapped_column(Integer, doc="Gain setting of the camera.")
    camera_offset: Mapped[int | None] = mapped_column(Integer, doc="Offset: the camera's offset setting.")
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When imported, UTC.")

    __table_args__ = (CheckConstraint(_in("matched_by", ("file name", "time")), name="matched_by"),)

class FrameWeight(Base):
    """A frame's stacking weights, relative to the frames of its set (one night, instrument, band and
    target), each normalised to a mean of 1 over the set (see :mod:`obsdb.imaging.weights`)."""

    __tablename__ = "frame_weight"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True,
                                          doc="The frame weighted.")
    noise: Mapped[float | None] = mapped_column(
        Float, doc="Siril's noise weight 1/sigma_bg^2 (background rms), mean 1 over the set; NULL: no rms.")
    fwhm: Mapped[float | None] = mapped_column(
        Float, doc="Siril's weighted-FWHM weight (1/f^2 - 1/f_max^2)/(1/f_min^2 - 1/f_max^2) of the wFWHM, "
                   "mean 1 over the set; NULL: no FWHM.")
    stars: Mapped[float | None] = mapped_column(
        Float, doc="Siril's star-count weight ((n - n_min)/(n_max - n_min))^2, mean 1 over the set.")
    snr: Mapped[float | None] = mapped_column(
        Float, doc="S/N weight snr^2 (median S/N of the brightest stars), mean 1 over the set; NULL: no stars.")
    snr_value: Mapped[float | None] = mapped_column(
        Float, doc="The S/N the snr weight squares: median flux / (rms sqrt(pi) FWHM) of the brightest stars.")
    set_key: Mapped[str] = mapped_column(
        String, doc="The set the weights are relative to: 'night|instrument|band|target'.")
    set_size: Mapped[int] = mapped_column(Integer, doc="Frames in that set.")
    algorithm: Mapped[str] = mapped_column(String, doc="Version of the weight formulas (WEIGHTS_VERSION).")
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When computed, UTC.")


class WeightExpression(Base):
    """A user's weight, defined by name as an expression over a frame's columns and weights."""

    __tablename__ = "weight_expression"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    name: Mapped[str] = mapped_column(String, unique=True, doc="The name `render --weight` takes.")
    expression: Mapped[str] = mapped_column(Text, doc="The expression, e.g. 'w_noise * w_fwhm'.")
    author: Mapped[str] = mapped_column(String, doc="Who defined it.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When (re)defined, UTC.")


class TargetAlias(Base):
    """A user's alias: frames whose OBJECT reads ``alias`` count as ``target`` in integration totals."""

    __tablename__ = "target_alias"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    alias: Mapped[str] = mapped_column(
        String, unique=True, doc="The alias's key (obsdb.imaging.names.target_key of the name as given).")
    alias_name: Mapped[str] = mapped_column(String, doc="The alias as the user typed it.")
    target: Mapped[str] = mapped_column(String, doc="The target it stands for, as target_key spells it.")
    author: Mapped[str] = mapped_column(String, doc="Who added it.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When added, UTC.")

class FrameQuality(Base):
    """A frame's summarised quality, one row per frame, kept with its night's summary.

    Derived data (obsdb.catalog.maintained keeps it): its indexes give exact medians of a band over
    the whole archive by reading the middle of an index, where a join of frames and metrics would
    sort every frame.
    """

    __tablename__ = "frame_quality"

    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True,
                                          doc="The frame.")
    night_id: Mapped[int] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"), index=True,
                                          doc="The frame's night.")
    band: Mapped[str] = mapped_column(String, doc="The frame's band; '' when it has none.")
    image_type: Mapped[str] = mapped_column(String, doc="The frame's image type; '' when it has none.")
    fwhm: Mapped[float | None] = mapped_column(Float, doc="frame_metrics.fwhm, px.")
    background: Mapped[float | None] = mapped_column(Float, doc="frame_stats.background, ADU.")

    __table_args__ = (
        Index("ix_frame_quality_fwhm", "band", "image_type", "fwhm"),
        Index("ix_frame_quality_background", "band", "image_type", "background"),
    )


class NightSummary(Base):
    """One night at a glance: counts by status, exposure, medians and facets (derived, kept at write time).

    Rewritten from the night's frames in the transaction of every write that touches them
    (obsdb.catalog.maintained); `obsdb doctor --rebuild-summaries` recomputes every row.
    """

    __tablename__ = "night_summary"

    night_id: Mapped[int] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"), primary_key=True,
                                          doc="The night.")
    frames: Mapped[int] = mapped_column(Integer, doc="Frames, readable or not.")
    unreadable: Mapped[int] = mapped_column(Integer, doc="Frames that could not be read (counted as rejected).")
    accepted: Mapped[int] = mapped_column(Integer, doc="Frames whose status is accepted.")
    rejected: Mapped[int] = mapped_column(Integer, doc="Frames whose status is rejected (unreadable ones included).")
    pending: Mapped[int] = mapped_column(Integer, doc="Frames whose status is pending.")
    exptime: Mapped[float] = mapped_column(Float, doc="Total exposure, s (a frame without EXPTIME counts 0).")
    median_fwhm: Mapped[float | None] = mapped_column(Float, doc="Median frame_metrics.fwhm of the night, px.")
    median_background: Mapped[float | None] = mapped_column(
        Float, doc="Median frame_stats.background of the night, ADU.")
    bands: Mapped[list | None] = mapped_column(JSONType(), doc="The night's bands, sorted.")
    targets: Mapped[list | None] = mapped_column(JSONType(), doc="The night's OBJECT values, sorted.")
    instruments: Mapped[list | None] = mapped_column(JSONType(), doc="The night's instrument keys, sorted.")


class NightBandSummary(Base):
    """Per night, instrument, band and image type: counts by status, exposure, medians (derived).

    Kept like :class:`NightSummary`; the rows of one night are rewritten together.
    """

    __tablename__ = "night_band_summary"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    night_id: Mapped[int] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"), index=True,
                                          doc="The night.")
    instrument_id: Mapped[int | None] = mapped_column(
        ForeignKey("instrument.id", ondelete="CASCADE"), doc="The instrument; NULL for unreadable frames.")
    band: Mapped[str] = mapped_column(String, doc="The band; '' for frames without one.")
    image_type: Mapped[str] = mapped_column(String, doc="The image type; '' for frames without one.")
    frames: Mapped[int] = mapped_column(Integer, doc="Frames, readable or not.")
    unreadable: Mapped[int] = mapped_column(Integer, doc="Frames that could not be read (counted as rejected).")
    accepted: Mapped[int] = mapped_column(Integer, doc="Frames whose status is accepted.")
    rejected: Mapped[int] = mapped_column(Integer, doc="Frames whose status is rejected (unreadable ones included).")
    pending: Mapped[int] = mapped_column(Integer, doc="Frames whose status is pending.")
    exptime: Mapped[float] = mapped_column(Float, doc="Total exposure, s (a frame without EXPTIME counts 0).")
    median_fwhm: Mapped[float | None] = mapped_column(Float, doc="Median frame_metrics.fwhm, px.")
    median_background: Mapped[float | None] = mapped_column(Float, doc="Median frame_stats.background, ADU.")


class DetectorDefectMap(Base):
    """A night's detector defects (warm pixels found in several frames together), kept so a later
    render of the night reads them instead of reading frames again (:mod:`obsdb.catalog.defect_maps`).

    One row per night, instrument and frame size; it is recomputed when the search's version or the
    frames it was computed from (ids, file digests, FWHM) change.
    """

    __tablename__ = "detector_defect_map"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Row id.")
    night_id: Mapped[int | None] = mapped_column(ForeignKey("night.id", ondelete="CASCADE"),
                                                 doc="The night; NULL for frames without one.")
    instrument_id: Mapped[int | None] = mapped_column(ForeignKey("instrument.id", ondelete="CASCADE"),
                                                      doc="The instrument; NULL when unknown.")
    height: Mapped[int] = mapped_column(Integer, doc="Frame height (NAXIS2) the indices refer to, px.")
    width: Mapped[int] = mapped_column(Integer, doc="Frame width (NAXIS1) the indices refer to, px.")
    version: Mapped[str] = mapped_column(String, doc="Version of the search (DETECTOR_DEFECTS_VERSION).")
    sample: Mapped[str] = mapped_column(
        String(64), doc="SHA-256 of what the search read: the sample's frame ids and file digests, and the FWHM.")
    n_defects: Mapped[int] = mapped_column(Integer, doc="Defect pixels in the map.")
    indices: Mapped[bytes] = mapped_column(
        LargeBinary, doc="Flat (row * width + column) indices of the defects, ascending, as zlib-compressed "
                         "little-endian int64 differences from the previous index.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, doc="When computed, UTC.")

    __table_args__ = (Index("ix_detector_defect_map_night_instrument", "night_id", "instrument_id"),)


POSTGRESQL_INDEX_OPTIONS = {
    "ix_frame_rejected": lambda: {"where": Frame.__table__.c.status == "rejected",
                                  "include": ["id", "number", "number_shared", "image_type", "readable", "sort_key",
                                              "path", "file_name"]},
    "ix_tag_active_frame": lambda: {"where": Tag.__table__.c.retracted_at.is_(None)},
}
"""The PostgreSQL options (``postgresql_where``, ``postgresql_include``) of the indexes that have some.

They are given to the indexes by :func:`use_postgresql_options` when a PostgreSQL catalog is opened,
not where the indexes are declared: naming them there makes SQLAlchemy import its PostgreSQL dialect
to check them, 40-50 ms of start-up for every command on a SQLite catalog.
"""

_postgresql_options_given = False


def use_postgresql_options() -> None:
    """Give the indexes their PostgreSQL options (:data:`POSTGRESQL_INDEX_OPTIONS`), once.

    :func:`obsdb.catalog.db.make_engine` calls it for every PostgreSQL engine, before any DDL is
    emitted or compared (``create_all``, the migrations, their comparison with these models).
    """
    global _postgresql_options_given
    if _postgresql_options_given:
        return
    for table in Base.metadata.tables.values():
        for index in table.indexes:
            make = POSTGRESQL_INDEX_OPTIONS.get(index.name)
            for key, value in (make() if make else {}).items():
                index.dialect_options["postgresql"][key] = value
    _postgresql_options_given = True
