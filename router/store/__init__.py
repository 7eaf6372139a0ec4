"""The database adapter: tables, the engine, the store and its unit of work, migrations.

The only package that imports SQLAlchemy or SQLModel for data (the settings and the CLI
also read SQLAlchemy's URL parser). Errors reach the service as the ports' exceptions
(:mod:`router.service.ports`), never as SQLAlchemy's; rows reach it as the typed records of
:mod:`router.service.records`, never as the table classes of :mod:`router.store.tables`,
which nothing outside this package imports.
"""

from router.store.engine import create_engine, listen_parameters
from router.store.repository import ROUTING_CHANNEL, Store
from router.store.tables import metadata

__all__ = ["ROUTING_CHANNEL", "Store", "create_engine", "listen_parameters", "metadata"]
