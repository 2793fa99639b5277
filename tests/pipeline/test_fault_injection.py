"""Faults injected at a random point of ``init`` (the migrations of a revision-0001 catalog), ``ingest``,
``render``, ``report`` and a desk verdict (``obsdb serve``), on SQLite and PostgreSQL.

The faults:

``kill``
    ``kill -9`` of the command (its workers die with it, see :mod:`tests.pipeline.test_kill`).
``sigint``
    Ctrl-C: SIGINT to the command's whole process group, as a terminal sends it.
``disk-full``
    The catalog (SQLite) and the output folders on a small tmpfs filled up to a random amount of free space
    (``mount -t tmpfs``, as root, as CI runs).  Without root, a ``RLIMIT_FSIZE`` of a random size on the
    child with SIGXFSZ ignored (writes past it fail with EFBIG).  On PostgreSQL the catalog's disk is the
    server's, shared and never filled: there the fault reaches the output folders only.
``server-stop``
    PostgreSQL only: the command talks to the server through a TCP proxy in this process, cut at a random
    point (open connections reset, new ones refused) and opened again before the next command.  The shared
    server itself is never stopped.

After each fault, the faulted command has finished, or printed exactly one line of known advice
(:data:`ADVICE`), or was killed; then the fault is cleared and the next command (the same command again;
for the desk, the verdicts not yet acknowledged) finishes the work, and nothing acknowledged is lost: the
answers equal an uninterrupted run's, every frame catalogued by a finished transaction is still there,
every output file is complete, and every verdict the desk answered 200 is in the catalog.

One trial (Ctrl-C of ``init``) runs in the default suite; the whole grid is marked ``system``, and
``benchmarks/fault_table.py`` runs N trials per cell and prints the reliability table.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from obsdb.simulate import simulate_night
from tests.old_catalogs import catalog_at_0001
from tests.pipeline.test_kill import _alive, _children, _leftovers

# The grid is a `system` test (deselected by default; `.ci/run` runs it).  In CI it runs a diagonal of it,
# each command under one fault and each fault under at least one command, on each backend: the whole grid
# takes about 40 minutes here.  OBSDB_FAULT_GRID=full runs every cell (benchmarks/fault_table.py prints the
# table of docs/faults.md from every cell).

COMMANDS = ("init", "ingest", "render", "report", "verdict")
FAULTS = ("kill", "sigint", "disk-full", "server-stop")
BACKENDS = ("sqlite", "postgresql")

ADVICE = {
    "sigint": ("interrupted: completed work is saved; run the command again to finish",
               "interrupted: nothing was changed"),
    "disk-full": ("the disk holding the catalog is full: nothing was changed; free some space and run again",
                  "the disk is full; nothing was left half-written",
                  "the disk is full: nothing was changed",
                  "the disk holding it is full",
                  "File too large"),
    "server-stop": ("error: the catalog's database server stopped during the command",
                    "the catalog's database server stopped during the command",
                    "cannot reach the catalog's database server"),
}
"""The one-line advice each fault may print: the CLI's line (after ``error:``) or the desk's answer contains one."""

UNEXPECTED = "error: unexpected "
"""How the CLI names an error it has no sentence for (a driver's "closed the connection unexpectedly" is not one)."""

NIGHT = dict(seed=93, size=192, n_frames=10, bands=("V", "R"), n_groups=1)
TMPFS_SIZE_MB = 96
HUNG_AFTER = 240
"""Seconds a faulted command may run before it counts as hung (uninterrupted, the slowest takes about 20)."""
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


def faults_for(backend: str) -> tuple[str, ...]:
    """The faults a backend can meet (the server stops on PostgreSQL only)."""
    return FAULTS if backend == "postgresql" else tuple(f for f in FAULTS if f != "server-stop")


# -- processes -------------------------------------------------------------------------------------------

def _env(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_CONFIG", "OBSDB_DEBUG")}
    env.update(OBSDB_DB=url, COLUMNS="200")
    return env


def _start(url: str, args: list[str], *, file_limit: int | None = None) -> subprocess.Popen:
    """``obsdb ARGS`` in its own process group (a terminal's job), optionally with a file-size limit."""
    def limit() -> None:
        if file_limit is not None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG instead of death
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.Popen([sys.executable, "-m", "obsdb.cli.app", *args], env=_env(url), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=limit if file_limit is not None else None)


def _finish(url: str, args: list[str]) -> tuple[int, str, str]:
    proc = _start(url, args)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _must(url: str, args: list[str]) -> str:
    code, out, err = _finish(url, args)
    assert code == 0 and UNEXPECTED not in err, (args, err)
    return out


def _command(step: str, night: Path, work: Path) -> list[str]:
    return {"init": ["init"],
            "ingest": ["ingest", str(night), "--workers", "2"],
            "qa": ["qa"],
            "align": ["align", "--workers", "2"],
            "render": ["render", "--out", str(work / "aligned"), "--stack", "median", "--workers", "2"],
            "report": ["report", "--out", str(work / "report"), "--workers", "2"]}[step]


BEFORE = {"init": [], "ingest": ["init"], "render": ["init", "ingest", "qa", "align"],
          "report": ["init", "ingest", "qa", "align"], "verdict": ["init", "ingest", "qa"]}
"""The steps that bring a catalog to where each command starts ("init" starts from revision 0001)."""


def _answers(url: str, work: Path) -> dict:
    """What a user asks at the end: each frame's status, reasons and shift, and the output files."""
    listing = json.loads(_must(url, ["frames", "--format", "json"]))
    frames = sorted(
        (r["file_name"], r["status"], tuple(r["reasons"]), r["readable"],
         None if not r["shift"] else (round(r["shift"]["dx"], 3), round(r["shift"]["dy"], 3)))
        for r in listing)
    outputs = sorted(p.relative_to(work).as_posix() for folder in ("aligned", "report") if (work / folder).is_dir()
                     for p in (work / folder).rglob("*") if p.is_file() and p.suffix in (".fits", ".html"))
    return {"frames": frames, "outputs": outputs}


def _catalogued(url: str) -> set[tuple[str, str]]:
    """(file name, SHA-256) of every frame in the catalog now: what finished transactions wrote."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if not connection.dialect.has_table(connection, "frame"):
                return set()
            return {(name, sha or "") for name, sha in connection.execute(text("SELECT file_name, sha256 FROM frame"))}
    finally:
        engine.dispose()


def _incomplete_files(work: Path) -> list[str]:
    """Output FITS files that do not read to the end (a half-written file under its final name)."""
    from astropy.io import fits

    bad = []
    for folder in ("aligned", "report"):
        for path in (work / folder).rglob("*.fits") if (work / folder).is_dir() else []:
            try:
                with fits.open(path, memmap=False) as hdus:
                    _ = [h.data for h in hdus]
            except Exception as exc:  # noqa: BLE001 - any failure to read it back is the finding
                bad.append(f"{path.name}: {exc}")
    return bad


# -- the PostgreSQL server, through a proxy that can be cut ----------------------------------------------

class CuttableProxy:
    """A TCP proxy from a local port to the PostgreSQL server; :meth:`cut` resets every connection and refuses
    new ones (the server "stops" for the command), :meth:`restore` listens again on the same port."""

    def __init__(self, target=(POSTGRES_HOST, POSTGRES_PORT)):
        self.target = target
        self.port = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:             # cut meanwhile: this connection dies with it
                    _reset(client)
                    _reset(upstream)
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            ends, self._sockets = self._sockets, set()
        if listener is not None:
            listener.setblocking(False)
            while True:                                        # connections not yet accepted die too
                try:
                    _reset(listener.accept()[0])
                except OSError:
                    break
            try:
                listener.shutdown(socket.SHUT_RDWR)             # wakes the accept() (close alone leaves it bound)
            except OSError:
                pass
            listener.close()
        for end in ends:
            _reset(end)

    def close(self) -> None:
        self.cut()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


def _reset(end: socket.socket) -> None:
    """Drop a connection at once, as when a server dies.  ``shutdown`` first: a close alone, while a pump
    thread waits in ``recv`` on the socket, leaves the connection open with nobody reading it."""
    for step in (lambda: end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"),
                 lambda: end.shutdown(socket.SHUT_RDWR), end.close):
        try:
            step()
        except OSError:
            pass


def postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=postgres",
                        connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - no driver or no server: the PostgreSQL cells skip
        return False


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=postgres",
                         autocommit=True) as connection:
        connection.execute(sql)


# -- a full disk ---------------------------------------------------------------------------------------------

def can_mount_tmpfs(where: Path) -> bool:
    """True when this process may mount a tmpfs (root in CI); checked once by trying."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if made.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


class SmallDisk:
    """A tmpfs of :data:`TMPFS_SIZE_MB` at ``where``; :meth:`fill` leaves ``free`` bytes, :meth:`clear` frees it."""

    def __init__(self, where: Path):
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_MB}m", "tmpfs", str(where)], check=True)
        self.filler = where / ".filler"
        self.room = 0

    def fill(self, free: int) -> None:
        stats = os.statvfs(self.where)
        room = stats.f_bavail * stats.f_frsize - free
        if room > 0:
            with open(self.filler, "wb") as handle:
                handle.truncate(0)
                os.posix_fallocate(handle.fileno(), 0, room)

    def clear(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], check=False)


