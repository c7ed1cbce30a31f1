"""SQL catalog: agencies, the register of valid results, documents, their files and events, code sequences.

All SQL of the project lives here (SQLAlchemy 2 Core). SQLite is the default
(WAL, ``busy_timeout``, write transactions opened with ``BEGIN IMMEDIATE`` so
writers queue instead of failing on lock upgrades; ``synchronous=FULL`` unless
the URL says ``?synchronous=normal``, which trades the last commits on a power
cut for about ten times more commits a second); PostgreSQL (``psycopg`` 3)
serves several machines. The schema is created and upgraded by the Alembic
migrations in ``digitize/catalog/migrations``, run by :meth:`Catalog.upgrade`.

Document codes are allocated in the same transaction that writes them onto
the document, from a per-(agency, kind, year) counter row that the
transaction locks: codes are unique, a re-run gets the same code back, and a
crash before commit burns nothing, so the sequence has no gaps.

Database trouble that a retry can cure (locked, connection lost, deadlock)
raises :class:`~digitize.errors.CatalogUnavailable`; requests that do not fit
the catalog's state raise :class:`~digitize.errors.CatalogConflict`.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import os
import re
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from digitize.codes import (
    DOCUMENT_KINDS,
    format_document_code,
    parse_agency_code,
    parse_dossier_code,
    parse_procedure_code,
    validate_template,
)
from digitize.errors import (
    AgencyUnknown,
    CatalogConflict,
    CatalogUnavailable,
    CodeError,
    ConfigurationError,
    ImportFileError,
)

LEVELS = ("province", "district", "commune")
STATUSES = ("RECEIVED", "ARCHIVED", "QUARANTINED")
OUTCOMES = ("success", "failure", "warning")
SQLITE_BUSY_TIMEOUT_S = 30.0
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_UPGRADE_LOCK_ID = 0x6469676974  # pg advisory lock key ("digit"): one schema upgrade at a time
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------------------------------------- schema


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend stores (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("catalog timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agencies = sa.Table(
    "agencies",
    metadata,
    sa.Column("code", sa.String(13), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("parent_code", sa.String(13)),
    sa.Column("remote", sa.Boolean, nullable=False),
    sa.Column("one_stop", sa.Boolean, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),
    sa.Column("successor_code", sa.String(13)),
    sa.CheckConstraint("level IN ('province', 'district', 'commune')", name="level"),
)

register = sa.Table(
    "register",
    metadata,
    sa.Column("register_id", sa.String(100), primary_key=True),
    sa.Column("agency_code", sa.String(13), sa.ForeignKey("agencies.code"), nullable=False, index=True),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("dossier_code", sa.String(40), index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date),
    sa.Column("holder_id", sa.String(100)),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("batch_id", sa.String(200), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("code", sa.String(100)),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("supersedes_id", sa.Integer, sa.ForeignKey("documents.id"), unique=True),
    sa.Column("agency_code", sa.String(13), nullable=False, index=True),
    sa.Column("kind", sa.String(2), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date),
    sa.Column("register_id", sa.String(100), index=True),
    sa.Column("dossier_code", sa.String(40)),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("holder_id", sa.String(100), index=True),  # the reuse API lists a holder's documents
    sa.Column("scanned_at", sa.String(100)),
    sa.Column("manifest_document_id", sa.String(200)),
    sa.Column("reason", sa.String(64)),
    sa.Column("message", sa.Text),
    sa.Column("pdf_key", sa.Text),
    sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("sidecar_key", sa.Text),
    sa.Column("sidecar_sha256", sa.String(64)),
    sa.Column("pages", sa.Integer),
    sa.Column("mean_confidence", sa.Float),
    sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("archived_at", UtcDateTime),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.UniqueConstraint("code", "version"),
    sa.CheckConstraint("status IN ('RECEIVED', 'ARCHIVED', 'QUARANTINED')", name="status"),
    sa.CheckConstraint("kind IN ('KQ', 'TP')", name="kind"),
)

document_files = sa.Table(
    "document_files",
    metadata,
    sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("original_key", sa.Text),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id"), index=True),
    sa.Column("batch_id", sa.String(200), index=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("tool_version", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("outcome IN ('success', 'failure', 'warning')", name="outcome"),
)

code_sequences = sa.Table(
    "code_sequences",
    metadata,
    sa.Column("agency_code", sa.String(13), primary_key=True),
    sa.Column("kind", sa.String(2), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("next_seq", sa.Integer, nullable=False),
)


# ---------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class FileSpec:
    """One original file of a document."""

    position: int
    """Order of the file within the document (the manifest's order)."""

    name: str
    """Path of the file relative to the batch folder."""

    sha256: str
    """SHA-256 of the file's bytes, lower-case hex."""

    size: int
    """Size in bytes."""


def fingerprint_of(file_hashes: Sequence[str]) -> str:
    """Identity of a document's content: the file's sha256, or sha256 of the ordered hashes joined by newlines."""
    if not file_hashes:
        raise ValueError("a document needs at least one file")
    for digest in file_hashes:
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise ValueError(f"file hash {digest!r} is not a lower-case hex SHA-256")
    if len(file_hashes) == 1:
        return file_hashes[0]
    return hashlib.sha256("\n".join(file_hashes).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class DocumentSpec:
    """What the pipeline knows of a document when it registers it (from the manifest and the files)."""

    batch_id: str
    """Batch the document arrived in."""

    files: tuple[FileSpec, ...]
    """Original files; their order by ``position`` defines the fingerprint."""

    agency_code: str
    """Agency with authority over the document (its issuer); coverage counts it at this agency's level."""

    kind: str
    """``KQ`` (procedure result) or ``TP`` (dossier component)."""

    title: str
    """Name of the document."""

    issued_date: date
    """Issue date."""

    manifest_document_id: str | None = None
    """The manifest's key for the document."""

    procedure_code: str | None = None
    """National TTHC procedure code (``D.DDDDDD[.<agency>]``)."""

    dossier_code: str | None = None
    """Circular 01/2018 dossier code."""

    register_id: str | None = None
    """Register row the document digitizes (links it to the coverage denominator)."""

    valid_until: date | None = None
    """End of validity of a result, ``None`` when indefinite."""

    holder_id: str | None = None
    """Citizen ID or tax code of the holder (personal data)."""

    scanned_at: str | None = None
    """Agency code of the one-stop unit that scanned it."""

    @property
    def fingerprint(self) -> str:
        """See :func:`fingerprint_of`; files taken in ``position`` order."""
        return fingerprint_of([f.sha256 for f in sorted(self.files, key=lambda f: f.position)])

    def validate(self) -> None:
        """Refuse what the catalog cannot store faithfully (bad codes raise :class:`CodeError`)."""
        if not self.batch_id:
            raise ValueError("batch_id is empty")
        if not self.files:
            raise ValueError("a document needs at least one file")
        positions = [f.position for f in self.files]
        if len(set(positions)) != len(positions):
            raise ValueError(f"file positions repeat: {positions}")
        for spec in self.files:
            if spec.size < 0 or not spec.name:
                raise ValueError(f"file {spec!r} has no name or a negative size")
        parse_agency_code(self.agency_code)
        if self.kind not in DOCUMENT_KINDS:
            raise CodeError(f"document kind {self.kind!r} must be one of {', '.join(DOCUMENT_KINDS)}")
        if not self.title.strip():
            raise ValueError("title is empty")
        if self.procedure_code is not None:
            parse_procedure_code(self.procedure_code)
        if self.dossier_code is not None:
            parse_dossier_code(self.dossier_code)
        if self.valid_until is not None and self.valid_until < self.issued_date:
            raise ValueError(f"valid_until {self.valid_until} is before issued_date {self.issued_date}")
        self.fingerprint  # noqa: B018 - validates the hashes


@dataclass(frozen=True)
class DocumentRecord:
    """A document as the catalog holds it."""

    id: int
    """Catalog id."""
    fingerprint: str
    """See :func:`fingerprint_of`."""
    batch_id: str
    """Batch it was first registered in."""
    status: str
    """``RECEIVED``, ``ARCHIVED`` or ``QUARANTINED``."""
    code: str | None
    """Uniform document code, once allocated (shared by all versions)."""
    version: int
    """1, or more for a correction that supersedes an earlier version."""
    agency_code: str
    """Issuer of the document."""
    kind: str
    """``KQ`` or ``TP``."""
    title: str
    """Name of the document."""
    issued_date: date
    """Issue date."""
    valid_until: date | None
    """End of validity, ``None`` when indefinite."""
    register_id: str | None
    """Register row it digitizes."""
    dossier_code: str | None
    """Circular 01/2018 dossier code."""
    procedure_code: str | None
    """TTHC procedure code."""
    holder_id: str | None
    """Citizen ID or tax code of the holder."""
    scanned_at: str | None
    """Agency code of the unit that scanned it."""
    reason: str | None
    """Reason code while quarantined."""
    message: str | None
    """What the officer should do, while quarantined."""
    pdf_key: str | None
    """Archive key of the signed PDF."""
    pdf_sha256: str | None
    """SHA-256 of the signed PDF."""
    sidecar_key: str | None
    """Archive key of the JSON sidecar."""
    sidecar_sha256: str | None
    """SHA-256 of the sidecar."""
    pages: int | None
    """Pages of the PDF."""
    mean_confidence: float | None
    """Mean OCR confidence (0-100)."""
    needs_review: bool
    """OCR flagged pages (low confidence or resolution)."""
    received_at: datetime
    """Registration time (UTC)."""
    archived_at: datetime | None
    """Archiving time (UTC)."""
    files: tuple[FileSpec, ...]
    """Original files by position."""
    original_keys: tuple[str | None, ...] = ()
    """Archive key of each original, by position (``None`` until archived)."""
    manifest_document_id: str | None = None
    """The manifest's key for the document."""
    supersedes_id: int | None = None
    """Id of the version this one corrects."""
    lease_owner: str | None = None
    """Worker (``host:pid:token``) processing the document now, see :meth:`Catalog.claim`; ``None`` when idle."""
    lease_expires_at: datetime | None = None
    """When that worker's claim lapses unless renewed (UTC)."""


@dataclass(frozen=True)
class ArchivedInfo:
    """What the archive stage stored, recorded by :meth:`Catalog.mark_archived`."""

    pdf_key: str
    """Key of the signed PDF."""
    pdf_sha256: str
    """Its SHA-256 (as read back)."""
    sidecar_key: str
    """Key of the JSON sidecar."""
    sidecar_sha256: str
    """Its SHA-256."""
    original_keys: tuple[str, ...]
    """Key of each original file, by position."""
    pages: int
    """Pages of the PDF."""
    mean_confidence: float | None
    """Mean OCR confidence, ``None`` when nothing was OCR'd."""
    needs_review: bool
    """OCR flagged pages for a human look."""


@dataclass(frozen=True)
class Agency:
    """An agency (administrative unit or department) and its validity."""

    code: str
    """QCVN 102:2016 code."""
    name: str
    """Official name."""
    level: str
    """``province``, ``district`` or ``commune``: the administrative level coverage is counted at."""
    parent_code: str | None
    """Agency it belongs to."""
    remote: bool
    """Remote commune (excluded from some plan targets)."""
    one_stop: bool
    """Runs a one-stop unit (Bộ phận Một cửa)."""
    valid_from: date
    """First day it exists."""
    valid_to: date | None
    """Last day it exists (inclusive), ``None`` while it exists."""
    successor_code: str | None
    """Agency that took over after a merger."""

    def valid_on(self, day: date) -> bool:
        """Whether it exists on ``day`` (``valid_to`` inclusive)."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class Event:
    """A PREMIS-style event on a document or a batch."""

    id: int
    """Catalog id (orders events)."""
    document_id: int | None
    """Document concerned, ``None`` for batch-level events."""
    batch_id: str | None
    """Batch concerned."""
    event_type: str
    """What happened (e.g. ``identifier_assignment``)."""
    outcome: str
    """``success``, ``failure`` or ``warning``."""
    tool: str
    """Software that acted."""
    tool_version: str
    """Its version."""
    detail: str
    """Free text for people."""
    created_at: datetime
    """When (UTC)."""


@dataclass(frozen=True)
class RowError:
    """A row an import refused."""

    row_number: int
    """Spreadsheet row (the header is row 1)."""
    message: str
    """What is wrong and what was expected."""


@dataclass(frozen=True)
class ImportSummary:
    """Outcome of an agencies or register import (upsert by key)."""

    added: int
    """New rows."""
    changed: int
    """Existing rows whose values changed."""
    unchanged: int
    """Existing rows already identical."""
    rejected: list[RowError]
    """Refused rows, in file order; the other rows were imported."""


# ------------------------------------------------------------------------------------------- engine


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_QUEUES: weakref.WeakSet[_WriterQueue] = weakref.WeakSet()


def _forget_pools_after_fork() -> None:
    """A forked child must not reuse the parent's connections (SQLAlchemy's advice) nor its write turn."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)
    for queue in list(_QUEUES):
        queue.after_fork()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


class _WriterQueue:
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


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3; psycopg2 is not installed
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        _ENGINES.add(engine)
        return engine
    synchronous = str(parsed.query.get("synchronous", "full")).upper()
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigurationError(f"catalog URL: synchronous={synchronous.lower()} must be off, normal, full or extra")
    parsed = parsed.difference_update_query(["synchronous"])
    database = parsed.database
    memory = database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        if not memory:
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

    _ENGINES.add(engine)
    return engine


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


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except sa_exc.DBAPIError as exc:
        mapped = _translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------- catalog


from digitize.catalog.reuse import ReuseRecords  # noqa: E402  (reuse.py needs the tables above)


class Catalog(ReuseRecords):
    """The catalog database; one instance per process (it holds a connection pool)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _make_engine(url)
        self._dialect = self._engine.dialect.name
        database = self._engine.url.database
        self._writers = (
            _WriterQueue(Path(database))
            if self._dialect == "sqlite" and database not in (None, "", ":memory:")
            else None
        )

    def __repr__(self) -> str:
        return f"Catalog({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Close pooled connections (tests, benchmarks)."""
        self._engine.dispose()

    # --------------------------------------------------------------------------------- transactions
    # The public surface for modules that keep their own tables in the catalog database (search, api):
    # their SQL then runs under the same locking, queueing and error mapping as the catalog's own.

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``, for callers whose SQL differs between the two."""
        return self._dialect

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed on exit; on SQLite writers of the file queue for their turn
        (across threads and processes) and take the write lock at BEGIN, so they wait instead of failing
        "database is locked".

        Driver errors a retry can cure come out as :class:`~digitize.errors.CatalogUnavailable`.
        """
        with _guard(), self._queue(), self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _queue(self) -> Iterator[None]:
        if self._writers is None:
            yield
        else:
            with self._writers.hold(SQLITE_BUSY_TIMEOUT_S):
                yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reads: it takes no write turn, so it does not wait behind writers; errors mapped
        as in :meth:`write`."""
        with _guard(), self._engine.connect() as conn, conn.begin():
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

    # ---------------------------------------------------------------------------------- agencies

    def get_agency(self, code: str, *, as_of: date | None = None) -> Agency | None:
        """The agency with ``code`` (``None`` if unknown, or if it did not exist on ``as_of``)."""
        parse_agency_code(code)
        with self.read() as conn:
            row = conn.execute(sa.select(agencies).where(agencies.c.code == code)).mappings().first()
        if row is None:
            return None
        agency = Agency(**dict(row))
        if as_of is not None and not agency.valid_on(as_of):
            return None
        return agency

    def import_agencies(self, path: Path) -> ImportSummary:
        """Upsert agencies by code from CSV (UTF-8, BOM accepted) or XLSX; bad rows are reported, not imported.

        Columns: code, name, level, valid_from (required); parent_code, remote, one_stop, valid_to,
        successor_code (optional). Parents and successors must be in the file or already in the catalog.
        """
        header, rows = _read_table(path)
        _require_columns(path, header, ("code", "name", "level", "valid_from"))
        rejected: list[RowError] = []
        parsed: dict[str, tuple[int, dict[str, Any]]] = {}
        for number, raw in rows:
            try:
                values = _agency_values(raw)
            except ValueError as exc:
                rejected.append(RowError(number, _message(exc)))
                continue
            if values["code"] in parsed:
                rejected.append(RowError(number, f"code {values['code']} repeats row {parsed[values['code']][0]}"))
                continue
            parsed[values["code"]] = (number, values)
        with self.write() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
            while True:  # a refused parent takes its children with it
                available = known | set(parsed)
                dropped = []
                for code, (number, values) in parsed.items():
                    for column in ("parent_code", "successor_code"):
                        ref = values[column]
                        if ref is not None and ref not in available:
                            dropped.append(code)
                            rejected.append(RowError(
                                number, f"column {column}: agency {ref} is neither in the file nor in the catalog"))
                            break
                if not dropped:
                    break
                for code in dropped:
                    del parsed[code]
            summary = self._upsert(conn, agencies, "code", [v for _, v in parsed.values()])
        rejected.sort(key=lambda e: e.row_number)
        return ImportSummary(*summary, rejected=rejected)

    def import_register(self, path: Path) -> ImportSummary:
        """Upsert register rows by register_id from CSV or XLSX; bad rows are reported, not imported.

        Columns: register_id, agency_code, title, issued_date (required); procedure_code, dossier_code,
        valid_until, holder_id (optional). Agencies must be imported first.
        """
        header, rows = _read_table(path)
        _require_columns(path, header, ("register_id", "agency_code", "title", "issued_date"))
        with self.read() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
        rejected: list[RowError] = []
        parsed: dict[str, tuple[int, dict[str, Any]]] = {}
        for number, raw in rows:
            try:
                values = _register_values(raw)
            except ValueError as exc:
                rejected.append(RowError(number, _message(exc)))
                continue
            if values["agency_code"] not in known:
                rejected.append(RowError(
                    number, f"column agency_code: agency {values['agency_code']} is not in the catalog; "
                            "import it with the agencies first"))
                continue
            if values["register_id"] in parsed:
                rejected.append(RowError(
                    number, f"register_id {values['register_id']} repeats row {parsed[values['register_id']][0]}"))
                continue
            parsed[values["register_id"]] = (number, values)
        with self.write() as conn:
            summary = self._upsert(conn, register, "register_id", [v for _, v in parsed.values()])
        return ImportSummary(*summary, rejected=rejected)

    @staticmethod
    def _upsert(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> tuple[int, int, int]:
        """Insert new rows, update changed ones; returns (added, changed, unchanged)."""
        existing: dict[str, dict[str, Any]] = {}
        keys = [r[key] for r in rows]
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for row in conn.execute(sa.select(table).where(table.c[key].in_(chunk))).mappings():
                existing[row[key]] = dict(row)
        new = [r for r in rows if r[key] not in existing]
        changed = [r for r in rows if r[key] in existing and existing[r[key]] != r]
        if new:
            conn.execute(sa.insert(table), new)
        if changed:
            columns: dict[str, Any] = {c.name: sa.bindparam(f"v_{c.name}") for c in table.c if c.name != key}
            statement = sa.update(table).where(table.c[key] == sa.bindparam("v_key")).values(columns)
            conn.execute(statement, [{"v_key": r[key], **{f"v_{c}": r[c] for c in columns}} for r in changed])
        return len(new), len(changed), len(rows) - len(new) - len(changed)

    # --------------------------------------------------------------------------------- documents

    def register_document(self, spec: DocumentSpec) -> tuple[DocumentRecord, bool]:
        """Register a document as RECEIVED; if its content (fingerprint) is known, return that record instead.

        Returns ``(record, created)``. Safe under races: the unique fingerprint decides, the loser reads the
        winner's row.
        """
        spec.validate()
        fingerprint = spec.fingerprint
        for _attempt in range(3):
            try:
                with self.write() as conn:
                    found = self._find(conn, documents.c.fingerprint == fingerprint)
                    if found is not None:
                        return found, False
                    received_at = _now()
                    statement = (
                        self._insert(documents)
                        .values(**_spec_values(spec), fingerprint=fingerprint, status="RECEIVED", version=1,
                                received_at=received_at, needs_review=False)
                        .on_conflict_do_nothing(index_elements=["fingerprint"])
                        .returning(documents.c.id)
                    )
                    document_id = conn.execute(statement).scalar()
                    if document_id is None:  # a concurrent registration won; read its row next time round
                        continue
                    conn.execute(sa.insert(document_files), _file_rows(document_id, spec))
                    return _new_record(document_id, spec, received_at), True
            except sa_exc.IntegrityError:
                continue
        found = self.find_by_fingerprint(fingerprint)
        if found is None:
            raise CatalogUnavailable(f"could not register document {fingerprint[:12]}… after 3 attempts")
        return found, False

    def register_documents(self, specs: Sequence[DocumentSpec]) -> list[tuple[DocumentRecord, bool]]:
        """:meth:`register_document` for many documents in one transaction (a batch's manifest at once).

        Same results, in the order of ``specs``; a repeated fingerprint within ``specs`` returns the first one's
        record with ``created=False``. If a concurrent registration collides, falls back to one at a time.
        """
        for spec in specs:
            spec.validate()
        prints = [spec.fingerprint for spec in specs]
        try:
            with self.write() as conn:
                known: dict[str, DocumentRecord] = {}
                unique = list(dict.fromkeys(prints))
                for start in range(0, len(unique), 500):
                    rows = conn.execute(
                        sa.select(documents).where(documents.c.fingerprint.in_(unique[start:start + 500]))
                    ).mappings().all()
                    files = self._files(conn, [r["id"] for r in rows])
                    known.update({r["fingerprint"]: _record(dict(r), files.get(r["id"], ())) for r in rows})
                fresh = {fp: spec for fp, spec in zip(prints, specs, strict=True) if fp not in known}
                received_at = _now()
                created: dict[str, DocumentRecord] = {}
                if fresh:
                    statement = sa.insert(documents).returning(documents.c.id, sort_by_parameter_order=True)
                    ids = conn.execute(statement, [
                        {**_spec_values(spec), "fingerprint": fp, "status": "RECEIVED", "version": 1,
                         "received_at": received_at, "needs_review": False} for fp, spec in fresh.items()
                    ]).scalars().all()
                    conn.execute(sa.insert(document_files), [
                        row for document_id, spec in zip(ids, fresh.values(), strict=True)
                        for row in _file_rows(document_id, spec)
                    ])
                    created = {fp: _new_record(document_id, spec, received_at)
                               for document_id, (fp, spec) in zip(ids, fresh.items(), strict=True)}
        except sa_exc.IntegrityError:
            return [self.register_document(spec) for spec in specs]
        out: list[tuple[DocumentRecord, bool]] = []
        for fp in prints:
            if fp in created:
                out.append((created.pop(fp), True))
                known[fp] = out[-1][0]
            else:
                out.append((known[fp], False))
        return out

    def supersede(
        self, document_id: int, spec: DocumentSpec, *, actor: str, reason: str
    ) -> tuple[DocumentRecord, bool]:
        """Register a corrected version of an archived document: same code, version + 1, old row kept and linked.

        The new row is RECEIVED and goes through the pipeline like any other (its code is already set, so
        :meth:`allocate_code` returns it). Events on both rows say who corrected it and why. Idempotent:
        registering the same correction again returns it with ``created=False``.
        """
        spec.validate()
        if not actor.strip() or not reason.strip():
            raise ValueError("a correction needs the actor and the reason")
        fingerprint = spec.fingerprint
        try:
            with self.write() as conn:
                old = self._find(conn, documents.c.id == document_id, lock=True)
                if old is None:
                    raise CatalogConflict(f"no document {document_id} to correct")
                same = self._find(conn, documents.c.fingerprint == fingerprint)
                if same is not None:
                    if same.supersedes_id == old.id:
                        return same, False
                    raise CatalogConflict(
                        f"the corrected files are already document {same.code or same.id} (batch {same.batch_id})")
                if old.status != "ARCHIVED" or old.code is None:
                    raise CatalogConflict(f"document {document_id} is {old.status}: only archived documents have "
                                          "versions; fix and resubmit it instead")
                newer = conn.execute(
                    sa.select(documents.c.id).where(documents.c.supersedes_id == old.id)).scalar()
                if newer is not None:
                    raise CatalogConflict(f"document {document_id} is already superseded by document {newer}; "
                                          "correct the latest version")
                if (spec.agency_code, spec.kind) != (old.agency_code, old.kind):
                    raise CatalogConflict(
                        f"a correction keeps the code {old.code}, so agency and kind must stay "
                        f"{old.agency_code}/{old.kind}, got {spec.agency_code}/{spec.kind}")
                now = _now()
                new_id = conn.execute(
                    sa.insert(documents)
                    .values(**_spec_values(spec), fingerprint=fingerprint, status="RECEIVED", code=old.code,
                            version=old.version + 1, supersedes_id=old.id, received_at=now, needs_review=False)
                    .returning(documents.c.id)
                ).scalar_one()
                conn.execute(sa.insert(document_files), _file_rows(new_id, spec))
                detail = f"by {actor}: {reason}"
                conn.execute(sa.insert(events), [
                    _event_row(new_id, spec.batch_id, "correction", "success",
                               f"version {old.version + 1} of {old.code} supersedes document {old.id} {detail}", now),
                    _event_row(old.id, spec.batch_id, "correction", "success",
                               f"superseded by document {new_id} (version {old.version + 1}) {detail}", now),
                ])
                created = self._find(conn, documents.c.id == new_id)
                assert created is not None
                return created, True
        except sa_exc.IntegrityError as exc:
            raise CatalogConflict(f"document {document_id} was corrected concurrently; read it again") from exc

    def get_document(self, document_id: int) -> DocumentRecord:
        """The document with this id; :class:`CatalogConflict` if there is none."""
        with self.read() as conn:
            found = self._find(conn, documents.c.id == document_id)
        if found is None:
            raise CatalogConflict(f"no document {document_id} in the catalog")
        return found

    def get_by_code(self, code: str, *, version: int | None = None) -> DocumentRecord | None:
        """The latest version registered under ``code`` (or the given version)."""
        condition = documents.c.code == code
        if version is not None:
            condition = condition & (documents.c.version == version)
        with self.read() as conn:
            document_id = conn.execute(
                sa.select(documents.c.id).where(condition).order_by(documents.c.version.desc()).limit(1)
            ).scalar()
            return None if document_id is None else self._find(conn, documents.c.id == document_id)

    def find_by_pdf_sha256(self, sha256: str) -> list[DocumentRecord]:
        """Archived documents whose signed PDF has this SHA-256 (an auditor holding only a file)."""
        with self.read() as conn:
            ids = conn.execute(sa.select(documents.c.id).where(documents.c.pdf_sha256 == sha256.lower())
                               .order_by(documents.c.id)).scalars().all()
            found = [self._find(conn, documents.c.id == i) for i in ids]
        return [r for r in found if r is not None]

    def restore_document(self, record: DocumentRecord, *, template: str | None = None) -> DocumentRecord:
        """Insert a document as-is (every field but ``id``, with its files and their keys).

        For rebuilding the catalog from the archive's sidecars and for new archived versions made
        outside the pipeline (LTA renewal). The code's (agency, kind, year) counter is raised past
        the code when it follows ``template``, so allocation continues after the highest code.
        """
        if record.code is None or len(record.original_keys) != len(record.files):
            raise ValueError("a restored document needs its code and one key (or None) per file")
        from digitize.codes import DEFAULT_CODE_TEMPLATE, parse_document_code

        try:
            parsed = parse_document_code(record.code, template or DEFAULT_CODE_TEMPLATE)
        except CodeError:
            parsed = None
        values = {c.name: getattr(record, c.name) for c in documents.c if c.name != "id"}
        try:
            with self.write() as conn:
                # ids differ between catalogs: link to the previous version held here, if any
                values["supersedes_id"] = conn.execute(
                    sa.select(documents.c.id).where(
                        (documents.c.code == record.code) & (documents.c.version == record.version - 1))
                ).scalar()
                new_id = conn.execute(sa.insert(documents).values(**values).returning(documents.c.id)).scalar_one()
                if record.files:
                    conn.execute(sa.insert(document_files), [
                        {"document_id": new_id, "position": f.position, "name": f.name, "sha256": f.sha256,
                         "size": f.size, "original_key": key}
                        for f, key in zip(record.files, record.original_keys, strict=True)])
                if parsed is not None:
                    conn.execute(self._insert(code_sequences).values(
                        agency_code=str(parsed.agency), kind=parsed.kind, year=parsed.year, next_seq=parsed.seq + 1,
                    ).on_conflict_do_update(
                        index_elements=["agency_code", "kind", "year"],
                        set_={"next_seq": sa.func.max(code_sequences.c.next_seq, parsed.seq + 1)
                              if self._dialect == "sqlite" else sa.func.greatest(code_sequences.c.next_seq,
                                                                                 parsed.seq + 1)},
                    ))
                found = self._find(conn, documents.c.id == new_id)
        except sa_exc.IntegrityError as exc:
            raise CatalogConflict(f"{record.code} version {record.version} (or its fingerprint) is already in "
                                  "the catalog") from exc
        assert found is not None
        return found

    def find_by_fingerprint(self, fingerprint: str) -> DocumentRecord | None:
        """The document with this content, if registered."""
        with self.read() as conn:
            return self._find(conn, documents.c.fingerprint == fingerprint)

    def documents(self, *, batch_id: str | None = None, status: str | None = None) -> list[DocumentRecord]:
        """Documents by id, optionally of one batch and/or status."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status {status!r} must be one of {', '.join(STATUSES)}")
        query = sa.select(documents).order_by(documents.c.id)
        if batch_id is not None:
            query = query.where(documents.c.batch_id == batch_id)
        if status is not None:
            query = query.where(documents.c.status == status)
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            files = self._files(conn, [r["id"] for r in rows])
        return [_record(r, files.get(r["id"], ())) for r in rows]

    def allocate_code(self, document_id: int, *, template: str, year: int) -> str:
        """Give the document its code, or return the one it has.

        The counter row of (agency, kind, year) is incremented and the code written onto the document in one
        transaction: unique, gap-free in commit order, and nothing is burned if the transaction dies.
        """
        validate_template(template)
        try:
            with self.write() as conn:
                record = self._find(conn, documents.c.id == document_id, lock=True, with_files=False)
                if record is None:
                    raise CatalogConflict(f"no document {document_id} in the catalog")
                if record.code is not None:
                    return record.code
                if record.status != "RECEIVED":
                    raise CatalogConflict(f"document {document_id} is {record.status}; only RECEIVED documents get "
                                          "codes (reset_for_retry a quarantined one first)")
                agency = conn.execute(sa.select(agencies.c.code).where(agencies.c.code == record.agency_code)).first()
                if agency is None:
                    raise AgencyUnknown(f"agency {record.agency_code} of document {document_id} is not in the catalog")
                upsert = self._insert(code_sequences).values(
                    agency_code=record.agency_code, kind=record.kind, year=year, next_seq=2)
                seq = conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["agency_code", "kind", "year"],
                        set_={"next_seq": code_sequences.c.next_seq + 1},
                    ).returning(code_sequences.c.next_seq)
                ).scalar_one() - 1
                code = format_document_code(template, record.agency_code, year, record.kind, seq)
                conn.execute(sa.update(documents).where(documents.c.id == document_id).values(code=code))
                return code
        except sa_exc.IntegrityError as exc:
            raise CatalogConflict(
                f"code for document {document_id} collides with an existing code; check code_sequences "
                f"(agency, kind, year {year}) against documents") from exc

    def mark_archived(self, document_id: int, info: ArchivedInfo) -> None:
        """RECEIVED → ARCHIVED with the archive's keys and checksums; a repeat with the same info is a no-op."""
        with self.write() as conn:
            record = self._find(conn, documents.c.id == document_id, lock=True)
            if record is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if len(info.original_keys) != len(record.files):
                raise ValueError(f"{len(info.original_keys)} original keys for {len(record.files)} files")
            if record.status == "ARCHIVED":
                stored = (record.pdf_key, record.pdf_sha256, record.sidecar_key, record.sidecar_sha256,
                          record.original_keys)
                if stored == (info.pdf_key, info.pdf_sha256, info.sidecar_key, info.sidecar_sha256,
                              tuple(info.original_keys)):
                    return
                raise CatalogConflict(f"document {document_id} is already archived under other keys or checksums")
            if record.status != "RECEIVED":
                raise CatalogConflict(f"document {document_id} is {record.status}; reset_for_retry it first")
            if record.code is None:
                raise CatalogConflict(f"document {document_id} has no code: allocate_code before archiving")
            conn.execute(
                sa.update(documents).where(documents.c.id == document_id).values(
                    status="ARCHIVED", reason=None, message=None, pdf_key=info.pdf_key, pdf_sha256=info.pdf_sha256,
                    sidecar_key=info.sidecar_key, sidecar_sha256=info.sidecar_sha256, pages=info.pages,
                    mean_confidence=info.mean_confidence, needs_review=info.needs_review, archived_at=_now(),
                    lease_owner=None, lease_expires_at=None,
                )
            )
            conn.execute(
                sa.update(document_files)
                .where((document_files.c.document_id == document_id)
                       & (document_files.c.position == sa.bindparam("p_position")))
                .values(original_key=sa.bindparam("p_key")),
                [{"p_position": f.position, "p_key": key} for f, key in zip(record.files, info.original_keys,
                                                                            strict=True)],
            )

    def claim(self, document_id: int, owner: str, lease_seconds: float, *, take_over: str | None = None) -> bool:
        """Take (or renew) the processing lease of a RECEIVED document; ``False`` if another live worker holds it.

        One conditional UPDATE, so of two workers racing for a document exactly one wins. A lease that has
        expired (its worker died or stalled) can be taken; so can one held by ``take_over`` (a worker the
        caller knows is dead). :meth:`mark_archived`, :meth:`mark_quarantined` and :meth:`release` clear it.
        """
        if not owner or lease_seconds <= 0:
            raise ValueError("a claim needs an owner and a positive lease")
        now = _now()
        free = documents.c.lease_owner.is_(None) | (documents.c.lease_owner == owner) | (
            documents.c.lease_expires_at < now)
        if take_over:
            free = free | (documents.c.lease_owner == take_over)
        with self.write() as conn:
            done = conn.execute(
                sa.update(documents)
                .where((documents.c.id == document_id) & (documents.c.status == "RECEIVED") & free)
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds)))
            return bool(done.rowcount == 1)

    def release(self, document_id: int, owner: str) -> None:
        """Give up ``owner``'s lease (after a transient failure) so a retry can claim the document at once."""
        with self.write() as conn:
            conn.execute(sa.update(documents)
                         .where((documents.c.id == document_id) & (documents.c.lease_owner == owner))
                         .values(lease_owner=None, lease_expires_at=None))

    def mark_quarantined(self, document_id: int, reason: str, message: str) -> None:
        """RECEIVED (or QUARANTINED) → QUARANTINED with a stable reason code; an archived document cannot be."""
        if not reason:
            raise ValueError("a quarantine needs a reason code")
        with self.write() as conn:
            record = self._find(conn, documents.c.id == document_id, lock=True, with_files=False)
            if record is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if record.status == "ARCHIVED":
                raise CatalogConflict(f"document {document_id} is archived as {record.code}; it cannot be "
                                      "quarantined (register a correction instead)")
            conn.execute(sa.update(documents).where(documents.c.id == document_id).values(
                status="QUARANTINED", reason=reason, message=message, lease_owner=None, lease_expires_at=None))

    def reset_for_retry(self, document_id: int) -> None:
        """QUARANTINED → RECEIVED for a resubmission (its code, if any, is kept); RECEIVED stays RECEIVED."""
        with self.write() as conn:
            record = self._find(conn, documents.c.id == document_id, lock=True, with_files=False)
            if record is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if record.status == "ARCHIVED":
                raise CatalogConflict(f"document {document_id} is archived as {record.code}; nothing to retry")
            conn.execute(sa.update(documents).where(documents.c.id == document_id).values(
                status="RECEIVED", reason=None, message=None, lease_owner=None, lease_expires_at=None))

    # ------------------------------------------------------------------------------------------ events

    def add_event(self, document_id: int | None, event_type: str, outcome: str, *, tool: str = "digitize",
                  tool_version: str = "", detail: str = "", batch_id: str | None = None) -> None:
        """Record an event; a document's events take its batch unless ``batch_id`` says otherwise."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} must be one of {', '.join(OUTCOMES)}")
        if not event_type:
            raise ValueError("event_type is empty")
        if document_id is None and batch_id is None:
            raise ValueError("an event concerns a document or a batch")
        with self.write() as conn:
            if document_id is not None:
                owner = conn.execute(sa.select(documents.c.batch_id).where(documents.c.id == document_id)).first()
                if owner is None:
                    raise CatalogConflict(f"no document {document_id} in the catalog")
                batch_id = batch_id or owner[0]
            row = _event_row(document_id, batch_id, event_type, outcome, detail, _now())
            row.update(tool=tool, tool_version=tool_version)
            conn.execute(sa.insert(events).values(**row))

    def events(self, document_id: int) -> list[Event]:
        """A document's events, oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.document_id == document_id).order_by(events.c.id)).mappings()
            return [Event(**dict(r)) for r in rows]

    def batch_events(self, batch_id: str) -> list[Event]:
        """All events of a batch (document and batch-level), oldest first."""
        with self.read() as conn:
            rows = conn.execute(sa.select(events).where(events.c.batch_id == batch_id).order_by(events.c.id)).mappings()
            return [Event(**dict(r)) for r in rows]

    # ------------------------------------------------------------------------------------------ frames

    def agencies_frame(self) -> pd.DataFrame:
        """Columns: code, name, level, parent_code, remote (bool), one_stop (bool), valid_from, valid_to
        (datetime64, NaT when open), successor_code."""
        frame = self._frame(sa.select(agencies).order_by(agencies.c.code), list(agencies.c.keys()))
        return _dates(frame, ("valid_from", "valid_to"))

    def register_frame(self) -> pd.DataFrame:
        """Columns: register_id, agency_code, procedure_code, dossier_code, title, issued_date, valid_until
        (datetime64, NaT when indefinite), holder_id."""
        frame = self._frame(sa.select(register).order_by(register.c.register_id), list(register.c.keys()))
        return _dates(frame, ("issued_date", "valid_until"))

    ARCHIVED_COLUMNS = (
        "id", "code", "version", "supersedes_id", "agency_code", "kind", "title", "issued_date", "valid_until",
        "register_id", "dossier_code", "procedure_code", "holder_id", "scanned_at", "batch_id", "pages",
        "mean_confidence", "needs_review", "pdf_key", "pdf_sha256", "received_at", "archived_at",
    )

    def archived_frame(self) -> pd.DataFrame:
        """Archived documents, one row per code (its latest archived version, so coverage counts it once).

        Columns: see ``ARCHIVED_COLUMNS``; issued_date/valid_until datetime64 (NaT when indefinite),
        received_at/archived_at datetime64 UTC, needs_review bool.
        """
        newer = documents.alias("newer")
        later_exists = (
            sa.select(newer.c.id)
            .where((newer.c.code == documents.c.code) & (newer.c.status == "ARCHIVED")
                   & (newer.c.version > documents.c.version))
            .exists()
        )
        query = (
            sa.select(*(documents.c[c] for c in self.ARCHIVED_COLUMNS))
            .where((documents.c.status == "ARCHIVED") & ~later_exists)
            .order_by(documents.c.id)
        )
        frame = self._frame(query, list(self.ARCHIVED_COLUMNS))
        frame = _dates(frame, ("issued_date", "valid_until"))
        for column in ("received_at", "archived_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def _frame(self, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
        with self.read() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        return pd.DataFrame.from_records(rows, columns=columns)

    # ----------------------------------------------------------------------------------------- helpers

    def _find(self, conn: Connection, condition: sa.ColumnElement[bool], *, lock: bool = False,
              with_files: bool = True) -> DocumentRecord | None:
        query = sa.select(documents).where(condition)
        if lock and self._dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            return None
        files = self._files(conn, [row["id"]]) if with_files else {}
        return _record(dict(row), files.get(row["id"], ()))

    @staticmethod
    def _files(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[tuple[FileSpec, str | None], ...]]:
        out: dict[int, list[tuple[FileSpec, str | None]]] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            rows = conn.execute(
                sa.select(document_files).where(document_files.c.document_id.in_(chunk))
                .order_by(document_files.c.document_id, document_files.c.position)
            ).mappings()
            for r in rows:
                spec = FileSpec(position=r["position"], name=r["name"], sha256=r["sha256"], size=r["size"])
                out.setdefault(r["document_id"], []).append((spec, r["original_key"]))
        return {k: tuple(v) for k, v in out.items()}


def _spec_values(spec: DocumentSpec) -> dict[str, Any]:
    return {
        "batch_id": spec.batch_id, "agency_code": spec.agency_code, "kind": spec.kind, "title": spec.title,
        "issued_date": spec.issued_date, "valid_until": spec.valid_until, "register_id": spec.register_id,
        "dossier_code": spec.dossier_code, "procedure_code": spec.procedure_code, "holder_id": spec.holder_id,
        "scanned_at": spec.scanned_at, "manifest_document_id": spec.manifest_document_id,
    }


def _file_rows(document_id: int, spec: DocumentSpec) -> list[dict[str, Any]]:
    return [{"document_id": document_id, "position": f.position, "name": f.name, "sha256": f.sha256, "size": f.size}
            for f in sorted(spec.files, key=lambda f: f.position)]


def _new_record(document_id: int, spec: DocumentSpec, received_at: datetime) -> DocumentRecord:
    """The record of a document just registered, without reading it back."""
    files = tuple(sorted(spec.files, key=lambda f: f.position))
    return DocumentRecord(
        id=document_id, fingerprint=spec.fingerprint, batch_id=spec.batch_id, status="RECEIVED", code=None,
        version=1, agency_code=spec.agency_code, kind=spec.kind, title=spec.title, issued_date=spec.issued_date,
        valid_until=spec.valid_until, register_id=spec.register_id, dossier_code=spec.dossier_code,
        procedure_code=spec.procedure_code, holder_id=spec.holder_id, scanned_at=spec.scanned_at, reason=None,
        message=None, pdf_key=None, pdf_sha256=None, sidecar_key=None, sidecar_sha256=None, pages=None,
        mean_confidence=None, needs_review=False, received_at=received_at, archived_at=None, files=files,
        original_keys=(None,) * len(files), manifest_document_id=spec.manifest_document_id, supersedes_id=None,
    )


def _event_row(document_id: int | None, batch_id: str | None, event_type: str, outcome: str, detail: str,
               when: datetime) -> dict[str, Any]:
    return {"document_id": document_id, "batch_id": batch_id, "event_type": event_type, "outcome": outcome,
            "tool": "digitize", "tool_version": _version(), "detail": detail, "created_at": when}


def _version() -> str:
    from digitize import __version__

    return __version__


def _record(row: Mapping[str, Any], files: Iterable[tuple[FileSpec, str | None]]) -> DocumentRecord:
    pairs = tuple(files)
    return DocumentRecord(
        id=row["id"], fingerprint=row["fingerprint"], batch_id=row["batch_id"], status=row["status"],
        code=row["code"], version=row["version"], agency_code=row["agency_code"], kind=row["kind"],
        title=row["title"], issued_date=row["issued_date"], valid_until=row["valid_until"],
        register_id=row["register_id"], dossier_code=row["dossier_code"], procedure_code=row["procedure_code"],
        holder_id=row["holder_id"], scanned_at=row["scanned_at"], reason=row["reason"], message=row["message"],
        pdf_key=row["pdf_key"], pdf_sha256=row["pdf_sha256"], sidecar_key=row["sidecar_key"],
        sidecar_sha256=row["sidecar_sha256"], pages=row["pages"], mean_confidence=row["mean_confidence"],
        needs_review=bool(row["needs_review"]), received_at=row["received_at"], archived_at=row["archived_at"],
        files=tuple(spec for spec, _ in pairs), original_keys=tuple(key for _, key in pairs),
        manifest_document_id=row["manifest_document_id"], supersedes_id=row["supersedes_id"],
        lease_owner=row.get("lease_owner"), lease_expires_at=row.get("lease_expires_at"),
    )


def _dates(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column])
    return frame


