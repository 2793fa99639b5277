"""The review desk: the archive, a night's frames and plots, and a keyboard review of one band.

Server-rendered pages (the templates of :mod:`obsdb.present`, autoescape on), inline SVG plots and one
small script (no build step).  Every verdict is written through :class:`obsdb.Catalog` (``tag`` /
``untag``), as ``obsdb tag`` does, with the reviewer's name and the time, so it shows at once in
``obsdb rejected`` and ``obsdb log``; undo retracts, never deletes.

Safety: frames are served by catalog id only (never a path from the request);
state changes are POSTs carrying the page's CSRF token; beyond 127.0.0.1 every
request needs the access token; ``read_only`` refuses every change; the only
files written are the pictures in the cache folder (:mod:`obsdb.web.previews`).

The routes live by what they do: :mod:`obsdb.web.pages` (HTML), :mod:`obsdb.web.pictures` (PNG and
JSON of a frame), :mod:`obsdb.web.changes` (verdicts, the reviewer's name).  Each reads the desk's
state (:class:`Desk`) from ``request.app.state.desk``.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from obsdb.web.reviewer import REVIEWER_COOKIE, clean_name


@dataclass
class Desk:
    """What every route needs: the catalog, the picture cache, who reviews, and the page's CSRF token."""

    catalog: object
    previews: object
    author: str
    read_only: bool
    csrf: str

    def reviewer(self, request) -> str:
        """The name the reviewer gave in the page (a cookie), else the desk's author."""
        from urllib.parse import unquote

        return clean_name(unquote(request.cookies.get(REVIEWER_COOKIE, ""))) or self.author


def create_app(catalog, *, cache_dir: str | Path, author: str, token: str | None = None,
               read_only: bool = False, allowed_hosts=None):
    """The ASGI application over an open catalog.

    Parameters
    ----------
    catalog : obsdb.Catalog
    cache_dir : path
        Where the frames' pictures are cached (per frame content and kind); nothing else is written.
    author : str
        The reviewer named on every verdict, unless the reviewer gives a name in the page (kept for
        the browser session in a cookie).
    token : str, optional
        Required on every request (``?token=`` once, then a cookie) when given: the server
        listens beyond localhost.
    read_only : bool
        Refuse every change (403).
    allowed_hosts : iterable of str, optional
        Host names the desk answers to (the ``Host`` header, and the ``Origin`` of a change); any
        other gets 403.  A page on another site whose name a DNS server points at 127.0.0.1 ("DNS
        rebinding") then reads nothing and records nothing.  None: no check (tests, a token).

    Returns
    -------
    starlette.applications.Starlette
        The application; ``app.state.previews`` is its :class:`~obsdb.web.previews.PreviewCache`.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from obsdb.web import changes, pages, pictures
    from obsdb.web.photometry import photometry
    from obsdb.web.guard import Guard, MachineFailures
    from obsdb.web.previews import PreviewCache

    previews = PreviewCache(cache_dir, lambda record: catalog.stored_stars(int(record["id"]), limit=60))
    desk = Desk(catalog=catalog, previews=previews, author=author, read_only=read_only,
                csrf=secrets.token_urlsafe(24))
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}
    routes = [Route("/", pages.nights), Route("/archive", pages.archive), Route("/night/{name:path}", pages.night),
              Route("/archive/targets", pages.archive_targets), Route("/archive/trends", pages.archive_trends),
              Route("/review/{rest:path}", pages.review), Route("/photometry", photometry),
              Route("/frame/{frame_id:int}.png", pictures.frame_png),
              Route("/frame/{frame_id:int}/stars.png", pictures.stars_png),
              Route("/frame/{frame_id:int}/aligned.png", pictures.aligned_png),
              Route("/frame/{frame_id:int}/crop.png", pictures.crop_png),
              Route("/frame/{frame_id:int}.json", pictures.frame_json),
              Route("/verdict", changes.verdict, methods=["POST"]),
              Route("/reviewer", changes.rename, methods=["POST"])]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        previews.stop()

    middleware = [Middleware(Guard, hosts=hosts, token=token),
                  Middleware(MachineFailures, catalog=getattr(catalog, "display_url", None))]
    application = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    application.state.desk = desk
    application.state.previews = previews
    application.state.csrf = desk.csrf
    return application

