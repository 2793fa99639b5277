"""The serve command: the review desk in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from obsdb.cli.common import app, console, fail, open_catalog, user_errors

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (beyond 127.0.0.1 a token is "
                                                         "required on every request)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    token: Optional[str] = typer.Option(None, "--token", help="The access token (default: one is made and printed "
                                                              "when --host is not local)."),
    read_only: bool = typer.Option(False, "--read-only", help="Look only: every change is refused."),
    author: Optional[str] = typer.Option(None, "--author", help="The reviewer named on every verdict "
                                                                "(default: your login name)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Folder for the preview images "
                                                               "(default: obsdb-previews beside the catalog)."),
) -> None:
    """Open the review desk in a browser: the nights, a night's frames and plots, a keyboard review.

    Keys in the review: right/left (or j/k) next/previous, b blink the alignment reference, p blink the
    previous frame, s zscale/asinh, a accept, 1-5 reject as tracking-slight, tracking-big, focus-slight,
    use-if-must or reject, 6 reject in your own words, u undo (the verdict is retracted, never deleted).
    Every verdict is a tag, as `obsdb tag` makes, with the reviewer's name: it shows at once in
    `obsdb rejected` and `obsdb log`."""
    import secrets
    import socket

    from obsdb.config import login_name

    try:
        import uvicorn

        from obsdb.web.app import create_app
    except ImportError:
        fail("obsdb serve needs starlette and uvicorn, which obsdb depends on: reinstall obsdb (pip install obsdb)")
    if host not in LOCAL_HOSTS and token is None:
        token = secrets.token_urlsafe(18)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                 "is another obsdb serve running? choose another --port")
    with open_catalog() as catalog, user_errors():
        where = Path(catalog.url.split("///", 1)[1]).parent if catalog.url.startswith("sqlite:///") else Path(".")
        application = create_app(catalog, cache_dir=cache or where / "obsdb-previews",
                                 author=author or login_name(), token=token, read_only=read_only,
                                 # On the loopback the desk answers to its own names only (DNS rebinding);
                                 # beyond it the access token guards every request.
                                 allowed_hosts=None if token else {*LOCAL_HOSTS, host})
        address = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
        # The address alone on its line: terminals make it a link, scripts read it.
        console.print(f"review desk at {address}", soft_wrap=True, highlight=False)
        console.print(f"catalog {catalog.display_url}; reviewer {author or login_name()}"
                      + ("; read-only" if read_only else "") + "; Ctrl-C stops it", soft_wrap=True, highlight=False)
        uvicorn.run(application, host=host, port=port, log_level="warning")
