"""The servers under test, each run in its own process: ``python -m bench.servers KIND --port N``.

``switchboard`` is the real ``switchboard serve`` command (settings from the environment,
logging configured as in production, migrations on start); ``bare`` is the baseline: one
aiohttp handler that parses the same form and answers a fixed TwiML body, with nothing else
(no middleware, no logging, no database). Both answer ``GET /readyz`` so the harness can
wait for them the same way.

``smtp-sink`` is not under test: the local SMTP server the ``email`` benchmark delivers to,
in a process of its own so it competes with neither the service nor the load generator. Its
HTTP side also takes chat hand-offs (``POST /hooks/chat/{destination}``, answered 200 and
counted), so ``soak`` can point a routing document's chat URLs at it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from email.parser import BytesHeaderParser
from typing import Any

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


class SinkHandler:
    """aiosmtpd handler that accepts every message and counts it by Message-ID, with the
    arrival time (``time.monotonic()``: one clock for every process on the machine)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.copies: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        # headers only: the sink must stay cheap next to what it measures
        headers = BytesHeaderParser().parsebytes(bytes(envelope.content))
        message_id = str(headers.get("Message-ID", "")).strip().strip("<>")
        now = time.monotonic()
        with self.lock:
            self.copies[message_id] += 1
            self.first = now if self.first is None else self.first
            self.last = now
        return "250 OK"

    def summary(self, *, copies: bool) -> dict[str, Any]:
        with self.lock:
            result: dict[str, Any] = {
                "count": sum(self.copies.values()),
                "first": self.first,
                "last": self.last,
            }
            if copies:
                result["copies"] = dict(self.copies)
            return result

    def reset(self) -> None:
        with self.lock:
            self.copies.clear()
            self.first = self.last = None


CHAT_HANDOFF_PATH = "/hooks/chat"


def serve_smtp_sink(host: str, port: int, smtp_port: int) -> None:
    """An SMTP sink (aiosmtpd ``Controller``, its own thread) on *smtp_port*, and on *port*
    its HTTP side: ``GET /readyz``, ``GET /received`` (count, first and last arrival, and
    ``chat``: hand-offs taken per destination; ``?copies=1`` adds the count per Message-ID),
    ``POST /reset`` and ``POST /hooks/chat/{destination}`` (a chat hand-off: counted, 200)."""
    from aiosmtpd.controller import Controller

    handler = SinkHandler()
    # only the aiohttp thread touches it: no lock
    handoffs: Counter[str] = Counter()

    async def received(request: web.Request) -> web.Response:
        summary = handler.summary(copies="copies" in request.query)
        return web.json_response({**summary, "chat": dict(handoffs)})

    async def reset(request: web.Request) -> web.Response:
        handler.reset()
        handoffs.clear()
        return web.json_response({"count": 0})

    async def chat_handoff(request: web.Request) -> web.Response:
        await request.read()
        handoffs[request.match_info["destination"]] += 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/readyz", bare_ready)
    app.router.add_get("/received", received)
    app.router.add_post("/reset", reset)
    app.router.add_post(CHAT_HANDOFF_PATH + "/{destination}", chat_handoff)
    controller = Controller(handler, hostname=host, port=smtp_port)
    controller.start()
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None)
    finally:
        controller.stop()


def serve_switchboard(host: str, port: int) -> None:
    from router.cli.commands import cli

    cli.main(
        args=["serve", "--host", host, "--port", str(port)],
        prog_name="switchboard",
        standalone_mode=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("kind", choices=["switchboard", "bare", "smtp-sink"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, help="smtp-sink: where it takes SMTP")
    args = parser.parse_args(argv)
    if args.kind == "bare":
        serve_bare(args.host, args.port)
    elif args.kind == "smtp-sink":
        if args.smtp_port is None:
            parser.error("smtp-sink needs --smtp-port")
        serve_smtp_sink(args.host, args.port, args.smtp_port)
    else:
        serve_switchboard(args.host, args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