# -- the shared world: one night, and each command's starting catalog, per backend ---------------------------

@dataclass
class World:
    """The night, and per backend and command the catalog it starts from and the uninterrupted answers."""

    root: Path
    night: Path
    tmpfs: bool
    starts: dict = field(default_factory=dict)      # (backend, command) -> SQLite file or PostgreSQL template
    expected: dict = field(default_factory=dict)    # (backend, command) -> answers
    seconds: dict = field(default_factory=dict)    # (backend, command) -> how long it takes uninterrupted
    templates: list = field(default_factory=list)

    def close(self) -> None:
        for name in self.templates:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prepare(world: World, backend: str, command: str) -> None:
    """Bring a catalog to where ``command`` starts, keep it, then run the command once uninterrupted."""
    key = (backend, command)
    work = world.root / f"start-{backend}-{command}"
    work.mkdir()
    if backend == "sqlite":
        url = f"sqlite:///{work / 'obsdb.sqlite'}"
    else:
        name = f"obsdb_fault_{uuid.uuid4().hex[:10]}"
        _admin(f'CREATE DATABASE "{name}"')
        world.templates.append(name)
        url = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    if command == "init":
        catalog_at_0001(url)
    for step in BEFORE[command]:
        _must(url, _command(step, world.night, work))
    if backend == "sqlite":
        with sqlite3.connect(work / "obsdb.sqlite") as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        world.starts[key] = work / "obsdb.sqlite"
    else:
        world.starts[key] = url.rsplit("/", 1)[1]
    # The uninterrupted run, on a copy: its answers are what every trial must end with.
    copy = world.root / f"expected-{backend}-{command}"
    url_copy = _restore(world, backend, command, copy)
    started = time.monotonic()
    if command == "verdict":
        world.expected[key] = None
    else:
        _must(url_copy, _command(command, world.night, copy))
        world.expected[key] = _answers(url_copy, copy)
    world.seconds[key] = time.monotonic() - started
    _drop(url_copy)


