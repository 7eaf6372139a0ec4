"""Every resource the web application shares, declared once and typed.

Reading this module shows the application's dependency graph: what a handler may reach
through ``request.app[...]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import aiohttp
from aiohttp import web

from integrations.smtp import SmtpSender
from router.metrics import Metrics
from router.service.outbox import OutboxWorker
from router.service.readiness import Readiness
from router.service.routing import RoutingState
from router.settings import Settings
from router.store import Store

Clock = Callable[[], datetime]

settings_key = web.AppKey("settings_key", Settings)
clock_key: web.AppKey[Clock] = web.AppKey("clock_key")
metrics_key = web.AppKey("metrics_key", Metrics)
store_key = web.AppKey("store_key", Store)
routing_key = web.AppKey("routing_key", RoutingState)
customer_secret_key = web.AppKey("customer_secret_key", bytes)
#: Set to make the routing follower look for a new version now (after a local change).
wake_key = web.AppKey("wake_key", asyncio.Event)
#: Set to make the outbox worker look for due forwards now (after a new one was written).
outbox_wake_key = web.AppKey("outbox_wake_key", asyncio.Event)
#: The running outbox worker (its ``senders`` say which kinds of forward are sent at all).
outbox_worker_key = web.AppKey("outbox_worker_key", OutboxWorker)
#: The one outbound HTTP client session (chat hand-offs).
http_client_key = web.AppKey("http_client_key", aiohttp.ClientSession)
#: The email sender and its pool of SMTP connections; absent without SMTP settings.
smtp_sender_key = web.AppKey("smtp_sender_key", SmtpSender)
#: Whether the database can be written now (``/readyz``), probed cheaply and in bounded time.
readiness_key = web.AppKey("readiness_key", Readiness)
