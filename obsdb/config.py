"""Configuration: `obsdb.toml`, found by :func:`find_config` (or given by --config / OBSDB_CONFIG).

Looked for, in order: the working directory, the data folder a command was given (in it, then
beside it: its parent) and the user's configuration folder (platformdirs' ``user_config_dir``:
``~/.config/obsdb/obsdb.toml`` on Linux).  The first found is used, alone; which one it was is
printed by ``obsdb --verbose`` and kept in the event log of ``ingest``.

Every section is optional; unknown keys are an error so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from obsdb.errors import ObsdbError
from obsdb.imaging.header import DEFAULT_IMAGE_TYPES, DEFAULT_NUMBER_PATTERN, DEFAULT_PICTTYPES


class ConfigError(ObsdbError):
    """The configuration file is malformed; the message names the file and key."""


DEFAULT_MAX_FRAME_MB = 2048
"""The frame budget of ingest by default, MB of decoded (float32) pixels: a 23k x 23k frame."""


def max_frame_mb_from_env() -> float:
    """``OBSDB_MAX_FRAME_MB`` when set, else :data:`DEFAULT_MAX_FRAME_MB`.

    Raises
    ------
    ConfigError
        When the variable is not a positive number.
    """
    raw = os.environ.get("OBSDB_MAX_FRAME_MB")
    if raw is None or not raw.strip():
        return float(DEFAULT_MAX_FRAME_MB)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ConfigError(f"OBSDB_MAX_FRAME_MB {raw!r}: expected a positive number of megabytes")
    return value


@dataclass
class IngestConfig:
    """How files are turned into catalog rows."""

    number_pattern: str = DEFAULT_NUMBER_PATTERN
    image_types: dict = field(default_factory=lambda: dict(DEFAULT_IMAGE_TYPES))
    picttypes: dict = field(default_factory=lambda: dict(DEFAULT_PICTTYPES))
    float_saturation: float | None = 65535.0
    measure_quality: bool = True
    site: dict | None = None
    """The ``[site]`` table of obsdb.toml (latitude, longitude east-positive, elevation in m, name):
    the site of frames whose header does not give it (:func:`obsdb.imaging.header.site_location`)."""
    source: str | None = None
    """The configuration file these settings came from (None: the defaults), for the event log."""
    max_frame_mb: float = field(default_factory=max_frame_mb_from_env)
    """The frame budget, MB (2**20 bytes) of decoded float32 pixels: a frame whose header claims more
    is recorded unreadable before anything is allocated for it, and a gzip file is not decompressed
    beyond twice this.  Reading and measuring a frame peaks at about 3x its decoded size.  Set by
    ``[ingest] max_frame_mb`` or ``OBSDB_MAX_FRAME_MB`` (default :data:`DEFAULT_MAX_FRAME_MB`)."""

    @property
    def max_frame_bytes(self) -> int:
        """:attr:`max_frame_mb` in bytes."""
        return int(self.max_frame_mb * 2 ** 20)


@dataclass
class CalibrationConfig:
    """``[calibration]``: what a raw frame's header does not say about its read-out geometry."""

    biassec: str | None = None
    """The overscan (FITS section ``[x0:x1,y0:y1]``, 1-based, inclusive) of raw frames whose header has no
    ``BIASSEC``."""
    trimsec: str | None = None
    """The section kept of raw frames whose header has neither ``TRIMSEC`` nor ``DATASEC``."""

    def sections(self) -> dict:
        """The sections given, as ``{"biassec": ..., "trimsec": ...}`` (None where not given)."""
        return {"biassec": self.biassec, "trimsec": self.trimsec}