# ------------------------------------------------------------------------------------------- imports


def _message(exc: ValueError) -> str:
    return exc.message if isinstance(exc, CodeError) else str(exc)


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Header (lower-cased) and non-empty rows with their spreadsheet row numbers (header = row 1)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        matrix = _xlsx_rows(path)
    elif suffix == ".csv":
        matrix = _csv_rows(path)
    else:
        raise ImportFileError(f"{path.name}: expected a .csv or .xlsx file, got {suffix or 'no extension'!r}")
    if not matrix:
        raise ImportFileError(f"{path.name} is empty: expected a header row")
    header = [_text(v).lower() for v in matrix[0][1]]
    rows = []
    for number, values in matrix[1:]:
        if all(_text(v) == "" for v in values):
            continue
        rows.append((number, {name: values[i] if i < len(values) else None for i, name in enumerate(header) if name}))
    return header, rows


def _csv_rows(path: Path) -> list[tuple[int, list[Any]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path.name} is not UTF-8 (invalid byte at position {exc.start}); it looks like a legacy encoding",
            hint="In Excel use File > Save As > 'CSV UTF-8 (Comma delimited)', then import again.",
        ) from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)  # Excel in comma-decimal locales writes ';'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [(number, row) for number, row in enumerate(reader, start=1)]


