"""Shared CLI plumbing: the app, the catalog option, one-line errors, output formats."""

from __future__ import annotations

import builtins
import json
import os
import re
import sys
from contextlib import contextmanager
from enum import Enum

import typer

from obsdb.errors import ObsdbError
from obsdb.failures import known_failure

APP_SETTINGS = dict(
    name="obsdb",
    help="A database-backed observation manager for a night of CCD frames.",
    no_args_is_help=True,
    add_completion=True,  # obsdb --install-completion: typer's, for bash, zsh, fish and PowerShell
    pretty_exceptions_enable=False,
    # Help text is printed as written: "[qa]" is a section of obsdb.toml, not a rich style.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
"""The settings of the ``obsdb`` app, and of the lean one-command apps :func:`obsdb.cli.app.main` runs."""

app = typer.Typer(**APP_SETTINGS)
# Off a terminal, the width is COLUMNS (80 when unset), as on one: tables pick the columns that fit
# (obsdb.cli.tables); --wide and --format json/csv give whole lines to scripts.
# markup=False: paths, reasons and header values are printed as they are ("[see ds9]" is not a style).


class LazyConsole:
    """A rich ``Console`` made on first use: a command that answers in JSON or CSV never imports rich
    (a sixth of a query command's start-up).  Attributes set before then are set on it when made."""

    def __init__(self, **options):
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_made", None)
        object.__setattr__(self, "_pending", {})

    def _console(self):
        made = object.__getattribute__(self, "_made")
        if made is None:
            from rich.console import Console

            made = Console(**object.__getattribute__(self, "_options"))
            for name, value in object.__getattribute__(self, "_pending").items():
                setattr(made, name, value)
            object.__setattr__(self, "_made", made)
        return made

    def __getattr__(self, name: str):
        return getattr(self._console(), name)

    def _surely_no_terminal(self) -> bool:
        """Whether rich, were the console made now, would find no terminal: it is not made yet (nothing
        set on it but the broken-pipe handler), no option forces a terminal, the environment names none
        of the variables that make rich decide otherwise (``FORCE_COLOR``, ``TTY_COMPATIBLE``,
        ``TTY_INTERACTIVE``: with any of them set, rich is asked), and its file is no terminal (or has
        no ``isatty``, or is closed: rich says no terminal then too)."""
        settings = object.__getattribute__(self, "_options")
        if (object.__getattribute__(self, "_made") is not None or "force_terminal" in settings
                or set(object.__getattribute__(self, "_pending")) - {"on_broken_pipe"}
                or any(name in os.environ for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"))):
            return False
        isatty = getattr(sys.stderr if settings.get("stderr") else sys.stdout, "isatty", None)
        try:
            return isatty is None or not isatty()
        except ValueError:
            return True

    @property
    def file(self):
        """``Console.file``: the standard stream it writes to, given without making the console when it
        is not made and was given no file of its own (a table written as plain text needs only that)."""
        settings = object.__getattribute__(self, "_options")
        if (object.__getattribute__(self, "_made") is None and "file" not in settings
                and "file" not in object.__getattribute__(self, "_pending")):
            stream = sys.stderr if settings.get("stderr") else sys.stdout
            if stream is not None:
                return stream
        return self._console().file

    @property
    def width(self) -> int:
        """``Console.width``, answered without making the console when it surely finds no terminal
        (every table asks it: rich's import and console are a quarter of a listing's start-up)."""
        settings = object.__getattribute__(self, "_options")
        if (os.name == "nt" or "width" in settings or "height" in settings or hasattr(builtins, "get_ipython")
                or not self._surely_no_terminal()):
            # Windows (rich's legacy console), a size given, Jupyter (its own width): rich's answer.
            return self._console().width
        return _width_off_terminal()

    @property
    def is_terminal(self) -> bool:
        """``Console.is_terminal``, answered without making the console when it surely finds none:
        render asks it for its progress bar."""
        return False if self._surely_no_terminal() else self._console().is_terminal

    def print(self, *objects, sep: str = " ", end: str = "\n", **options) -> None:
        """``Console.print``; plain text bound for a file that is no terminal is written as it is, since rich
        would write the same bytes (no styles off a terminal, no markup, no wrapping: see :func:`_plain_text`)
        and importing it costs a command that prints one line (align, render) a fortieth of a second."""
        text = _plain_text(self, objects, sep, end, options)
        if text is None:
            self._console().print(*objects, sep=sep, end=end, **options)
            return
        self._write(text)

    def rule(self, title: str = "", **options) -> None:
        """``Console.rule``; off a terminal the line is written as rich would draw it
        (:func:`obsdb.cli.plain.plain_rule`), without importing rich (`show`, `history`)."""
        if not options and isinstance(title, str) and self._surely_no_terminal():
            from obsdb.cli.plain import plain_rule

            text = plain_rule(title, self.width)
            if text is not None:
                self._write(text)
                return
        self._console().rule(title, **options)

    def _write(self, text: str) -> None:
        """Plain text to the console's stream, flushed, a broken pipe handled as rich handles it."""
        stream = sys.stderr if object.__getattribute__(self, "_options").get("stderr") else sys.stdout
        try:
            stream.write(text)
            stream.flush()  # as rich does after each print: lines on stdout and stderr stay in order
        except BrokenPipeError:
            # The reader went away (`| head`): the console's own handler, as rich would call it.
            handler = object.__getattribute__(self, "_pending").get("on_broken_pipe")
            if handler is None:
                raise
            handler()


    def __setattr__(self, name: str, value) -> None:
        made = object.__getattribute__(self, "_made")
        if made is None:
            object.__getattribute__(self, "_pending")[name] = value
        else:
            setattr(made, name, value)


def _width_off_terminal() -> int:
    """The width rich gives a console whose file is no terminal, on POSIX outside Jupyter: ``COLUMNS``
    when it is a number, else the size of the first of standard input, output and error that is a
    terminal (a command piped from a shell still fits its window), else 80.  ``tests/cli/test_startup.py``
    compares it with rich's in each case."""
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns)
    width = 0
    for stream, default in ((sys.__stdin__, 0), (sys.__stdout__, 1), (sys.__stderr__, 2)):
        try:
            descriptor = stream.fileno()
        except Exception:  # as rich: no stream, or one without a descriptor
            descriptor = default
        try:
            width = os.get_terminal_size(descriptor).columns
        except (AttributeError, ValueError, OSError):  # not a terminal
            continue
        break
    return width or 80


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
"""Control characters but the newline (rich drops some and expands tabs: such text goes through rich)."""


def _plain_text(lazy: LazyConsole, objects: tuple, sep: str, end: str, options: dict) -> str | None:
    """What ``lazy.print(*objects, sep=sep, end=end, **options)`` writes, when that is the plain text
    itself; None when rich must print it.

    That is when the console is not made yet (nothing set on it but the broken-pipe handler, which
    :meth:`LazyConsole.print` calls as rich would), prints strings only, without
    markup, emoji or highlighting, and with no option but a style and ``soft_wrap``; the text holds no
    control character but newlines (rich drops some and expands tabs); and rich would find no terminal
    (:meth:`LazyConsole._surely_no_terminal`), so would write no style either.  Without soft wrapping
    (``soft_wrap=False``) each line is broken at spaces to the console's width, as rich breaks it
    (:func:`obsdb.cli.plain.plain_wrapped`).  A :class:`Styled` line is its plain text.
    """
    settings = object.__getattribute__(lazy, "_options")
    if (any(settings.get(name) for name in ("highlight", "markup", "emoji")) or not settings.get("soft_wrap")
            or not set(options) <= {"style", "soft_wrap"}
            or not all(isinstance(part, (str, Styled)) for part in (*objects, sep, end))):
        return None
    text = sep.join(map(str, objects)) + end
    if _CONTROL.search(text) or not lazy._surely_no_terminal():
        return None
    if options.get("soft_wrap", True) is not True:
        if options["soft_wrap"] is not False or not text.endswith("\n"):
            return None
        from obsdb.cli.plain import plain_wrapped

        width, lines = lazy.width, []
        for line in text[:-1].split("\n"):
            wrapped = plain_wrapped(line, width)
            if wrapped is None:
                return None
            lines += wrapped
        text = "\n".join(lines) + "\n"
    return text


console = LazyConsole(highlight=False, markup=False, emoji=False, soft_wrap=True)
err_console = LazyConsole(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


class Styled:
    """A line whose ``label`` is styled and whose ``rest`` (data) is printed as it is (:func:`styled`):
    rich's ``Text`` when rich prints it (``__rich__``), its plain text when :class:`LazyConsole` writes
    it off a terminal, where rich would write no style either."""

    __slots__ = ("label", "style", "rest")

    def __init__(self, label: str, style: str, rest: str = ""):
        self.label, self.style, self.rest = label, style, rest

    def __str__(self) -> str:
        return self.label + self.rest

    def __rich__(self):
        from rich.text import Text

        return Text.assemble((self.label, self.style), self.rest)


def styled(label: str, style: str, rest: str = "") -> Styled:
    """A line whose ``label`` is styled and whose ``rest`` (data) is printed as it is."""
    return Styled(label, style, rest)


class OutputFormat(str, Enum):
    """Output formats of listing commands."""

    table = "table"
    json = "json"
    csv = "csv"


class ReportFormat(str, Enum):
    """Output formats of commands whose answer is not one flat table (no CSV)."""

    table = "table"
    json = "json"


def night_option():
    """``--night NAME`` (repeatable, or ``all``): the nights a command works on."""
    return typer.Option(None, "--night", help="Only this night (YYYY-MM-DD, as `obsdb nights` lists them); "
                                              "repeat for several, or 'all'. Not needed in a catalog of one night.")


def status_option(default: str | None = "accepted", *, what: str = "Frames", allow_any: bool = True,
                  short: bool = False):
    """``--status``: one of :data:`obsdb.catalog.status.STATUSES` (and ``any``), the choices in the help and
    a wrong value answered with a did-you-mean (:func:`obsdb.text.not_one_of`), from the one vocabulary."""
    from obsdb.catalog.status import STATUSES

    choices = (*STATUSES, "any") if allow_any else STATUSES

    def check(value):
        if value is not None and value not in choices:
            from obsdb.text import not_one_of

            fail(not_one_of("--status", value, choices))
        return value

    names = ("--status", "-s") if short else ("--status",)
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
    default_text = f" (default {default})" if default else ""
    return typer.Option(default, *names, callback=check, help=f"{what}: {listed}{default_text}.",
                        show_default=False)


def image_type_option():
    """``--type``: the image types of :data:`obsdb.imaging.header.IMAGE_TYPES` in the help; a type an
    obsdb.toml maps IMAGETYP to is taken too once stored, and a typo is answered by the catalog with a
    did-you-mean over both (:func:`obsdb.catalog.queries.frame_filter`)."""
    from obsdb.imaging.header import IMAGE_TYPES

    listed = ", ".join(IMAGE_TYPES[:-1]) + f" or {IMAGE_TYPES[-1]}"
    return typer.Option(None, "--type", "-t", help=f"{listed}.")


def nights_arg(values):
    """The ``--night`` values as the catalog takes them (None: no restriction)."""
    return list(values) if values else None


class State:
    """Global options, set by the app callback."""

    db: str | None = None
    db_from_env: bool = False
    """``db`` came from OBSDB_DB, not from --db on the command line."""
    config: str | None = None
    config_from_env: bool = False
    """``config`` came from OBSDB_CONFIG (a rerun command line need not repeat it)."""
    verbose: bool = False
    """``--verbose``: say which configuration file a command uses (and other details) on stderr."""
    interrupt_reported: bool = False
    """The Ctrl-C line was printed (it is printed once)."""


state = State()


BROKEN_PIPE_EXIT = 141
"""Exit status when the reader of stdout goes away (``obsdb frames | head -1``): 128 + SIGPIPE, as a Unix
tool killed by the signal reports it; nothing is printed."""


def quiet_broken_pipe() -> None:
    """Stop quietly when stdout's reader has gone: no message, no second error when Python flushes at exit."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        # Python flushes stdout once more at exit; pointing it at /dev/null keeps that flush silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise typer.Exit(BROKEN_PIPE_EXIT)


# rich stops a broken pipe with status 1; a table cut short by `| head` stops like CSV and JSON do.
console.on_broken_pipe = quiet_broken_pipe


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error on stderr and exit."""
    err_console.print(styled("error:", "bold red", f" {message}"), soft_wrap=True)
    raise typer.Exit(code)


def report_interrupt() -> None:
    """The one line Ctrl-C prints, once per command (typer's own stop at 130 says nothing: see ``main``)."""
    if not state.interrupt_reported:
        state.interrupt_reported = True
        err_console.print(styled("interrupted:", "yellow", " completed work is saved; run the command again to finish"))


@contextmanager
def user_errors():
    """Turn known errors into one-line messages; never let a traceback reach the user."""
    try:
        yield
    except typer.Exit:
        raise
    except BrokenPipeError:
        quiet_broken_pipe()
    except KeyboardInterrupt:
        report_interrupt()
        raise typer.Exit(130)
    except Exception as exc:  # noqa: BLE001 - the boundary between obsdb and the user
        # Every user-fixable error derives from ObsdbError (catalog, selector, expression, config, ...).
        if isinstance(exc, ObsdbError):
            fail(str(exc))
        if os.environ.get("OBSDB_DEBUG"):
            raise
        known = known_failure(exc, catalog=state.db)
        if known:
            fail(known)
        detail = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"unexpected {type(exc).__name__}: {detail} (set OBSDB_DEBUG=1 for a traceback)", 2)


def load_config_verbosely(*, data_folders=()):
    """The configuration (``--config``, OBSDB_CONFIG, or the first obsdb.toml found), said on stderr with
    ``--verbose``; a malformed file is a one-line error."""
    from obsdb.config import load_config

    with user_errors():
        config = load_config(state.config, data_folders=data_folders)
    if state.verbose:
        err_console.print(config.describe(), soft_wrap=True)
    return config


@contextmanager
def open_catalog(*, lite: bool = False):
    """The catalog named by --db / OBSDB_DB, checked to be at the code's schema.

    ``lite``: a query command's catalog, read with the plain driver (``sqlite3``, psycopg) where it can be
    (:class:`obsdb.catalog.lite.LiteCatalog`: no SQLAlchemy imported), else the normal one.
    """
    from obsdb.catalog.lite import LiteCatalog

    def normal():
        from obsdb.api import Catalog

        return Catalog.open(state.db)

    with user_errors():
        catalog = (LiteCatalog.open(state.db, normal) if lite else None) or normal()
        try:
            yield catalog
        finally:
            catalog.close()


KNOWN_SHOWN = 20
"""Known values a filter hint lists before it says "..."."""


def filter_hints(catalog, selection) -> None:
    """One note on stderr for each ``--band`` or ``--tag`` of ``selection`` (a
    :class:`~obsdb.catalog.records.FrameFilter`) that names nothing in the catalog.

    The listing still runs (and is empty, with status 0): an empty answer is an
    answer, but ``--tag clod`` should not look like "no cloudy frames".
    """
    band, tag = selection.band, selection.tag
    if not band and not tag:
        return
    known = catalog.known_values(("bands",) * bool(band) + ("tags",) * bool(tag))
    if band:
        exact = band.startswith("=") and len(band) > 1
        wanted = band[1:] if exact else band
        stored = known["bands"] if exact else [b.lower() for b in known["bands"]]
        if (wanted if exact else wanted.lower()) not in stored:
            _unknown_value_note("--band", wanted, "band", known["bands"])
    if tag and tag not in known["tags"]:
        _unknown_value_note("--tag", tag, "active tag", known["tags"])


def _unknown_value_note(option: str, value: str, what: str, names: list[str]) -> None:
    from obsdb.text import did_you_mean

    hint = did_you_mean(value, names, template="did you mean {!r}? ")
    listed = (", ".join(names[:KNOWN_SHOWN]) + (" ..." if len(names) > KNOWN_SHOWN else "")) if names else "none"
    err_console.print(styled("note:", "yellow", f" {option} {value!r} names no {what} in the catalog; "
                                                f"{hint}known: {listed}"), soft_wrap=True)


def print_json(document) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, default=_json_default, allow_nan=False) + "\n")


