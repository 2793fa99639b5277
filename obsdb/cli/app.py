"""Entry point: the `obsdb` command and its global options.

The full command-line app (every command module imported, every command's click object built) costs
about a tenth of a second before a command starts.  A catalog query answers in less than that, so
:func:`main` runs a query command, and the pipeline commands a script runs once per night (``align``,
``render``, ``run``: :data:`LEAN_COMMANDS`), through a lean app that holds only that command and the
global options, built from the same definitions (:func:`lean_app`): the same
options, help and errors.  ``obsdb.cli.app.app`` (the full app, for tests and the CLI reference) is
built on first use.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Optional


def _interrupted_while_starting(_signum, _frame) -> None:
    """Ctrl-C while the command is still loading: one line and status 130, not the traceback of an import."""
    sys.stderr.write("interrupted: nothing was changed\n")
    os._exit(130)


# Only when this is the program being run (the obsdb script, python -m obsdb[.cli.app]), never on import.
if __name__ == "__main__" or os.path.basename(sys.argv[0]) in ("obsdb", "__main__.py"):
    signal.signal(signal.SIGINT, _interrupted_while_starting)

import typer  # noqa: E402

from obsdb.cli import common  # noqa: E402
from obsdb.cli.common import state  # noqa: E402


def _print_version(value: bool) -> None:
    if value:
        from obsdb.version import __version__

        typer.echo(f"obsdb {__version__}")
        raise typer.Exit()


@common.app.callback()
def _global_options(
    ctx: typer.Context,
    db: Optional[str] = typer.Option(None, "--db", envvar="OBSDB_DB",
                                     help="Catalog: a path or an SQLAlchemy URL (default: ./obsdb.sqlite; `run` and "
                                          "`demo` write OUT/obsdb.sqlite unless --db is given, and ignore OBSDB_DB)."),
    config: Optional[str] = typer.Option(None, "--config", envvar="OBSDB_CONFIG",
                                         help="Configuration file (default: the first obsdb.toml in the working "
                                              "folder, the data folder or beside it, or the user's config folder)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print obsdb's version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Say on stderr which configuration file is used (obsdb.toml is looked for "
                                      "in the working folder, the data folder and beside it, then the user's "
                                      "config folder)."),
) -> None:
    """obsdb: catalogue a night of CCD frames, tag and reject them with reasons,
    align them with full shift provenance, and render aligned frames and stacks."""
    state.db = db
    # typer merges --db and OBSDB_DB into one value; click still knows which gave it, and `run`
    # and `demo` honour only a catalog named on the command line (obsdb.cli.pipeline_cmds).
    source = ctx.get_parameter_source("db")
    state.db_from_env = db is not None and source is not None and source.name == "ENVIRONMENT"
    source = ctx.get_parameter_source("config")
    state.config_from_env = config is not None and source is not None and source.name == "ENVIRONMENT"
    state.config = config
    state.verbose = verbose


COMMAND_MODULES = ("catalog_cmds", "quality_cmds", "align_cmds", "render_cmds", "report_cmds", "pipeline_cmds",
                   "serve_cmds", "calib_cmds", "solve_cmds", "photometry_cmds", "export_cmds", "archive_cmds",
                   "doctor_cmds", "cmd_cmds")
"""The modules whose commands make up ``obsdb`` (each registers its commands on the app when imported),
in the order ``obsdb --help`` lists them."""

LEAN_COMMANDS = {"frames": "catalog_cmds", "show": "catalog_cmds", "summary": "catalog_cmds",
                 "nights": "catalog_cmds", "log": "catalog_cmds", "history": "align_cmds",
                 "rejected": "quality_cmds", "align": "align_cmds", "render": "render_cmds", "run": "pipeline_cmds"}
"""The commands :func:`main` runs through a lean app (the queries, and the pipeline commands whose
start-up a night's script pays each time), and the module that defines each (a test checks this
against the full app)."""

GLOBAL_VALUE_OPTIONS = ("--db", "--config")
"""Global options that take a value (the word after them is not the command)."""


def load_commands():
    """The full app: every command module imported (each registers its commands), once."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"obsdb.cli.{name}")
    return common.app


def __getattr__(name: str):
    # `from obsdb.cli.app import app`: the full app, its command modules imported on first use.
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_word(argv: list[str]) -> str | None:
    """The command an ``obsdb`` command line runs (``argv`` without the program), or None when the
    line asks the app itself (``--help``, ``--version``, nothing) or cannot be read simply."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_VALUE_OPTIONS:
            next(words, None)
        elif word.startswith(tuple(f"{option}=" for option in GLOBAL_VALUE_OPTIONS)) or word in ("-v", "--verbose"):
            continue
        elif word.startswith("-"):
            return None  # --help, --version, --install-completion, a typo: the full app answers
        else:
            return word
    return None


def lean_app(command: str):
    """An app holding only ``command`` (one of :data:`LEAN_COMMANDS`) and the global options: the same
    definitions as the full app's, so the same options, help text and errors, at a fraction of the
    start-up (typer builds the click object of this one command, not of every one)."""
    import importlib

    from typer.main import get_command_name

    importlib.import_module(f"obsdb.cli.{LEAN_COMMANDS[command]}")
    lean = typer.Typer(**common.APP_SETTINGS)
    lean.registered_callback = common.app.registered_callback
    lean.registered_commands = [info for info in common.app.registered_commands
                                if (info.name or get_command_name(info.callback.__name__)) == command]
    return lean


def main() -> None:
    """Console-script entry point (also ``python -m obsdb``)."""
    from obsdb.cli.common import BROKEN_PIPE_EXIT, quiet_broken_pipe, report_interrupt

    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    command = None if os.environ.get("_OBSDB_COMPLETE") else command_word(sys.argv[1:])
    app = lean_app(command) if command in LEAN_COMMANDS else load_commands()
    try:
        app()
    except SystemExit as stop:
        # Ctrl-C before a command's own handling: typer stops with 130 and says nothing.
        if stop.code == 130:
            report_interrupt()
        raise
    except BrokenPipeError:
        # Written after a command's own error handling (a table printed at its end): same quiet stop.
        try:
            quiet_broken_pipe()
        except typer.Exit:
            sys.exit(BROKEN_PIPE_EXIT)


if __name__ == "__main__":  # pragma: no cover
    main()
