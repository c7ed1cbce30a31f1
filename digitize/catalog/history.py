"""Recorded history of the reference data: how an import writes a new state without losing the old one.

An import names keys (an agency code, a register id, a predecessor agency) with the rows it now has. For each
key whose rows differ from the current ones, the current rows get ``superseded_at`` and the new rows are
inserted with ``recorded_at``, both the import's time: nothing is updated in place, so the frames can give
the state at any earlier cut-off. A key the file does not name, or names with the same rows, is left alone,
so importing the same file again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digitize.catalog.records import ImportSummary
from digitize.catalog.schema import agency_successors, agency_versions, reference_files

_BOOKKEEPING = ("id", "recorded_at", "superseded_at")


@dataclass(frozen=True)
class ReferenceFile:
    """A reference file as the archive keeps it, recorded with the import that changed the catalog."""

    kind: str
    """``agencies``, ``register``, ``successors`` or ``reuse``."""
    name: str
    """The file's name as imported."""
    sha256: str
    """SHA-256 of its bytes."""
    key: str | None
    """Its archive key (``None`` when imported without an archive)."""


class _Preview(Exception):
    """Leaves a dry-run import's transaction, so it rolls back."""


class Outcome:
    """The summary an import reaches inside its transaction (see :func:`previewed`)."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self._summary: ImportSummary | None = None

    def done(self, summary: ImportSummary) -> None:
        """The import's summary; in a dry run, leave the transaction now so nothing is written."""
        self._summary = summary
        if self.dry_run:
            raise _Preview

    @property
    def summary(self) -> ImportSummary:
        """The summary given to :meth:`done`."""
        assert self._summary is not None
        return self._summary


@contextmanager
def previewed(dry_run: bool) -> Iterator[Outcome]:
    """Around an import's write transaction: with ``dry_run`` the transaction rolls back, the summary stays (to
    archive a file only when importing it changes the catalog)."""
    outcome = Outcome(dry_run)
    with suppress(_Preview):
        yield outcome


def import_time(recorded_at: datetime | None) -> datetime:
    """The recorded time an import gives its rows: now, or the original time when ``catalog rebuild`` replays it."""
    if recorded_at is None:
        return datetime.now(UTC)
    if recorded_at.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    return recorded_at.astimezone(UTC)


def _state(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(sorted((k, v) for k, v in row.items() if k not in _BOOKKEEPING)) for row in rows),
                  key=repr)


def current_rows(conn: Connection, table: sa.Table, key: str, keys: Sequence[Any] | None = None
                 ) -> dict[Any, list[dict[str, Any]]]:
    """The current (not superseded) rows of a history table by key; only ``keys`` when given."""
    out: dict[Any, list[dict[str, Any]]] = {}
    condition = table.c.superseded_at.is_(None)
    chunks = [None] if keys is None else [list(keys[i:i + 500]) for i in range(0, len(keys), 500)]
    for chunk in chunks:
        where = condition if chunk is None else condition & table.c[key].in_(chunk)
        for row in conn.execute(sa.select(table).where(where).order_by(table.c.id)).mappings():
            out.setdefault(row[key], []).append({k: v for k, v in row.items() if k not in _BOOKKEEPING})
    return out


def record_history(conn: Connection, table: sa.Table, key: str, groups: Mapping[Any, list[dict[str, Any]]],
                   at: datetime) -> tuple[int, int, int]:
    """Write each key's rows as its new recorded state where they differ; (added, changed, unchanged) keys."""
    existing = current_rows(conn, table, key, list(groups))
    added = changed = 0
    fresh: list[dict[str, Any]] = []
    for value, rows in groups.items():
        before = existing.get(value)
        if before is not None and _state(before) == _state(rows):
            continue
        if before is None:
            added += 1
        else:
            changed += 1
            conn.execute(sa.update(table).where((table.c[key] == value) & table.c.superseded_at.is_(None))
                         .values(superseded_at=at))
        fresh.extend({**row, "recorded_at": at} for row in rows)
    if fresh:
        conn.execute(sa.insert(table), fresh)
    return added, changed, len(groups) - added - changed


def record_file(conn: Connection, source: ReferenceFile | None, at: datetime, rows: int) -> None:
    """Note the file an import that changed the catalog came from (``catalog rebuild`` replays these)."""
    if source is not None:
        conn.execute(sa.insert(reference_files).values(kind=source.kind, name=source.name, sha256=source.sha256,
                                                       key=source.key, recorded_at=at, rows=rows))


def reference_imports(conn: Connection) -> list[dict[str, Any]]:
    """Every recorded reference import, oldest first."""
    return [dict(r) for r in conn.execute(sa.select(reference_files).order_by(reference_files.c.recorded_at,
                                                                             reference_files.c.id)).mappings()]


# ----------------------------------------------------------------------------------------------- succession


def successors_of(conn: Connection) -> dict[str, list[tuple[str, date]]]:
    """Current successor rows: predecessor → [(successor, effective date)]."""
    out: dict[str, list[tuple[str, date]]] = {}
    for row in conn.execute(sa.select(agency_successors).where(agency_successors.c.superseded_at.is_(None))
                            .order_by(agency_successors.c.id)):
        out.setdefault(row.predecessor_code, []).append((row.successor_code, row.effective_date))
    return out


def level_on(conn: Connection, code: str, day: date) -> str | None:
    """The level of agency ``code`` on ``day`` as currently recorded (its nearest period when none covers it)."""
    rows = current_rows(conn, agency_versions, "code", [code]).get(code, [])
    if not rows:
        return None
    for row in rows:
        if row["valid_from"] <= day and (row["valid_to"] is None or day <= row["valid_to"]):
            return str(row["level"])
    return str(min(rows, key=lambda r: abs((r["valid_from"] - day).days))["level"])


def descendants(successors: Mapping[str, list[tuple[str, date]]], code: str) -> set[str]:
    """Every agency that took over ``code``, directly or down a chain."""
    seen: set[str] = set()
    todo = [s for s, _ in successors.get(code, [])]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(s for s, _ in successors.get(current, []))
    return seen


def split_levels(conn: Connection, successors: Mapping[str, list[tuple[str, date]]], code: str
                 ) -> dict[str, str] | None:
    """The levels of ``code``'s direct successors (on their effective dates) when they differ, else None."""
    levels = {s: level_on(conn, s, day) or "?" for s, day in successors.get(code, [])}
    return levels if len(set(levels.values())) > 1 else None


def finds_cycle(successors: Mapping[str, list[tuple[str, date]]]) -> str | None:
    """An agency that succeeds itself down a chain, or None."""
    for code in successors:
        if code in descendants(successors, code):
            return code
    return None
