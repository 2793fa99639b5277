"""Entry point: the `obsdb` command and its global options."""

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

from obsdb.cli.common import app, state  # noqa: E402


def _print_version(value: bool) -> None:
    if value:
        from obsdb.version import __version__

        typer.echo(f"obsdb {__version__}")
        raise typer.Exit()


@app.callback()
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


# Command modules register themselves on `app` when imported.
from obsdb.cli import catalog_cmds, quality_cmds, align_cmds, render_cmds, report_cmds, pipeline_cmds, serve_cmds  # noqa: E402,F401,I001,E501
from obsdb.cli import calib_cmds  # noqa: E402,F401,I001
from obsdb.cli import solve_cmds  # noqa: E402,F401,I001
from obsdb.cli import photometry_cmds  # noqa: E402,F401,I001
from obsdb.cli import export_cmds  # noqa: E402,F401,I001
from obsdb.cli import archive_cmds  # noqa: E402,F401,I001
from obsdb.cli import doctor_cmds  # noqa: E402,F401,I001
from obsdb.cli import cmd_cmds  # noqa: E402,F401,I001


def main() -> None:
    """Console-script entry point (also ``python -m obsdb``)."""
    import sys

    from obsdb.cli.common import BROKEN_PIPE_EXIT, quiet_broken_pipe, report_interrupt

    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