def _restore(world: World, backend: str, command: str, work: Path, proxy: CuttableProxy | None = None) -> str:
    """A fresh copy of the catalog ``command`` starts from, in ``work``; its URL (through ``proxy`` if given)."""
    work.mkdir(parents=True, exist_ok=True)
    start = world.starts[(backend, command)]
    if backend == "sqlite":
        shutil.copyfile(start, work / "obsdb.sqlite")
        return f"sqlite:///{work / 'obsdb.sqlite'}"
    name = f"obsdb_fault_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{start}"')
    return proxy.url(name) if proxy else f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"


def _drop(url: str) -> None:
    if url.startswith("postgresql"):
        _admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def make_world(root: Path) -> World:
    """An empty world in ``root``: the night is simulated, and each command's start prepared, when first needed."""
    return World(root=root, night=root / "night", tmpfs=can_mount_tmpfs(root / "probe"))


def ready(world: World, backend: str, command: str) -> None:
    """Prepare (once) the catalog ``command`` starts from on ``backend``, and its uninterrupted answers."""
    if command != "init" and not world.night.is_dir():
        simulate_night(world.night, **NIGHT)
    if (backend, command) not in world.starts:
        _prepare(world, backend, command)


# -- one trial -----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """How a trial ended: ``recovered``, ``advice`` (with the line), ``LOST`` or ``bad`` (with what)."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return self.kind + (f": {self.detail}" if self.detail else "")