@dataclass
class Config:
    """The whole configuration."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    qa: dict = field(default_factory=dict)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    source: str | None = None
    found_by: str | None = None
    """How :attr:`source` was chosen: 'given' (--config or OBSDB_CONFIG), 'working folder', 'data folder',
    'beside the data folder' or 'user config folder'; None without a file."""

    def describe(self) -> str:
        """One line: the file used and why, or that there is none (``obsdb --verbose``)."""
        if self.source is None:
            return "configuration: none found (defaults); looked in " + ", ".join(
                str(p) for p, _ in config_candidates())
        return f"configuration: {self.source} ({self.found_by})"


TOML_MAX_BYTES = 1 << 20
"""A plan or a configuration is a page of settings: a larger file is neither (and is not read into memory)."""


def read_toml_file(path: Path, what: str) -> dict:
    """The TOML table in ``path``: a regular file of at most :data:`TOML_MAX_BYTES`, or an ObsdbError.

    A FIFO or a device is never opened (reading one can block forever); a
    folder, a binary file and TOML nested beyond reason are each one sentence.
    """
    import os
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: is not a regular file (a FIFO, socket or device); not read as a {what}")
    if info.st_size > TOML_MAX_BYTES:
        raise ConfigError(f"{path}: {info.st_size:,} bytes is too large for a {what} "
                         f"(at most {TOML_MAX_BYTES:,})")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); a {what} is TOML") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None


CONFIG_NAME = "obsdb.toml"
"""The configuration file's name wherever it is looked for."""


