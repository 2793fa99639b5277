"""Shared fixtures: where the real frames live, and how their absence is handled."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("OBSDB_REAL_DATA", PROJECT_ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session", autouse=True)
def hermetic(tmp_path_factory):
    """The whole run as on a clean machine: no catalog or config from the developer's shell
    (OBSDB_DB, OBSDB_CONFIG, an obsdb.toml in the working folder), no debug tracebacks.
    Session-wide, so that module-scoped nights are made under the same conditions."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("OBSDB_DB", "OBSDB_CONFIG", "OBSDB_DEBUG"):
            patch.delenv(name, raising=False)
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real frames (../shared/data/real).

    Skips when it is absent, unless ``OBSDB_REQUIRE_REAL_DATA=1`` (set by
    ``.ci/run``), where a missing folder is a failure.
    """
    if not REAL_DATA.is_dir():
        message = f"real frames not found at {REAL_DATA}"
        if os.environ.get("OBSDB_REQUIRE_REAL_DATA") == "1":
            pytest.fail(message + " (OBSDB_REQUIRE_REAL_DATA=1)")
        pytest.skip(message)
    return REAL_DATA


def write_fits(path: Path, data, header: dict | None = None) -> Path:
    """Write a small FITS file for a test (the simulator makes whole nights)."""
    import numpy as np
    from astropy.io import fits

    hdu = fits.PrimaryHDU(None if data is None else np.asarray(data))
    for key, value in (header or {}).items():
        hdu.header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return path


@pytest.fixture()
def catalog(tmp_path):
    """A fresh catalog at head, opened; closed after the test."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog

    url = database_url(str(tmp_path / "obsdb.sqlite"))
    upgrade(url)
    cat = Catalog.open(str(tmp_path / "obsdb.sqlite"))
    yield cat
    cat.close()


# -- simulated nights, each made once a session ----------------------------------------------------------

class SimulatedNights:
    """Simulated nights, each simulated once a session and copied to wherever a test wants it.

    ``copy(folder, specs, **parameters)`` takes :func:`obsdb.simulate.simulate_night`'s arguments and
    returns what it returns.  The night is simulated the first time its arguments are asked for, into a
    folder of its own under the session's temporary folder; every call copies the files (fresh
    modification times, as if just written) to ``folder``.  A test may therefore change, delete or
    corrupt its files without changing any other test's input: the masters are never handed out.
    """

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[str, tuple[Path, object]] = {}

    @staticmethod
    def _key(specs, parameters: dict) -> str:
        # repr of FrameSpec dataclasses, tuples and numbers is exact and stable within a session.
        return repr((specs, sorted(parameters.items())))

    def master(self, specs=None, **parameters):
        """The session's copy of a night, simulated if not yet made: ``(folder, truth)``; read only."""
        from obsdb.simulate import simulate_night

        key = self._key(specs, parameters)
        if key not in self._made:
            folder = self.root / f"night{len(self._made):03d}"
            self._made[key] = folder, simulate_night(folder, specs, **parameters)
        return self._made[key]

    def copy(self, folder, specs=None, **parameters):
        """The night simulated with these arguments, copied into ``folder`` (created); its truth.

        The truth is a deep copy, its ``directory`` the new folder, so a test may change it too.
        """
        import copy
        import shutil

        master, truth = self.master(specs, **parameters)
        folder = Path(folder)
        shutil.copytree(master, folder, copy_function=shutil.copyfile, dirs_exist_ok=True)
        truth = copy.deepcopy(truth)
        truth.directory = str(folder)
        return truth


@pytest.fixture(scope="session")
def simulated_nights(tmp_path_factory) -> SimulatedNights:
    """The session's simulated nights: ``simulated_nights.copy(folder, specs, **simulate_night_arguments)``.

    For module- and session-scoped fixtures; a test asks for :func:`copy_night` instead.
    """
    return SimulatedNights(tmp_path_factory.mktemp("nights"))


@pytest.fixture()
def copy_night(simulated_nights):
    """:func:`obsdb.simulate.simulate_night` for one test: the same arguments and truth, the night
    simulated once a session and its files copied into the folder the test names (in its own tmp_path)."""
    return simulated_nights.copy


@pytest.fixture(scope="session")
def small_night(simulated_nights, tmp_path_factory):
    """A simulated night of 18 frames of 256x256 in three bands, with its truth."""
    folder = tmp_path_factory.mktemp("night")
    truth = simulated_nights.copy(folder, seed=3, size=256, n_frames=18, bands=("B", "V", "R"), n_groups=3)
    return folder, truth


POSTGRES_URL = os.environ.get("OBSDB_TEST_POSTGRES_URL")
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_server_answers: dict[str, bool] = {}


def _postgres_server() -> str | None:
    """The PostgreSQL server the tests use: ``OBSDB_TEST_POSTGRES_URL``, else a local one if it answers."""
    if POSTGRES_URL:
        return POSTGRES_URL
    if LOCAL_POSTGRES not in _server_answers:
        try:
            import psycopg

            psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=2).close()
            _server_answers[LOCAL_POSTGRES] = True
        except Exception:  # noqa: BLE001 - no driver, no server: the PostgreSQL tests skip
            _server_answers[LOCAL_POSTGRES] = False
    return LOCAL_POSTGRES if _server_answers[LOCAL_POSTGRES] else None


@contextmanager
def postgres_databases():
    """``make()`` returns the URL of a new empty PostgreSQL database on the test server; all are dropped
    on leaving.  Skips when no server answers, unless ``OBSDB_REQUIRE_POSTGRES=1``, where it fails."""
    server_url = _postgres_server()
    if not server_url:
        if os.environ.get("OBSDB_REQUIRE_POSTGRES") == "1":
            pytest.fail("OBSDB_REQUIRE_POSTGRES=1 but no PostgreSQL server answers (OBSDB_TEST_POSTGRES_URL)")
        pytest.skip("no PostgreSQL server answers at 127.0.0.1:5432 (or set OBSDB_TEST_POSTGRES_URL)")
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    made: list[str] = []
    server = make_url(server_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def make() -> str:
        name = f"obsdb_t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as connection:
            for name in made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_factory(request, tmp_path):
    """``make()`` returns the URL of a new empty database on this backend: an SQLite file, or a
    PostgreSQL database created on the server (all dropped afterwards).  Skips when no server answers,
    unless ``OBSDB_REQUIRE_POSTGRES=1``, where it fails."""
    if request.param == "sqlite":
        made: list[str] = []

        def make() -> str:
            made.append(f"sqlite:///{tmp_path / f'obsdb-{len(made)}.sqlite'}")
            return made[-1]

        yield make
        return
    with postgres_databases() as make:
        yield make


@pytest.fixture()
def catalog_url(database_factory):
    """A catalog URL on each backend (see :func:`database_factory`)."""
    return database_factory()


# -- a real browser (the report and the review desk) -------------------------------------------------

CHROMIUM = os.environ.get("OBSDB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _browser_missing(reason: str):
    """Skip, or fail under ``OBSDB_REQUIRE_BROWSER=1`` (CI), when the browser tests cannot run."""
    if os.environ.get("OBSDB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (OBSDB_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (its own browser download cannot work here)."""
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("playwright is not installed: pip install '.[browser]'")
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not executable:
        _browser_missing(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set OBSDB_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
