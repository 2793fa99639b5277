"""Configuration: `obsdb.toml` in the working directory (or OBSDB_CONFIG).

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


@dataclass
class IngestConfig:
    """How files are turned into catalog rows."""

    number_pattern: str = DEFAULT_NUMBER_PATTERN
    image_types: dict = field(default_factory=lambda: dict(DEFAULT_IMAGE_TYPES))
    picttypes: dict = field(default_factory=lambda: dict(DEFAULT_PICTTYPES))
    float_saturation: float | None = 65535.0
    measure_quality: bool = True


@dataclass
class Config:
    """The whole configuration."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    qa: dict = field(default_factory=dict)
    source: str | None = None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read the configuration (missing file: defaults).

    Parameters
    ----------
    path : path-like, optional
        Explicit file; else ``OBSDB_CONFIG``, else ``./obsdb.toml`` if present.
    """
    if path is None:
        path = os.environ.get("OBSDB_CONFIG") or ("obsdb.toml" if Path("obsdb.toml").exists() else None)
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    config = Config(source=str(path))
    unknown = set(data) - {"ingest", "qa"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; known: ingest, qa")
    ingest = data.get("ingest", {})
    for key, value in ingest.items():
        if key == "picttypes":
            value = {int(k): str(v) for k, v in value.items()}
        elif key == "image_types":
            value = {str(k): tuple(str(x).lower() for x in v) for k, v in value.items()}
        if not hasattr(config.ingest, key):
            raise ConfigError(f"{path}: unknown key ingest.{key}")
        setattr(config.ingest, key, value)
    config.qa = dict(data.get("qa", {}))
    return config


def login_name() -> str:
    """The user's login name (for authorship), never failing."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return os.environ.get("USER", "unknown")