def _advice_line(fault: str, code: int, err: str) -> Outcome | None:
    """None when the faulted command finished or died silently; else the advice, or what was wrong with it."""
    if code == 0 or code == -signal.SIGKILL:
        return None
    if code == -signal.SIGINT and not err.strip():
        # Ctrl-C in the few milliseconds Python has no handler (its start, or its exit once the command is
        # done): the process ends by the signal and prints nothing; the next run decides what it left.
        return None
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) != 1 or "Traceback" in err or UNEXPECTED in err:
        return Outcome("bad", f"exit {code}: " + " | ".join(lines)[:300])
    line = lines[0]
    if any(line.startswith(a) or a in line for a in ADVICE.get(fault, ())):
        return Outcome("advice", line)
    return Outcome("bad", f"exit {code}: {line[:300]}")


def run_trial(world: World, backend: str, command: str, fault: str, seed: int, work: Path) -> Outcome:
    """Run ``command`` with ``fault`` at a random point (``seed``), clear the fault, run it again, and judge."""
    rng = random.Random(f"{backend}/{command}/{fault}/{seed}")
    disk = proxy = None
    file_limit = None
    try:
        work.mkdir(parents=True, exist_ok=True)
        if fault == "disk-full" and world.tmpfs:
            disk = SmallDisk(work / "disk")
            where = work / "disk"
        else:
            where = work
        if fault == "server-stop":
            proxy = CuttableProxy()
        url = _restore(world, backend, command, where, proxy)
        # A random amount of room: log-uniform from nothing to more than any command here writes.
        room = int(2 ** rng.uniform(0, 25)) if fault == "disk-full" else None
        if disk is not None:
            disk.room = room
            if command != "verdict":                          # the desk's disk fills while it runs
                disk.fill(room)
        elif fault == "disk-full":
            file_limit = room
        if command == "verdict":
            return _verdict_trial(world, backend, fault, rng, url, where, disk, proxy, file_limit)
        return _command_trial(world, backend, command, fault, rng, url, where, disk, proxy, file_limit)
    finally:
        if proxy is not None:
            proxy.close()
        if disk is not None:
            disk.close()
        if backend == "postgresql":
            try:
                _drop(url)
            except Exception:  # noqa: BLE001 - never hide the trial's own outcome behind a clean-up failure
                pass


def _inject(proc: subprocess.Popen, fault: str, proxy: CuttableProxy | None) -> set[int]:
    family = _children(proc.pid)
    if fault == "kill":
        proc.send_signal(signal.SIGKILL)
    elif fault == "sigint":
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    elif fault == "server-stop":
        proxy.cut()
    return family


def _command_trial(world, backend, command, fault, rng, url, where, disk, proxy, file_limit) -> Outcome:
    key = (backend, command)
    proc = _start(url, _command(command, world.night, where), file_limit=file_limit)
    family: set[int] = set()
    if fault != "disk-full":
        # A random point from start-up to the end of the work (its uninterrupted time, plus a little).
        time.sleep(rng.uniform(0.2, 1.1 * world.seconds[key] + 0.3))
        family = _inject(proc, fault, proxy)
    try:
        out, err = proc.communicate(timeout=HUNG_AFTER)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Outcome("bad", f"still running {HUNG_AFTER} s after the fault")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in family):
        time.sleep(0.1)
    if [pid for pid in family if _alive(pid)]:
        return Outcome("bad", "workers still alive 10 s after the fault")
    said = _advice_line(fault, proc.returncode, err)
    if said is not None and said.kind == "bad":
        return said
    # The fault cleared; what finished transactions and finished writes hold now must survive the next run.
    if proxy is not None:
        proxy.restore()
    if disk is not None:
        disk.clear()
    if backend == "sqlite":
        with sqlite3.connect(where / "obsdb.sqlite") as connection:
            check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            return Outcome("LOST", f"integrity check: {check}")
    kept = _catalogued(url) if command != "init" else set()
    incomplete = _incomplete_files(where)
    if incomplete:
        return Outcome("LOST", "half-written output: " + incomplete[0])
    code, _, err = _finish(url, _command(command, world.night, where))
    if code != 0:
        return Outcome("LOST" if UNEXPECTED not in err else "bad", f"the next run failed: {err.strip()[:300]}")
    answers = _answers(url, where)
    if answers != world.expected[key]:
        return Outcome("LOST", f"answers differ from an uninterrupted run: {_difference(answers, world.expected[key])}")
    if not kept <= _catalogued(url):
        return Outcome("LOST", f"frames catalogued before the fault are gone: {sorted(kept - _catalogued(url))[:3]}")
    if _leftovers(where):
        return Outcome("LOST", f"temporary files left: {_leftovers(where)[:3]}")
    return said or Outcome("recovered")


