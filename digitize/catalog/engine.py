"""How the catalog talks to its database: engines, fork safety, the SQLite writer queue, error mapping, transactions.

SQLite is the default (WAL, ``busy_timeout``, write transactions opened with ``BEGIN IMMEDIATE`` so
writers queue instead of failing on lock upgrades; ``synchronous=FULL`` unless the URL says
``?synchronous=normal``, which trades the last commits on a power cut for about ten times more commits a
second); PostgreSQL (``psycopg`` 3) serves several machines. Every engine hides bound parameters from its
error messages, so a driver error's text (and so a log) does not carry the values sent, such as a citizen
ID. PostgreSQL's own message adds a DETAIL line quoting the key that collides, or the whole row that fails
a CHECK or NOT NULL constraint: :func:`mapped_errors` re-raises such errors with the driver's first line
only, and without the original in the traceback.

Database trouble that a retry can cure (locked, connection lost, deadlock) raises
:class:`~digitize.errors.CatalogUnavailable`. :class:`CatalogBase` is what every part of
:class:`~digitize.catalog.store.Catalog` builds on: its transactions and its schema upgrade.

Each write transaction costs a turn in the writer queue and a commit (an fsync on SQLite FULL and on
PostgreSQL): :meth:`CatalogBase.transaction` lets a caller make several catalog calls one transaction,
e.g. a state change and the events that describe it, which then commit together or not at all.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from digitize.catalog.schema import MIGRATIONS_DIR
from digitize.errors import CatalogUnavailable, ConfigurationError

_UPGRADE_LOCK_ID = 0x6469676974  # pg advisory lock key ("digit"): one schema upgrade at a time

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_QUEUES: weakref.WeakSet[WriterQueue] = weakref.WeakSet()


def _forget_pools_after_fork() -> None:
    """A forked child must not reuse the parent's connections (SQLAlchemy's advice) nor its write turn."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)
    for queue in list(_QUEUES):
        queue.after_fork()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


class WriterQueue:
    """Orders SQLite writers of one database file through an advisory lock on ``<file>-writer.lock``.

    SQLite's own busy handler sleeps longer and longer (up to 100 ms) while another process writes, so
    several processes allocating codes at once get slower than one. Waiting here instead (a thread lock,
    then ``flock`` polled every millisecond) hands the database over as soon as it is free. SQLite's
    locking stays the safety net for writers that do not take this lock (sqlite3 shell, other tools).
    """

    def __init__(self, database: Path) -> None:
        database = database.absolute()
        self._path = database.with_name(database.name + "-writer.lock")
        self._threads = threading.Lock()
        self._fd: int | None = None
        _QUEUES.add(self)

    def after_fork(self) -> None:
        """In a forked child: the inherited descriptor shares the parent's lock and the thread lock may be held."""
        self._threads = threading.Lock()
        if self._fd is not None:
            os.close(self._fd)  # the parent's lock stays: its own descriptor still refers to it
            self._fd = None

    def _descriptor(self) -> int | None:
        """The lock file, or ``None`` where it cannot be created (read-only folder: SQLite's locking alone)."""
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return None
        return self._fd

    @contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        """The write turn, across this process's threads and other processes; CatalogUnavailable after ``timeout``."""
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            raise CatalogUnavailable(f"catalog busy: no write turn within {timeout:.0f} s")
        try:
            descriptor = self._descriptor()
            if descriptor is None:
                yield
                return
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise CatalogUnavailable(
                            f"catalog busy: another process kept the write turn for {timeout:.0f} s") from None
                    time.sleep(0.001)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def make_engine(url: str, *, busy_timeout: float) -> Engine:
    """An engine for ``url``, forgotten by forked children; SQLite waits ``busy_timeout`` seconds for a lock."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3; psycopg2 is not installed
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        _ENGINES.add(engine)
        return engine
    synchronous = str(parsed.query.get("synchronous", "full")).upper()
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigurationError(f"catalog URL: synchronous={synchronous.lower()} must be off, normal, full or extra")
    parsed = parsed.difference_update_query(["synchronous"])
    memory = parsed.database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False},
                                  hide_parameters=True)
    else:
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout}, hide_parameters=True)
    _configure_sqlite(engine, busy_timeout=busy_timeout, synchronous=synchronous, wal=not memory)
    _ENGINES.add(engine)
    return engine


def _configure_sqlite(engine: Engine, *, busy_timeout: float, synchronous: str, wal: bool) -> None:
    """Pragmas on every new connection, and transactions begun by SQLAlchemy in the mode the caller asks for."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that upgrades to a write lock can fail at
        # once with "database is locked" whatever busy_timeout says.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _translate(exc: sa_exc.DBAPIError) -> Exception:
    """Map a driver error to the project's families; the URL (and any password) never appears."""
    text = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    lowered = text.lower()
    if "no such table" in lowered or "no such column" in lowered or (
        "does not exist" in lowered and ("relation" in lowered or "column" in lowered)
    ):
        return ConfigurationError(
            f"catalog schema missing or out of date ({text})",
            hint="Run 'python -m digitize db upgrade' (Catalog.upgrade()) before using the catalog.",
        )
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or exc.connection_invalidated:
        return CatalogUnavailable(f"catalog database unavailable: {type(exc.orig).__name__}: {text}")
    return exc


