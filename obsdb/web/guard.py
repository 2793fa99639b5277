"""Who may ask the review desk anything: its own host names, its own pages for a change, the token.

Checked before every route: a ``Host`` the desk does not answer to (DNS rebinding), a change whose
``Origin`` is another site, a request without the access token: each gets a one-line 403.
"""

from __future__ import annotations

import secrets

from starlette.middleware.base import BaseHTTPMiddleware


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a token from a request (any characters) with ours."""
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def host_name(value: str) -> str:
    """``127.0.0.1`` from ``127.0.0.1:8765``, ``::1`` from ``[::1]:8765``; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard(BaseHTTPMiddleware):
    """The host, origin and token checks of every request (see the module's docstring).

    Parameters
    ----------
    app : ASGI application
    hosts : set of str or None
        Host names answered to; None: any.
    token : str or None
        The access token every request must carry (``?token=`` once, then a cookie); None: none needed.
    """

    def __init__(self, app, *, hosts: set[str] | None, token: str | None):
        super().__init__(app)
        self.hosts, self.token = hosts, token

    async def dispatch(self, request, call_next):
        from starlette.responses import PlainTextResponse

        hosts, token = self.hosts, self.token
        if hosts is not None and host_name(request.headers.get("host", "")) not in hosts:
            return PlainTextResponse("this desk answers only to its own address "
                                     f"({', '.join(sorted(hosts))}): open the address obsdb serve printed", 403)
        origin = request.headers.get("origin")
        if request.method != "GET" and origin is not None:
            origin_host = host_name(origin.split("://", 1)[-1].split("/", 1)[0])
            if origin_host != host_name(request.headers.get("host", "")) or (
                    hosts is not None and origin_host not in hosts):
                return PlainTextResponse("a change must come from the desk's own pages", 403)
        if token is not None:
            given = request.query_params.get("token") or request.cookies.get("obsdb_token")
            if not given or not same_secret(given, token):
                return PlainTextResponse("a token is needed: open the address obsdb serve printed", 403)
            response = await call_next(request)
            response.set_cookie("obsdb_token", token, httponly=True, samesite="strict")
            return response
        return await call_next(request)


class MachineFailures(BaseHTTPMiddleware):
    """A full disk or a stopped database server: one line (503), as the command line says it, never a 500.

    Parameters
    ----------
    app : ASGI application
    catalog : str or None
        The catalog's name as the user gave it, for the sentences about it.
    """

    def __init__(self, app, *, catalog: str | None = None):
        super().__init__(app)
        self.catalog = catalog

    async def dispatch(self, request, call_next):
        from starlette.responses import JSONResponse

        from obsdb.failures import known_failure

        try:
            return await call_next(request)
        except Exception as exc:  # noqa: BLE001 - only the machine's failures are answered here
            if (known := known_failure(exc, catalog=self.catalog)) is None:
                raise
            return JSONResponse({"error": known}, 503)