def _difference(got: dict, expected: dict) -> str:
    for part in ("frames", "outputs"):
        missing = sorted(set(map(str, expected[part])) - set(map(str, got[part])))
        extra = sorted(set(map(str, got[part])) - set(map(str, expected[part])))
        if missing or extra:
            return f"{part}: missing {missing[:2]}, extra {extra[:2]}"
    return "order"


# -- a desk verdict ------------------------------------------------------------------------------------------

VERDICTS = 24
"""Verdicts a desk trial gives (alternately accept and reject, each with its own reason)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(url: str, where: Path, file_limit: int | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = _start(url, ["serve", "--port", str(port), "--author", "fault", "--cache", str(where / "previews")],
                  file_limit=file_limit)
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(f"obsdb serve stopped: {proc.stderr.read()}")
    raise AssertionError("obsdb serve did not answer within 60 s")


def _verdict_trial(world, backend, fault, rng, url, where, disk, proxy, file_limit) -> Outcome:
    import httpx

    from sqlalchemy import create_engine, text

    proc, base = _serve(url, where, file_limit)
    try:
        night = json.loads(_must(url, ["nights", "--format", "json"]))[0]["night"]
        page = httpx.get(f"{base}/review/{night}/V", timeout=30).text
        csrf = re.search(r"name='csrf' content='([^']+)'", page).group(1)
        ids = [int(i) for i in re.findall(r'"id": (\d+)', page)]
        plan = [{"frame_id": ids[i % len(ids)], "action": "accept" if i % 2 else "reject", "tag": "reject",
                 "reason": f"verdict {i}"} for i in range(VERDICTS)]
        acknowledged: dict[int, str] = {}
        refusals: list[str] = []

        def give(i: int) -> None:
            try:
                answer = httpx.post(base + "/verdict", json=plan[i], headers={"X-CSRF-Token": csrf}, timeout=30)
            except httpx.HTTPError:
                return                                       # the server is gone: nothing was acknowledged
            if answer.status_code == 200:
                acknowledged[i] = answer.json()["status"]
            else:
                try:
                    refusals.append(f"{answer.status_code} {answer.json()['error']}")
                except ValueError:
                    refusals.append(f"{answer.status_code} {answer.text.strip()}")

        first = rng.randint(0, VERDICTS // 2)
        for i in range(first):
            give(i)
        # The fault lands while the next verdicts are being given.
        during = threading.Thread(target=lambda: [give(i) for i in range(first, first + 4)])
        during.start()
        time.sleep(rng.uniform(0, 0.3))
        if fault == "disk-full":
            if disk is not None:
                disk.fill(disk.room)
        else:
            _inject(proc, fault, proxy)
        during.join(timeout=120)
        for i in range(first + 4, first + 6):                 # what the desk says while the fault lasts
            give(i)
        if proc.poll() is not None or fault in ("kill", "sigint"):
            proc.wait(timeout=60)
        bad = [r for r in refusals if r.startswith("500") or "\n" in r or "Internal Server Error" in r]
        if bad:
            return Outcome("bad", bad[0][:300])
        said = refusals[0].split(" ", 1)[1] if refusals else None
        if said and not any(a in said for a in ADVICE.get(fault, ())):
            return Outcome("bad", f"desk said: {said[:300]}")
        # Clear the fault; the next command is the desk again (restarted if it died), given what is left.
        if proxy is not None:
            proxy.restore()
        if disk is not None:
            disk.clear()
        if proc.poll() is not None:
            proc, base = _serve(url, where, None)
            page = httpx.get(f"{base}/review/{night}/V", timeout=30).text
            csrf = re.search(r"name='csrf' content='([^']+)'", page).group(1)
        elif file_limit is not None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            proc, base = _serve(url, where, None)
            page = httpx.get(f"{base}/review/{night}/V", timeout=30).text
            csrf = re.search(r"name='csrf' content='([^']+)'", page).group(1)
        for i in range(VERDICTS):
            if i not in acknowledged:
                refusals.clear()
                give(i)
                if i not in acknowledged and refusals:       # one line of advice, then the next try goes through
                    give(i)
                if i not in acknowledged:
                    return Outcome("bad", f"verdict {i} refused after the fault was cleared: {refusals[:1]}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    # Every acknowledged verdict is in the catalog, and each frame's status is the last one acknowledged.
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            stored = {reason for (reason,) in connection.execute(
                text("SELECT reason FROM tag WHERE author = 'fault' AND source = 'manual'"))}
    finally:
        engine.dispose()
    lost = [i for i in acknowledged if plan[i]["reason"] not in stored]
    if lost:
        return Outcome("LOST", f"acknowledged verdicts missing: {lost[:5]}")
    final = {r["id"]: r["status"] for r in json.loads(_must(url, ["frames", "--format", "json"]))}
    last = {}
    for i in sorted(acknowledged):
        last[plan[i]["frame_id"]] = acknowledged[i]
    if any(final[f] != s for f, s in last.items()):
        return Outcome("LOST", "a frame's status is not the last verdict acknowledged")
    return Outcome("advice", said) if said else Outcome("recovered")


# -- the tests -----------------------------------------------------------------------------------------------

def _backend_or_skip(backend: str) -> None:
    if backend == "postgresql" and not postgres_answers():
        if os.environ.get("OBSDB_REQUIRE_POSTGRES") == "1":
            pytest.fail("OBSDB_REQUIRE_POSTGRES=1 but no PostgreSQL server answers at 127.0.0.1:5432")
        pytest.skip("no PostgreSQL server answers at 127.0.0.1:5432")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    made = make_world(tmp_path_factory.mktemp("faults"))
    yield made
    made.close()


# The trials in the default suite: the upgrade of a 0001 catalog needs no night, so these take seconds.
# (kill -9 in the default suite: tests/pipeline/test_kill.py; a full disk and the rest: -m system.)
QUICK = [("init", "sigint")]


@pytest.mark.parametrize("command, fault", QUICK)
def test_a_fault_at_a_random_point_loses_nothing(world, command, fault, tmp_path):
    ready(world, "sqlite", command)
    outcome = run_trial(world, "sqlite", command, fault, seed=1, work=tmp_path / "trial")
    assert outcome.kind in ("recovered", "advice"), str(outcome)


def _cells() -> list[tuple[str, str]]:
    """(command, fault) cells the grid test runs: all with OBSDB_FAULT_GRID=full, else the diagonal."""
    if os.environ.get("OBSDB_FAULT_GRID") == "full":
        return [(c, f) for c in COMMANDS for f in FAULTS]
    return [(command, FAULTS[i % len(FAULTS)]) for i, command in enumerate(COMMANDS)]


@pytest.mark.system
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("command, fault", _cells())
def test_every_fault_of_every_command(world, backend, command, fault, tmp_path):
    if fault not in faults_for(backend):
        pytest.skip("the server stops on PostgreSQL only")
    _backend_or_skip(backend)
    ready(world, backend, command)
    trials = 2 if os.environ.get("OBSDB_FAULT_GRID") == "full" else 1
    for seed in range(trials):
        outcome = run_trial(world, backend, command, fault, seed=seed, work=tmp_path / f"trial-{seed}")
        assert outcome.kind in ("recovered", "advice"), f"seed {seed}: {outcome}"


def test_a_server_that_does_not_answer_is_named_as_such_not_as_an_unusable_catalog():
    """Found by the fault grid: ``obsdb init`` while the PostgreSQL server was down said "not a usable catalog"."""
    pytest.importorskip("psycopg")
    from obsdb.catalog.db import current_revision, make_engine
    from obsdb.errors import ObsdbError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]                        # nothing listens there once the probe is closed
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/obsdb")
    with pytest.raises(ObsdbError, match="cannot reach the catalog's database server .*Connection refused.*"
                                         "run the command again when the server answers") as raised:
        current_revision(engine)
    assert "not a usable catalog" not in str(raised.value) and "\n" not in str(raised.value)
