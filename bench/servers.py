"""The servers under test, each run in its own process: ``python -m bench.servers KIND --port N``.

``switchboard`` is the real ``switchboard serve`` command (settings from the environment,
logging configured as in production, migrations on start); ``bare`` is the baseline: one
aiohttp handler that parses the same form and answers a fixed TwiML body, with nothing else
(no middleware, no logging, no database). Both answer ``GET /readyz`` so the harness can
wait for them the same way.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

ROUTE_PATH = "/webhooks/twilio/voice/route"

#: About the size and shape of Switchboard's answer to a Gather with a digit.
BARE_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="http://127.0.0.1/webhooks/'
    'twilio/voice/dial-status?attempt=1&amp;destination=hotline" answerOnBridge="true" '
    'method="POST" timeout="25"><Number>+420222333444</Number></Dial></Response>'
)


async def bare_route(request: web.Request) -> web.Response:
    form = await request.post()
    if "CallSid" not in form:
        raise web.HTTPBadRequest(text="CallSid missing\n")
    return web.Response(text=BARE_TWIML, content_type="text/xml", charset="utf-8")


EMAIL_PATH = "/webhooks/email/mime"


async def bare_email(request: web.Request) -> web.Response:
    """The email baseline: read the whole body, answer a small JSON like Switchboard's."""
    body = await request.read()
    if not body:
        raise web.HTTPBadRequest(text="empty body\n")
    return web.json_response(
        {"interaction_id": 0, "category": "admin", "destination": "hotline", "reason": "baseline"}
    )


async def bare_ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def bare_app() -> web.Application:
    app = web.Application(client_max_size=32 * 1024**2)
    app.router.add_post(ROUTE_PATH, bare_route)
    app.router.add_post(EMAIL_PATH, bare_email)
    app.router.add_get("/readyz", bare_ready)
    return app


def serve_bare(host: str, port: int) -> None:
    # the same run_app arguments as `switchboard serve`, so only the application differs
    web.run_app(bare_app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=10)


def serve_switchboard(host: str, port: int) -> None:
    from router.cli import cli

    cli.main(
        args=["serve", "--host", host, "--port", str(port)],
        prog_name="switchboard",
        standalone_mode=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("kind", choices=["switchboard", "bare"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind == "bare":
        serve_bare(args.host, args.port)
    else:
        serve_switchboard(args.host, args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
