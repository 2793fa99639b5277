"""Entry point: the `obsdb` command and its global options."""

from __future__ import annotations

import os
from typing import Optional

import typer

from obsdb.cli.common import app, state


def _print_version(value: bool) -> None:
    if value:
        from obsdb import __version__

        typer.echo(f"obsdb {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    db: Optional[str] = typer.Option(None, "--db", envvar="OBSDB_DB",
                                     help="Catalog: a path or an SQLAlchemy URL (default: ./obsdb.sqlite; `run` and "
                                          "`demo` write OUT/obsdb.sqlite unless --db is given, and ignore OBSDB_DB)."),
    config: Optional[str] = typer.Option(None, "--config", envvar="OBSDB_CONFIG",
                                         help="Configuration file (default: ./obsdb.toml if present)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print obsdb's version and exit."),
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


# Command modules register themselves on `app` when imported.
from obsdb.cli import catalog_cmds, quality_cmds, align_cmds, render_cmds, report_cmds, pipeline_cmds, serve_cmds  # noqa: E402,F401,I001,E501
from obsdb.cli import calib_cmds  # noqa: E402,F401,I001


def main() -> None:
    """Console-script entry point (also ``python -m obsdb``)."""
    import sys

    from obsdb.cli.common import BROKEN_PIPE_EXIT, quiet_broken_pipe

    try:
        app()
    except BrokenPipeError:
        # Written after a command's own error handling (a table printed at its end): same quiet stop.
        try:
            quiet_broken_pipe()
        except typer.Exit:
            sys.exit(BROKEN_PIPE_EXIT)


if __name__ == "__main__":  # pragma: no cover
    main()
