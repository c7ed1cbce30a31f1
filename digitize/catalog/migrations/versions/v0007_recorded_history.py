"""Two time axes for coverage: recorded history of the reference data, stored digitization dates and origins.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

A report as of day D with data cut-off C must read the same facts whenever it is produced (issue #16):

* ``agency_versions`` and ``register_versions`` keep every state an import recorded (``recorded_at``, and
  ``superseded_at`` once a later import replaced it); ``agencies`` and ``register`` stay the current state.
  An agency may have several valid-time rows (its level or flags changing in time).
* ``agency_successors``: who took over an abolished agency from which day (one to many, chains allowed);
  ``register.successor_code`` names the successor of a row when the successors' levels differ.
* ``reference_files``: each import that changed the catalog (file name, SHA-256, archive key, recorded time),
  replayed by ``catalog rebuild``, and each snapshot of facts no file accounts for.
* ``documents.digitized_at`` (the first version's archived_at), ``origin`` (scan, correction, renewal,
  relink), ``withdrawn``/``withdrawn_at``; ``reuse_events.recorded_at``; ``supplied_again_events.occurred_at``
  (when the paper was asked for again, which an imported log gives apart from when it was recorded).

Backfill: the reference data already in the catalog becomes its first recorded state, recorded at the
catalog's earliest timestamp (its first document or event; the upgrade time for an empty catalog): the
catalog kept no earlier history, and reports for past cut-offs must still find the agencies their documents
were counted against. ``agencies.successor_code`` of an agency with an end date becomes a successor row
effective the day after. Each code's ``digitized_at`` is its first version's archived_at; a later version is a
``renewal`` when an ``lta_renewal`` event made it or its fingerprint is the one :func:`lta.renew` derives,
a ``scan`` when it brought a scanned file the version before did not have, else a ``correction``.

SQLite cannot add a CHECK constraint without rebuilding ``documents`` (which the search index and other
tables refer to): ``origin``'s check is created on PostgreSQL only; the catalog writes only allowed values.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _history_columns() -> list[sa.Column[Any]]:
    return [sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True)]


def _create_tables() -> None:
    op.create_table(
        "agency_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(13), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(13), nullable=True),
        sa.Column("remote", sa.Boolean(), nullable=False),
        sa.Column("one_stop", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("successor_code", sa.String(13), nullable=True),
        *_history_columns(),
        sa.CheckConstraint("level IN ('province', 'district', 'commune')", name="ck_agency_versions_level"),
        sa.PrimaryKeyConstraint("id", name="pk_agency_versions"),
    )
    op.create_index("ix_agency_versions_code", "agency_versions", ["code"])
    op.create_table(
        "register_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("register_id", sa.String(100), nullable=False),
        sa.Column("agency_code", sa.String(13), nullable=False),
        sa.Column("procedure_code", sa.String(40), nullable=True),
        sa.Column("dossier_code", sa.String(40), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("issued_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("holder_id", sa.String(100), nullable=True),
        sa.Column("successor_code", sa.String(13), nullable=True),
        *_history_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_register_versions"),
    )
    op.create_index("ix_register_versions_register_id", "register_versions", ["register_id"])
    op.create_table(
        "agency_successors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("predecessor_code", sa.String(13), nullable=False),
        sa.Column("successor_code", sa.String(13), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        *_history_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_agency_successors"),
    )
    op.create_index("ix_agency_successors_predecessor_code", "agency_successors", ["predecessor_code"])
    op.create_table(
        "reference_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.CheckConstraint("kind IN ('agencies', 'register', 'successors', 'reuse', 'snapshot')",
                           name="ck_reference_files_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_reference_files"),
    )
    op.create_index("ix_reference_files_recorded_at", "reference_files", ["recorded_at"])


def _add_columns(dialect: str) -> None:
    op.add_column("register", sa.Column("successor_code", sa.String(13), nullable=True))
    op.add_column("documents", sa.Column("digitized_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("documents", sa.Column("origin", sa.String(16), server_default="scan", nullable=False))
    op.add_column("documents", sa.Column("withdrawn", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("documents", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    if dialect == "postgresql":
        op.create_check_constraint("ck_documents_origin", "documents",
                                   "origin IN ('scan', 'correction', 'renewal', 'relink')")
    op.add_column("reuse_events", sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("supplied_again_events", sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True))


_SINCE = sa.bindparam("since", type_=sa.DateTime(timezone=True))


def _stored(value: datetime, dialect: str) -> datetime:
    """A UTC timestamp as the catalog stores it (naive on SQLite, like ``UtcDateTime``)."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.replace(tzinfo=None) if dialect == "sqlite" else value


