"""Register rows for matching scans without cover sheets: candidates by ID, dossier code, date and agency.

Matching (:mod:`digitize.match`) never reads the whole register: it asks for the rows that share an
identifying value with a scan, or its issue date and agency, each with the code of the document
already archived for it (a row already digitized must not be proposed as if it were not).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import sqlalchemy as sa

from digitize.catalog.engine import CatalogBase
from digitize.catalog.records import Event, RegisterRow
from digitize.catalog.schema import agencies, documents, events, register

MAX_CANDIDATES = 500
"""Most register rows one scan is compared with (a holder rarely has more results, a day's agency neither)."""


class MatchQueries(CatalogBase):
    """Catalog methods behind ``propose`` and ``relink``."""

    def register_candidates(self, *, holder_ids: Collection[str] = (), dossier_codes: Collection[str] = (),
                            issued_dates: Collection[date] = (), agency_codes: Collection[str] = (),
                            limit: int = MAX_CANDIDATES) -> list[RegisterRow]:
        """Rows with one of the holder IDs or dossier codes, or issued on one of the dates by one of the agencies."""
        conditions: list[sa.ColumnElement[bool]] = []
        if holder_ids:
            conditions.append(register.c.holder_id.in_(sorted(holder_ids)))
        if dossier_codes:
            conditions.append(register.c.dossier_code.in_(sorted(dossier_codes)))
        if issued_dates and agency_codes:
            conditions.append(register.c.issued_date.in_(sorted(issued_dates))
                              & register.c.agency_code.in_(sorted(agency_codes)))
        if not conditions:
            return []
        return self._register_rows(sa.or_(*conditions), limit)

    def register_row(self, register_id: str) -> RegisterRow | None:
        """One register row, or ``None``."""
        rows = self._register_rows(register.c.register_id == register_id, 1)
        return rows[0] if rows else None

    def agency_names(self) -> list[tuple[str, str]]:
        """``(code, name)`` of every agency, for finding the issuer's name in a letterhead."""
        with self.read() as conn:
            return [(r.code, r.name) for r in conn.execute(sa.select(agencies.c.code, agencies.c.name)
                                                           .order_by(agencies.c.code))]

    def batch_events_of(self, event_types: Collection[str], *, batch_id: str | None = None,
                        limit: int = 10_000) -> list[Event]:
        """Batch-level events of these types (of one batch, or of all), oldest first: proposals and decisions."""
        condition = events.c.event_type.in_(sorted(event_types)) & events.c.document_id.is_(None)
        if batch_id is not None:
            condition = condition & (events.c.batch_id == batch_id)
        query = sa.select(events).where(condition).order_by(events.c.id.desc()).limit(limit)
        with self.read() as conn:
            return [Event(**dict(r)) for r in reversed(conn.execute(query).mappings().all())]

    def _register_rows(self, condition: sa.ColumnElement[bool], limit: int) -> list[RegisterRow]:
        archived = (sa.select(documents.c.register_id, sa.func.min(documents.c.code).label("code"))
                    .where((documents.c.status == "ARCHIVED") & documents.c.register_id.is_not(None))
                    .group_by(documents.c.register_id).subquery())
        query = (sa.select(register, archived.c.code)
                 .outerjoin(archived, archived.c.register_id == register.c.register_id)
                 .where(condition).order_by(register.c.register_id).limit(limit))
        with self.read() as conn:
            return [RegisterRow(register_id=r.register_id, agency_code=r.agency_code, title=r.title,
                                issued_date=r.issued_date, procedure_code=r.procedure_code,
                                dossier_code=r.dossier_code, valid_until=r.valid_until, holder_id=r.holder_id,
                                archived_code=r.code) for r in conn.execute(query)]
