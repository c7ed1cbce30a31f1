"""The catalog's tables (SQLAlchemy Core), the constants their CHECK constraints spell, and where the migrations live.

The Alembic migrations in ``digitize/catalog/migrations`` create and upgrade these tables; ``metadata`` must
match what they build (a test compares the two). The full-text tables differ between backends (an FTS5
table on SQLite, a ``tsvector`` column and a lexicon on PostgreSQL), so they sit apart, in
``fulltext_metadata``, described as far as both backends share them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

LEVELS = ("province", "district", "commune")
STATUSES = ("RECEIVED", "ARCHIVED", "QUARANTINED")
OUTCOMES = ("success", "failure", "warning")
ORIGINS = ("scan", "correction", "renewal", "relink")
"""What made a document version: a new scan (a first version, or a correction bringing scanned files it did not
have), a metadata-only correction, an LTA renewal (a new timestamp over the same PDF), a re-link (issue #18)."""
REFERENCE_KINDS = ("agencies", "register", "successors", "reuse", "snapshot")
"""Reference files the catalog imports and the archive keeps, and snapshots of facts no file accounts for (see
``reference_files`` and :mod:`digitize.catalog.snapshot`)."""
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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
    sa.Column("successor_code", sa.String(13)),  # the successor that took the row over, when levels differ
)

# ------------------------------------------------------------------------------------- recorded history
# ``agencies`` and ``register`` hold the current state (one row per key). The history tables below hold every
# state the catalog was told, each row with the time it was recorded and the time a later import replaced it
# (``superseded_at``, NULL while current): the facts "as recorded up to C" are the rows with
# recorded_at <= C < superseded_at. Migration 0007 creates them.

agency_versions = sa.Table(
    "agency_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(13), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("parent_code", sa.String(13)),
    sa.Column("remote", sa.Boolean, nullable=False),
    sa.Column("one_stop", sa.Boolean, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),
    sa.Column("successor_code", sa.String(13)),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("superseded_at", UtcDateTime),
    sa.CheckConstraint("level IN ('province', 'district', 'commune')", name="level"),
)
"""Every valid-time row of every agency as recorded: a code may have several (level, flags changing in time)."""

register_versions = sa.Table(
    "register_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("register_id", sa.String(100), nullable=False, index=True),
    sa.Column("agency_code", sa.String(13), nullable=False),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("dossier_code", sa.String(40)),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date),
    sa.Column("holder_id", sa.String(100)),
    sa.Column("successor_code", sa.String(13)),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("superseded_at", UtcDateTime),
)
"""Every recorded state of every register row."""

agency_successors = sa.Table(
    "agency_successors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("predecessor_code", sa.String(13), nullable=False, index=True),
    sa.Column("successor_code", sa.String(13), nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("superseded_at", UtcDateTime),
)
"""Who took over an abolished (or split) agency from which day: one to many, chains allowed."""

reference_files = sa.Table(
    "reference_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("key", sa.Text),
    sa.Column("recorded_at", UtcDateTime, nullable=False, index=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.CheckConstraint("kind IN ('agencies', 'register', 'successors', 'reuse', 'snapshot')", name="kind"),
)
"""Each import that changed the catalog: the file's name, SHA-256, archive key (NULL when imported without an
archive) and the recorded time its rows carry; ``catalog rebuild`` replays them in this order. Also each
snapshot kept in the archive (kind ``snapshot``, recorded_at = when it was taken)."""

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
    sa.Column("digitized_at", UtcDateTime),  # the first version's archived_at: counted as digitized from then
    sa.Column("origin", sa.String(16), nullable=False, server_default="scan"),
    sa.Column("withdrawn", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("withdrawn_at", UtcDateTime),  # when it was withdrawn: reports with an earlier cut-off still see it
    sa.Column("stack_sha256", sa.String(64), index=True),  # the scanned stack it was cut from (migration 0008)
    sa.Column("stack_first_page", sa.Integer),
    sa.Column("stack_last_page", sa.Integer),
    sa.Column("sheet_id", sa.String(32), index=True),
    sa.UniqueConstraint("code", "version"),
    sa.CheckConstraint("status IN ('RECEIVED', 'ARCHIVED', 'QUARANTINED')", name="status"),
    sa.CheckConstraint("kind IN ('KQ', 'TP')", name="kind"),
    sa.CheckConstraint("origin IN ('scan', 'correction', 'renewal', 'relink')", name="origin"),
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
    sa.Column("pixels", sa.BigInteger),  # of all its pages, from the headers at registration (migration 0009)
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

cover_sheets = sa.Table(
    "cover_sheets",
    metadata,
    sa.Column("sheet_id", sa.String(32), primary_key=True),
    sa.Column("planned", sa.Boolean, nullable=False),
    sa.Column("register_id", sa.String(100), index=True),
    sa.Column("agency_code", sa.String(13), nullable=False),
    sa.Column("kind", sa.String(2), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date),
    sa.Column("dossier_code", sa.String(40)),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("holder_id", sa.String(100)),
    sa.Column("document_id", sa.String(200)),
    sa.Column("printed_at", UtcDateTime, nullable=False),
    sa.Column("printed_by", sa.String(200)),
    sa.CheckConstraint("kind IN ('KQ', 'TP')", name="kind"),
)
"""Printed cover sheets (migration 0008): a register row's id, or a planned row's manifest fields."""

code_sequences = sa.Table(
    "code_sequences",
    metadata,
    sa.Column("agency_code", sa.String(13), primary_key=True),
    sa.Column("kind", sa.String(2), primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("next_seq", sa.Integer, nullable=False),
)


fulltext_metadata = sa.MetaData()
"""Tables of the search index (migration 0002): the columns both backends share, those the queries use."""

search_pages = sa.Table(
    "search_pages",
    fulltext_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.Integer, nullable=False),
    sa.Column("page", sa.Integer, nullable=False),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("agency_code", sa.String(13), nullable=False),
    sa.Column("kind", sa.String(2), nullable=False),
    sa.Column("dossier_code", sa.String(40)),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("holder_id", sa.String(100)),
    sa.Column("issued_date", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date),
    sa.Column("body", sa.Text, nullable=False),
)
"""One row per page with text of the latest archived version of a code; on PostgreSQL also ``tsv``."""

search_terms = sa.Table("search_terms", fulltext_metadata, sa.Column("term", sa.Text, primary_key=True))
"""PostgreSQL only: the folded words indexed, for correcting misspelled queries (``pg_trgm``)."""
