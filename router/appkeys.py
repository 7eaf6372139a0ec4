"""Every resource the web application shares, declared once and typed.

Reading this module shows the application's dependency graph: what a handler may reach
through ``request.app[...]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from router.metrics import Metrics
from router.routing import RoutingState
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