def _json_default(value):
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_nan(value):
    """Replace NaN/inf floats by None, recursively (JSON has no NaN)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_nan(v) for v in value]
    return value


def _dumps(item, **layout) -> str:
    try:
        return json.dumps(item, default=_json_default, allow_nan=False, **layout)
    except ValueError:  # a NaN or an infinity somewhere: JSON has none, they become null
        return json.dumps(clean_nan(item), default=_json_default, allow_nan=False, **layout)


STREAM_CHUNK = 1 << 20
"""Characters of a streamed JSON listing gathered before each write (:func:`print_json_stream`)."""


def print_json_stream(items) -> None:
    """A JSON list written item by item, in constant memory, for long listings.

    Indented like :func:`print_json` on a terminal; piped, one compact item per
    line (still one JSON document, and three times cheaper to write: an archive's
    100,000 records stream in seconds).  NaN and infinities become null.
    """
    out = sys.stdout
    pretty = out.isatty()
    first = True
    pending: list[str] = []
    size = 0
    for item in items:
        if pretty:
            text = "\n".join("  " + line for line in _dumps(item, indent=2).splitlines())
        else:
            text = _dumps(item, separators=(",", ":"))
        pending.append(("[\n" if first else ",\n") + text)
        size += len(text)
        first = False
        if size >= STREAM_CHUNK or pretty:
            # A write a chunk, not a record: a pipe took a system call every 8 kB (a second of the
            # 93 MB listing of an archive's rejects).
            out.write("".join(pending))
            pending, size = [], 0
    out.write("".join(pending) + ("[]\n" if first else "\n]\n"))


def print_csv(rows, columns: list[str]) -> None:
    """Rows as CSV on stdout."""
    import csv

    from obsdb.text import printable

    writer = csv.writer(sys.stdout)
    writer.writerow(columns)
    # On a terminal a file name's escape sequences would act on it: shown escaped there, kept as data
    # when the CSV goes to a file or a pipe.
    shown = printable if sys.stdout.isatty() else (lambda value: value)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else shown(row.get(c)) for c in columns])


def frames_text(count: int) -> str:
    """'1 frame', '2 frames'."""
    from obsdb.text import plural

    return plural(count, "frame")


def fmt(value, digits: int = 1) -> str:
    """A number for a table: thousands separators, fixed digits, '-' for missing."""
    import math

    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class progress_bar:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        self.task = None

    def __enter__(self):
        # The bar goes to stderr, so JSON on a piped stdout stays clean.
        if err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[item]}", markup=False),
                                console=err_console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=None, item="")
        return self

    def __call__(self, done: int, total: int, item: str = "") -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, item=item)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


QA_THRESHOLD_OPTIONS = {
    "cloud_background_ratio": (float, "cloud: sky above this multiple of the band's clear sky (default 3)."),
    "cloud_transparency": (float, "cloud: star flux below this fraction of the band's reference (default 0.5)."),
    "cloud_background_max": (float, "cloud: sky above this many ADU (off by default)."),
    "trail_elongation": (float, "trail: median star elongation a/b above this (default 1.6)."),
    "focus_fwhm_ratio": (float, "focus: minor-axis FWHM (across the major axis) above this multiple of the band's best "
                                "(default 1.5)."),
    "focus_fwhm_max": (float, "focus: minor-axis FWHM above this many px (off by default)."),
    "min_stars": (int, "few-stars: fewer stars than this, whatever the yardstick (default 1: no star at all)."),
    "few_stars_ratio": (float, "few-stars: fewer than this fraction of the stars the yardstick's frames typically show "
                               "(default 0.1)."),
    "full_flux_transparency": (float, "bright-sky: a raised sky with stars at this transparency or above is twilight "
                                      "or moonlight when the Sun or Moon is up (default 0.7)."),
    "clear_quantile": (float, "The quantile of a band's skies and FWHMs its yardsticks come from (default 0.5)."),
}
"""Every threshold of the QA rules (obsdb.pipeline.qa_rules.QaThresholds) as a command-line option;
a test checks that the two lists agree.  Kept here so that `--help` needs no numpy."""


def with_qa_threshold_options(command):
    """Give a command one ``--NAME`` option per QA threshold; it receives them as ``qa_thresholds``.

    The options given (not those left at their defaults) arrive as a dict,
    which overrides obsdb.toml's ``[qa]`` and a plan's ``[qa]``.
    """
    import functools
    import inspect
    from typing import Optional

    signature = inspect.signature(command)
    params = [p for p in signature.parameters.values() if p.name != "qa_thresholds"]
    import typing

    # Evaluated in the command's own module: the wrapper lives here, where its names are unknown.
    hints = typing.get_type_hints(command)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params]
    annotations = {k: v for k, v in hints.items() if k != "qa_thresholds"}
    for name, (kind, text) in QA_THRESHOLD_OPTIONS.items():
        option = typer.Option(None, f"--{name.replace('_', '-')}", help=text, rich_help_panel="QA thresholds")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))
        annotations[name] = Optional[kind]

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {name: kwargs.pop(name) for name in QA_THRESHOLD_OPTIONS}
        return command(qa_thresholds={k: v for k, v in given.items() if v is not None}, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = annotations
    del wrapper.__wrapped__
    return wrapper


def with_executor_options(command):
    """Give a command ``--executor`` and ``--scheduler``; it receives them as ``executor_kind``, ``scheduler``.

    The command opens the executor with :func:`open_executor` (a Dask cluster
    is started only then, and closed when the command ends).
    """
    import functools
    import inspect
    import typing
    from typing import Optional

    signature = inspect.signature(command)
    hints = typing.get_type_hints(command)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
              if p.name not in ("executor_kind", "scheduler")]
    extra = {
        "executor_kind": typer.Option(None, "--executor", help="Where the per-frame work runs: serial, processes "
                                      "(--workers of them, the default for more than one) or dask."),
        "scheduler": typer.Option(None, "--scheduler", envvar="OBSDB_DASK_SCHEDULER",
                                  help="A Dask scheduler (tcp://HOST:PORT) for --executor dask; without one, a "
                                       "local cluster of --workers processes."),
    }
    for name, option in extra.items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[str]))
    annotations = {k: v for k, v in hints.items() if k not in extra}
    annotations.update({name: Optional[str] for name in extra})

    @functools.wraps(command)
    def wrapper(**kwargs):
        return command(**kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = annotations
    del wrapper.__wrapped__
    return wrapper


@contextmanager
def open_executor(kind: str | None, workers: int, scheduler: str | None):
    """The executor of a command, closed at its end (one line on a bad choice or an unreachable scheduler).

    Every command that works on pixels opens one: the process's allocator is set for frame-sized
    arrays here too (:func:`obsdb.pipeline.allocator.tune_for_frames`), before any worker is forked.
    """
    from obsdb.pipeline.allocator import tune_for_frames
    from obsdb.pipeline.executors import make_executor

    tune_for_frames()
    with user_errors():
        executor = make_executor(kind, workers=workers, scheduler=scheduler)
    try:
        yield executor
    finally:
        executor.close()
