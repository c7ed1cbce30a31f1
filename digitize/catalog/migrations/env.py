"""Alembic environment: runs on the connection that :meth:`digitize.catalog.store.Catalog.upgrade` hands over.

There is no alembic.ini: the catalog URL comes from the settings, and
upgrading through ``Catalog.upgrade()`` (``python -m digitize db upgrade``)
takes the lock that keeps concurrent workers from migrating twice.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run the catalog migrations through digitize.catalog.store.Catalog.upgrade()")
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