def user_config_folder() -> Path:
    """The user's configuration folder for obsdb (platformdirs: ``~/.config/obsdb`` on Linux, honouring
    ``XDG_CONFIG_HOME``; ``~/Library/Application Support/obsdb`` on macOS; ``%LOCALAPPDATA%\\obsdb`` on Windows)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("obsdb", appauthor=False))


def config_candidates(data_folders=()) -> list[tuple[Path, str]]:
    """Where ``obsdb.toml`` is looked for, in order, each with how it is described.

    Parameters
    ----------
    data_folders : iterable of path-like
        The folders (or files) of frames a command was given: ``FOLDER/obsdb.toml``, then
        ``obsdb.toml`` beside the folder (in its parent).
    """
    out: list[tuple[Path, str]] = [(Path(CONFIG_NAME), "working folder")]
    for folder in data_folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            folder = folder.parent
        out += [(folder / CONFIG_NAME, "data folder"), (folder.resolve().parent / CONFIG_NAME, "beside the data folder")]
    out.append((user_config_folder() / CONFIG_NAME, "user config folder"))
    seen, unique = set(), []
    for path, how in out:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, how))
    return unique


def find_config(data_folders=()) -> tuple[Path, str] | None:
    """The ``obsdb.toml`` to use when none is given: the first of :func:`config_candidates` that exists."""
    for path, how in config_candidates(data_folders):
        if path.is_file():
            return path, how
    return None


def load_config(path: str | os.PathLike | None = None, *, data_folders=()) -> Config:
    """Read the configuration (missing file: defaults).

    Parameters
    ----------
    path : path-like, optional
        Explicit file; else ``OBSDB_CONFIG``, else the first ``obsdb.toml`` :func:`find_config` finds.
    data_folders : iterable of path-like
        The folders of frames the command works on (``ingest PATH``, ``run FOLDER``).
    """
    found_by = "given"
    if path is None:
        path = os.environ.get("OBSDB_CONFIG") or None
    if path is None:
        found = find_config(data_folders)
        if found is None:
            return Config()
        path, found_by = found
    path = Path(path)
    data = read_toml_file(path, "configuration file")
    config = Config(source=str(path.resolve()), found_by=found_by)
    config.ingest.source = config.source
    unknown = set(data) - {"ingest", "qa", "site", "calibration"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; known: ingest, qa, site, calibration")
    for section in ("ingest", "qa", "site", "calibration"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: {section}: must be a table: an [{section}] section with key = value lines")
    for key, value in data.get("ingest", {}).items():
        if not hasattr(config.ingest, key):
            from obsdb.text import did_you_mean

            hint = did_you_mean(key, vars(config.ingest))
            raise ConfigError(f"{path}: unknown key ingest.{key}{hint}")
        setattr(config.ingest, key, _ingest_value(path, key, value))
    config.qa = dict(data.get("qa", {}))
    if "site" in data:
        config.ingest.site = site_table(path, data["site"])
    for key, value in data.get("calibration", {}).items():
        config.calibration = _calibration_value(path, config.calibration, key, value)
    return config


def _calibration_value(path: Path, calibration: CalibrationConfig, key: str, value) -> CalibrationConfig:
    """``calibration`` with one ``[calibration]`` key set, checked; a ConfigError names the key and the problem."""
    from dataclasses import replace

    from obsdb.imaging.calibration import section_syntax_ok

    if key not in ("biassec", "trimsec"):
        from obsdb.text import did_you_mean

        raise ConfigError(f"{path}: unknown key calibration.{key}{did_you_mean(key, ['biassec', 'trimsec'])}")
    if not isinstance(value, str) or not section_syntax_ok(value):
        raise ConfigError(f"{path}: calibration.{key} {value!r}: expected a FITS section in quotes, "
                          "e.g. '[1025:1056,1:1024]' (x first, 1-based, inclusive)")
    return replace(calibration, **{key: value.strip()})


SITE_KEYS = {"latitude": (-90.0, 90.0), "longitude": (-360.0, 360.0), "elevation": (-500.0, 10000.0)}
"""The numeric keys of ``[site]`` and their ranges (degrees north, degrees east, metres)."""


def site_table(path, table: dict) -> dict:
    """The ``[site]`` table checked: numbers in range or sexagesimal text (``'+34:44:37'``), and a name.

    Raises
    ------
    ConfigError
        Naming the key and the problem.
    """
    from obsdb.imaging.header import _degrees

    site: dict = {}
    for key, value in table.items():
        if key == "name":
            if not isinstance(value, str):
                raise ConfigError(f"{path}: site.name: must be text in quotes")
            site["site"] = value
            continue
        if key not in SITE_KEYS:
            raise ConfigError(f"{path}: unknown key site.{key}; known: {', '.join(SITE_KEYS)}, name")
        number = None if isinstance(value, bool) else _degrees(value)
        low, high = SITE_KEYS[key]
        if number is None or not low <= number <= high:
            unit = "metres" if key == "elevation" else "degrees (a number or '+34:44:37')"
            raise ConfigError(f"{path}: site.{key} {value!r}: expected {unit} between {low:g} and {high:g}")
        site[key] = ((number + 180.0) % 360.0) - 180.0 if key == "longitude" else number
    return site


def _ingest_value(path: Path, key: str, value):
    """One ``[ingest]`` value, checked and converted; a ConfigError names the key and the problem."""
    import math
    import re

    def bad(message: str):
        raise ConfigError(f"{path}: ingest.{key}: {message}")

    if key == "number_pattern":
        if not isinstance(value, str):
            bad("must be a regular expression in quotes")
        try:
            re.compile(value)
        except re.error as exc:
            bad(f"not a valid regular expression: {exc}")
        return value
    if key == "measure_quality":
        if not isinstance(value, bool):
            bad("must be true or false")
        return value
    if key == "max_frame_mb":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            bad("must be a positive number of megabytes")
        return float(value)
    if key == "float_saturation":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            bad("must be a positive number of ADU")
        return float(value)
    if not isinstance(value, dict):
        bad("must be a table")
    try:
        if key == "picttypes":
            return {int(k): str(v) for k, v in value.items()}
        return {str(k): tuple(str(x).lower() for x in (v if isinstance(v, list) else [v])) for k, v in value.items()}
    except ValueError:
        bad("PICTTYPE keys must be integers, e.g. 1 = \"light\"")


def login_name() -> str:
    """The user's login name (for authorship), never failing."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return os.environ.get("USER", "unknown")