class DriverMessage(Exception):
    """The first line of a driver's error: what went wrong, without the row values a DETAIL line quotes."""


def _without_row_data(exc: sa_exc.DBAPIError) -> sa_exc.DBAPIError:
    """The same SQLAlchemy error (callers still catch IntegrityError…) with the driver's first line only."""
    full = str(exc.orig).strip() if exc.orig is not None else ""
    first = full.splitlines()[0] if full else ""
    if full == first:
        return exc
    clean = type(exc)(exc.statement, exc.params, DriverMessage(first), hide_parameters=True,
                      connection_invalidated=exc.connection_invalidated)
    return clean


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Driver errors a retry can cure, or a missing schema, come out as the project's errors; others as they are.

    "As they are" less any row data: see :func:`_without_row_data` (a traceback in a task log must not
    carry a citizen ID from PostgreSQL's DETAIL line).
    """
    try:
        yield
    except sa_exc.DBAPIError as exc:
        mapped = _translate(exc)
        if mapped is not exc:
            raise mapped from exc
        clean = _without_row_data(exc)
        if clean is exc:
            raise
        raise clean from None


class CatalogBase:
    """The database under the catalog: its engine, transactions and schema; one instance per process.

    :class:`~digitize.catalog.store.Catalog` inherits it through every mixin that adds query methods, so
    each mixin's SQL runs under the same locking, queueing and error mapping.
    """

    def __init__(self, url: str, *, busy_timeout: float) -> None:
        self.url = url
        self._busy_timeout = busy_timeout
        self._engine = make_engine(url, busy_timeout=busy_timeout)
        self._dialect = self._engine.dialect.name
        database = self._engine.url.database
        self._writers = (
            WriterQueue(Path(database))
            if self._dialect == "sqlite" and database not in (None, "", ":memory:")
            else None
        )
        self._open: ContextVar[Connection | None] = ContextVar(f"catalog-transaction-{id(self)}", default=None)
        """The write transaction this thread (or task) has open on this catalog, which later calls join."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Close pooled connections (tests, benchmarks)."""
        self._engine.dispose()

    # --------------------------------------------------------------------------------- transactions

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``, for callers whose SQL differs between the two."""
        return self._dialect

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the catalog calls of the block one write transaction: one writer turn, one commit.

        Every :meth:`write` and :meth:`read` of this catalog in the block, in this thread (or task), joins it,
        so a state change and the events that describe it commit together or not at all. Keep slow work
        (OCR, signing, the archive) out of the block: other writers wait for its end.
        """
        with self.write():
            yield

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed on exit; on SQLite writers of the file queue for their turn
        (across threads and processes) and take the write lock at BEGIN, so they wait instead of failing
        "database is locked".

        Inside an open write of the same thread (or task) it joins that transaction instead, as a savepoint:
        its changes commit with the outer ones, and a failure undoes its own only and leaves the outer
        transaction usable (PostgreSQL refuses every statement after an error otherwise), so a caller that
        catches it, e.g. an IntegrityError to retry, can carry on.

        Driver errors a retry can cure come out as :class:`~digitize.errors.CatalogUnavailable`.
        """
        outer = self._open.get()
        if outer is not None:
            with self._joined(outer):
                yield outer
            return
        with mapped_errors(), self._queue(), self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                token = self._open.set(conn)
                try:
                    yield conn
                finally:
                    self._open.reset(token)

    @contextmanager
    def _joined(self, outer: Connection) -> Iterator[None]:
        """A savepoint in the open transaction: what fails inside is undone alone, as its own transaction would be."""
        with mapped_errors(), outer.begin_nested():
            yield

    @contextmanager
    def _queue(self) -> Iterator[None]:
        if self._writers is None:
            yield
        else:
            with self._writers.hold(self._busy_timeout):
                yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reads: it takes no write turn, so it does not wait behind writers; errors mapped
        as in :meth:`write`. Inside an open write of the same thread it reads through that one, and so sees
        what the write changed."""
        outer = self._open.get()
        if outer is not None:
            with self._joined(outer):
                yield outer
            return
        with mapped_errors(), self._engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT."""
        return (pg_dialect.insert if self._dialect == "postgresql" else sqlite_dialect.insert)(table)

    # ------------------------------------------------------------------------------------ schema

    def upgrade(self) -> None:
        """Create or upgrade the schema to the latest migration; safe to run again and from several processes."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.write() as conn:
            if self._dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_ID)))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """Alembic revision the database is at (``None`` before :meth:`upgrade`)."""
        from alembic.runtime.migration import MigrationContext

        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()
