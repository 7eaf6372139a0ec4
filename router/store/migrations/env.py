"""Alembic environment: always handed an open connection by router.migrate."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `switchboard db upgrade`, not the alembic command")

context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
