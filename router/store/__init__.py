"""The database: tables, engine, the store and its unit of work."""

from router.store.repository import *  # noqa: F403