def _xlsx_rows(path: Path) -> list[tuple[int, list[Any]]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged or fake workbook
        raise ImportFileError(f"{path.name} is not a readable .xlsx workbook: {type(exc).__name__}") from None
    try:
        sheet = workbook.worksheets[0]
        return [(number, list(row)) for number, row in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        workbook.close()


def _require_columns(path: Path, header: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFileError(f"{Path(path).name}: header lacks column(s) {', '.join(missing)}; it has {list(header)}")


def _text(value: Any) -> str:
    """A cell as clean text: NFC, stripped; Excel integers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _optional(raw: Mapping[str, Any], column: str) -> str | None:
    return _text(raw.get(column)) or None


def _required(raw: Mapping[str, Any], column: str) -> str:
    value = _text(raw.get(column))
    if not value:
        raise ValueError(f"column {column} is empty")
    return value


def _code(raw: Mapping[str, Any], column: str, parse: Callable[[str], object], required: bool = False) -> str | None:
    value = raw.get(column)
    if isinstance(value, float):
        raise ValueError(f"column {column}: {value!r} was stored as a number by Excel; format the column as Text")
    text = _text(value)
    if not text:
        if required:
            raise ValueError(f"column {column} is empty")
        return None
    try:
        parse(text)
    except CodeError as exc:
        raise ValueError(f"column {column}: {exc.message}") from None
    return text


_DMY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


def _date(raw: Mapping[str, Any], column: str, required: bool = False) -> date | None:
    value = raw.get(column)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        if required:
            raise ValueError(f"column {column} is empty; expected a date YYYY-MM-DD")
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text)
        match = _DMY.fullmatch(text)
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        raise ValueError(f"column {column}: {text!r} is not a real date") from None
    raise ValueError(f"column {column}: {text!r} is not a date; expected YYYY-MM-DD (or DD/MM/YYYY)")


_TRUE = {"true", "1", "yes", "y", "x", "có", "co"}
_FALSE = {"", "false", "0", "no", "n", "không", "khong"}


def _flag(raw: Mapping[str, Any], column: str) -> bool:
    text = _text(raw.get(column)).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"column {column}: {text!r} is not a yes/no value; expected true/false (or 1/0)")


def _agency_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    code = _code(raw, "code", parse_agency_code, required=True)
    level = _required(raw, "level").lower()
    if level not in LEVELS:
        raise ValueError(f"column level: {level!r} must be one of {', '.join(LEVELS)}")
    parent, successor = _code(raw, "parent_code", parse_agency_code), _code(raw, "successor_code", parse_agency_code)
    if code in (parent, successor):
        raise ValueError(f"agency {code} cannot be its own parent or successor")
    valid_from, valid_to = _date(raw, "valid_from", required=True), _date(raw, "valid_to")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise ValueError(f"column valid_to: {valid_to} is before valid_from {valid_from}")
    return {
        "code": code, "name": _required(raw, "name"), "level": level, "parent_code": parent,
        "remote": _flag(raw, "remote"), "one_stop": _flag(raw, "one_stop"), "valid_from": valid_from,
        "valid_to": valid_to, "successor_code": successor,
    }


def _register_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    issued, until = _date(raw, "issued_date", required=True), _date(raw, "valid_until")
    if issued is not None and until is not None and until < issued:
        raise ValueError(f"column valid_until: {until} is before issued_date {issued}")
    return {
        "register_id": _required(raw, "register_id"),
        "agency_code": _code(raw, "agency_code", parse_agency_code, required=True),
        "procedure_code": _code(raw, "procedure_code", parse_procedure_code),
        "dossier_code": _code(raw, "dossier_code", parse_dossier_code),
        "title": _required(raw, "title"),
        "issued_date": issued,
        "valid_until": until,
        "holder_id": _optional(raw, "holder_id"),
    }
