"""GET /console: the operators' web console (SPEC §5).

The console is three static files (``router/web/static/``) and nothing else on the server: the
page asks for an API token, keeps it in the tab's sessionStorage, and calls the operators'
API (``/api/…``) with it as a bearer token, so every rule of the API — roles, validation,
audit actor, 401/403/409/422 — holds for the console unchanged, and the page itself holds
no secret and needs no session or CSRF protection (a bearer header is never sent by a
browser on its own).

All URLs in the page are relative (``console/console.js``, ``api/status``), so the console
works behind a reverse proxy that strips a path prefix (``SWITCHBOARD_PUBLIC_URL`` with a
path), like the webhooks.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from aiohttp import web

__all__ = ["add_routes"]

_ASSETS: Final = {
    "console.js": "text/javascript",
    "console.css": "text/css",
}

# Scripts and styles only from our own files (no inline code: an injected string can never
# run), fetches only to our own API, and no framing (clickjacking the rollback button).
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # the page is small and changes with every release: always revalidate
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return resources.files("router.web").joinpath("static", name).read_bytes()


async def console_page(request: web.Request) -> web.Response:
    return web.Response(
        body=_read("index.html"),
        content_type="text/html",
        charset="utf-8",
        headers=_SECURITY_HEADERS,
    )


async def console_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text=f"no console file {name!r}\n")
    return web.Response(
        body=_read(name), content_type=content_type, charset="utf-8", headers=_SECURITY_HEADERS
    )


async def console_slash(request: web.Request) -> web.Response:
    # "/console/" would make the page's relative URLs point one level too deep
    raise web.HTTPPermanentRedirect("../console")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/", console_slash)
    app.router.add_get("/console/{name}", console_asset)
