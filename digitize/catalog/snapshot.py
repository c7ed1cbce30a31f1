"""Snapshots of recorded facts that no archived file accounts for, so that ``catalog rebuild`` restores them too.

Imports keep their files in the archive and a rebuild replays them; two kinds of facts have no such file:

* the reference rows migration 0007 took over from the catalog as it stood (and any imported with
  ``--no-archive``);
* the reuse events and papers supplied again that the reuse API recorded as they happened.

``catalog archive-reference`` (:func:`digitize.preservation.archive_reference_snapshot`) stores those recorded
since the previous snapshot as JSON in the archive, with their recorded times; :meth:`Snapshots.restore_snapshot`
puts them back as they were. A snapshot is noted in ``reference_files`` (kind ``snapshot``) so the next one
starts where it ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.history import current_rows, reference_imports
from digitize.catalog.imports import ReferenceData, _span
from digitize.catalog.reuse import reuse_events, supplied_again_events
from digitize.catalog.schema import (
    UtcDateTime,
    agencies,
    agency_successors,
    agency_versions,
    documents,
    reference_files,
    register,
    register_versions,
)

HISTORY_TABLES = (agency_versions, register_versions, agency_successors)
SETTLE = timedelta(minutes=5)
"""A snapshot takes the facts recorded up to this long before it is taken: a row is stamped with its recorded
time just before its transaction commits, so one stamped earlier but committed later is not missed; the next
snapshot starts where this one ended."""


class Snapshots(CatalogBase):
    """Catalog methods taking and restoring snapshots of recorded facts."""

    def recorded_snapshot(self, upto: datetime) -> dict[str, Any]:
        """Facts no archived import accounts for, recorded after the previous snapshot's ``upto`` and up to ``upto``.

        ``{"since": ISO time or None, "upto": ISO time, "tables": {table: [row, …]}}``, rows JSON-ready (ISO dates
        and times; a reuse event names its document by code and version, as ids differ between catalogs).
        """
        with self.read() as conn:
            notes = reference_imports(conn)
            archived = {r["recorded_at"] for r in notes if r["key"] is not None and r["kind"] != "snapshot"}
            since = max((r["recorded_at"] for r in notes if r["kind"] == "snapshot"), default=None)
            tables: dict[str, list[dict[str, Any]]] = {}
            for table in (*HISTORY_TABLES, supplied_again_events):
                query = sa.select(table).where(_window(table, since, upto)).order_by(table.c.id)
                tables[table.name] = [_json_row(dict(r)) for r in conn.execute(query).mappings()
                                      if r["recorded_at"] not in archived]
            tables[reuse_events.name] = [_json_row(r) for r in _reuse_rows(conn, since, upto)
                                         if r["recorded_at"] not in archived]
        return {"since": None if since is None else since.isoformat(), "upto": upto.isoformat(), "tables": tables}

    def note_snapshot(self, *, sha256: str, key: str, upto: datetime, rows: int) -> None:
        """Record that a snapshot of the facts recorded up to ``upto`` is in the archive under ``key``."""
        with self.write() as conn:
            conn.execute(sa.insert(reference_files).values(kind="snapshot", name=key.rsplit("/", 1)[-1], sha256=sha256,
                                                           key=key, recorded_at=upto, rows=rows))

    def restore_snapshot(self, snapshot: Mapping[str, Any], *, after: datetime | None = None,
                         upto: datetime | None = None) -> int:
        """Insert a snapshot's rows recorded in (``after``, ``upto``] that are not here yet, then bring ``agencies``
        and ``register`` up to date; returns how many rows were inserted (a reuse event whose document is not in
        the catalog is left out)."""
        def wanted(row: Mapping[str, Any]) -> bool:
            at = datetime.fromisoformat(row["recorded_at"])
            return (after is None or at > after) and (upto is None or at <= upto)

        tables = snapshot.get("tables", {})
        inserted = 0
        with self.write() as conn:
            for table in (*HISTORY_TABLES, supplied_again_events):
                present = {_identity(_json_row(dict(r))) for r in conn.execute(sa.select(table)).mappings()}
                fresh = [r for r in tables.get(table.name, []) if wanted(r) and _identity(r) not in present
                         and not _supplied_again_here(conn, table, r)]
                if fresh:
                    conn.execute(sa.insert(table), [_from_json(table, r) for r in fresh])
                inserted += len(fresh)
            inserted += _restore_reuse(conn, [r for r in tables.get(reuse_events.name, []) if wanted(r)])
            ReferenceData._upsert(conn, agencies, "code",
                                  [_span(rows) for rows in current_rows(conn, agency_versions, "code").values()])
            ReferenceData._upsert(conn, register, "register_id",
                                  [rows[-1] for rows in current_rows(conn, register_versions, "register_id").values()])
        return inserted


def _window(table: sa.Table, since: datetime | None, upto: datetime) -> sa.ColumnElement[bool]:
    condition = table.c.recorded_at <= upto
    return condition if since is None else condition & (table.c.recorded_at > since)


def _reuse_rows(conn: Connection, since: datetime | None, upto: datetime) -> list[dict[str, Any]]:
    query = (sa.select(reuse_events, documents.c.version.label("document_version"))
             .join(documents, documents.c.id == reuse_events.c.document_id)
             .where(_window(reuse_events, since, upto)).order_by(reuse_events.c.id))
    return [{k: v for k, v in r.items() if k != "document_id"} for r in conn.execute(query).mappings()]


def _restore_reuse(conn: Connection, rows: list[dict[str, Any]]) -> int:
    inserted = 0
    for row in rows:
        document_id = conn.execute(sa.select(documents.c.id).where(
            (documents.c.code == row["code"]) & (documents.c.version == row["document_version"]))).scalar()
        if document_id is None or conn.execute(sa.select(reuse_events.c.id).where(
                (reuse_events.c.document_id == document_id)
                & (reuse_events.c.new_dossier_code == row["new_dossier_code"]))).first() is not None:
            continue
        values = _from_json(reuse_events, {k: v for k, v in row.items() if k != "document_version"})
        conn.execute(sa.insert(reuse_events).values(**values, document_id=document_id))
        inserted += 1
    return inserted


def _supplied_again_here(conn: Connection, table: sa.Table, row: Mapping[str, Any]) -> bool:
    """A paper supplied again already recorded (its unique key), whatever its other values."""
    if table is not supplied_again_events:
        return False
    return conn.execute(sa.select(table.c.id).where(
        (table.c.new_dossier_code == row["new_dossier_code"]) & (table.c.holder_id == row["holder_id"])
        & (table.c.document == row["document"]))).first() is not None


def _identity(row: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A recorded row as it was recorded: a later import may have set its ``superseded_at`` since."""
    return tuple(sorted((k, v) for k, v in row.items() if k != "superseded_at"))


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without its id, dates and times as ISO text."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in row.items() if k != "id"}


def _from_json(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key not in table.c or key == "id":
            continue
        kind = table.c[key].type
        if value is not None and isinstance(kind, UtcDateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, sa.Date):
            value = date.fromisoformat(value)
        out[key] = value
    return out