def _earliest(conn: sa.Connection, dialect: str) -> datetime:
    """The catalog's first recorded moment: its first document or event; now for an empty catalog."""
    found = [conn.execute(sa.text(f"SELECT MIN({column}) FROM {table}")).scalar()
             for table, column in (("documents", "received_at"), ("events", "created_at"))]
    moments = []
    for value in found:
        if isinstance(value, str):  # SQLite through text(): no type to convert it
            value = datetime.fromisoformat(value)
        if value is not None:
            moments.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    return _stored(min(moments) if moments else datetime.now(UTC), dialect)


def _backfill_reference(conn: sa.Connection, dialect: str) -> None:
    since = _earliest(conn, dialect)
    agency_cols = "code, name, level, parent_code, remote, one_stop, valid_from, valid_to, successor_code"
    conn.execute(sa.text(f"INSERT INTO agency_versions ({agency_cols}, recorded_at) "
                         f"SELECT {agency_cols}, :since FROM agencies ORDER BY code").bindparams(_SINCE),
                 {"since": since})
    register_cols = "register_id, agency_code, procedure_code, dossier_code, title, issued_date, valid_until, holder_id"
    conn.execute(sa.text(f"INSERT INTO register_versions ({register_cols}, recorded_at) "
                         f"SELECT {register_cols}, :since FROM register ORDER BY register_id").bindparams(_SINCE),
                 {"since": since})
    ended = conn.execute(sa.text("SELECT code, successor_code, valid_to FROM agencies "
                                 "WHERE successor_code IS NOT NULL AND valid_to IS NOT NULL ORDER BY code")).all()
    for code, successor, valid_to in ended:
        day = date.fromisoformat(valid_to) if isinstance(valid_to, str) else valid_to
        conn.execute(sa.text("INSERT INTO agency_successors (predecessor_code, successor_code, effective_date, "
                             "recorded_at) VALUES (:p, :s, :d, :since)")
                     .bindparams(_SINCE, sa.bindparam("d", type_=sa.Date())),
                     {"p": code, "s": successor, "d": day + timedelta(days=1), "since": since})
    conn.execute(sa.text("UPDATE reuse_events SET recorded_at = reused_at"))
    conn.execute(sa.text("UPDATE supplied_again_events SET occurred_at = recorded_at"))


def _renewal_print(fingerprint: str, version: int) -> str:
    """``preservation.fixity.version_fingerprint`` as of this revision (migrations do not import the package)."""
    return hashlib.sha256(f"{fingerprint}\nversion {version}".encode("ascii")).hexdigest()


def _origin(row: Any, earlier: list[Any], renewed: set[int], files: dict[int, set[str]]) -> str:
    if not earlier:
        return "scan"
    if row.id in renewed or any(row.fingerprint == _renewal_print(e.fingerprint, row.version) for e in earlier):
        return "renewal"
    return "scan" if files.get(row.id, set()) - files.get(earlier[-1].id, set()) else "correction"


def _backfill_documents(conn: sa.Connection) -> None:
    rows = conn.execute(sa.text("SELECT id, code, version, fingerprint, archived_at FROM documents "
                                "WHERE code IS NOT NULL ORDER BY code, version")).all()
    renewed = set(conn.execute(sa.text("SELECT document_id FROM events WHERE event_type = 'lta_renewal' "
                                       "AND detail LIKE 'version %' AND document_id IS NOT NULL")).scalars())
    files: dict[int, set[str]] = defaultdict(set)
    for document_id, sha256 in conn.execute(sa.text("SELECT document_id, sha256 FROM document_files")):
        files[document_id].add(sha256)
    by_code: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_code[row.code].append(row)
    updates = [{"origin": _origin(row, versions[:index], renewed, files), "first": versions[0].archived_at,
                "id": row.id}
               for versions in by_code.values() for index, row in enumerate(versions)]
    if updates:  # one statement for all (executemany): a province's catalog holds millions of versions
        conn.execute(sa.text("UPDATE documents SET origin = :origin, digitized_at = :first WHERE id = :id"), updates)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _create_tables()
    _add_columns(dialect)
    conn = op.get_bind()
    _backfill_reference(conn, dialect)
    _backfill_documents(conn)
    with op.batch_alter_table("reuse_events") as batch:
        batch.alter_column("recorded_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("supplied_again_events") as batch:
        batch.alter_column("occurred_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_reuse_events_recorded_at", "reuse_events", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_reuse_events_recorded_at", table_name="reuse_events")
    with op.batch_alter_table("supplied_again_events") as batch:
        batch.drop_column("occurred_at")
    with op.batch_alter_table("reuse_events") as batch:
        batch.drop_column("recorded_at")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("ck_documents_origin", "documents", type_="check")
    with op.batch_alter_table("documents") as batch:
        for column in ("withdrawn_at", "withdrawn", "origin", "digitized_at"):
            batch.drop_column(column)
    with op.batch_alter_table("register") as batch:
        batch.drop_column("successor_code")
    for table in ("reference_files", "agency_successors", "register_versions", "agency_versions"):
        op.drop_table(table)
