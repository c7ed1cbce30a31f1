"""What officers look after: quarantined documents, documents flagged for review, duplicates, retries.

The quarantine page of the Airflow UI reads these; a retry started there is recorded with the user who
asked for it, so the event log says who sent a document through the pipeline again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from digitize import __version__
from digitize.catalog.engine import CatalogBase
from digitize.catalog.records import DocumentRecord, Event, record_from_row
from digitize.catalog.schema import documents, events
from digitize.errors import CatalogConflict

RETRY_EVENT = "quarantine_retry"
"""Event type of a retry asked for by a person (the ``detail`` names them)."""


@dataclass(frozen=True)
class DuplicateSighting:
    """A document handed in again in another batch (or twice in one), as registration recorded it."""

    event: Event
    """The ``duplicate_detection`` event: its batch is the batch that brought the copy."""
    existing: DocumentRecord
    """The document first registered with these bytes, as it is now (its code, batch and status)."""


class ReviewQueries(CatalogBase):
    """Catalog methods behind the quarantine and review page."""

    def flagged_for_review(self, *, limit: int = 1000) -> list[DocumentRecord]:
        """Archived documents whose OCR flagged pages for a person to check, newest first (without files)."""
        query = (sa.select(documents).where((documents.c.status == "ARCHIVED") & documents.c.needs_review)
                 .order_by(documents.c.id.desc()).limit(limit))
        with self.read() as conn:
            return [record_from_row(dict(r), ()) for r in conn.execute(query).mappings()]

    def duplicate_sightings(self, *, limit: int = 1000) -> list[DuplicateSighting]:
        """Duplicates recorded at registration, newest first, each with the document it duplicates."""
        query = (sa.select(events, documents).join(documents, documents.c.id == events.c.document_id)
                 .where(events.c.event_type == "duplicate_detection").order_by(events.c.id.desc()).limit(limit))
        event_columns = list(events.c.keys())
        with self.read() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            values = tuple(row)
            event = Event(**dict(zip(event_columns, values[: len(event_columns)], strict=True)))
            existing = dict(zip(documents.c.keys(), values[len(event_columns):], strict=True))
            out.append(DuplicateSighting(event, record_from_row(existing, ())))
        return out

    def last_events(self, document_ids: Sequence[int], event_type: str) -> dict[int, Event]:
        """The latest event of ``event_type`` of each document (those that have one)."""
        found: dict[int, Event] = {}
        for start in range(0, len(document_ids), 500):
            chunk = list(document_ids[start:start + 500])
            query = (sa.select(events).where(events.c.document_id.in_(chunk) & (events.c.event_type == event_type))
                     .order_by(events.c.id))
            with self.read() as conn:
                for r in conn.execute(query).mappings():
                    found[r["document_id"]] = Event(**dict(r))
        return found

    def retry_quarantined(self, document_id: int, *, actor: str, via: str) -> DocumentRecord:
        """QUARANTINED → RECEIVED, as ``quarantine retry`` does, with an event naming who asked and how.

        Only a quarantined document can be retried (a second click on a stale page is refused, not
        recorded twice); the next run over its batch takes it through the pipeline again.
        """
        if not actor.strip():
            raise ValueError("a retry needs the name of the person who asks for it")
        with self.write() as conn:
            row = conn.execute(sa.select(documents).where(documents.c.id == document_id)).mappings().first()
            if row is None:
                raise CatalogConflict(f"no document {document_id} in the catalog")
            if row["status"] != "QUARANTINED":
                raise CatalogConflict(f"document {document_id} is {row['status']}, not quarantined: nothing to retry",
                                      hint="Reload the page: someone may have retried it already.")
            conn.execute(sa.update(documents).where(documents.c.id == document_id).values(
                status="RECEIVED", reason=None, message=None, lease_owner=None, lease_expires_at=None))
            conn.execute(sa.insert(events).values(
                document_id=document_id, batch_id=row["batch_id"], event_type=RETRY_EVENT, outcome="success",
                tool="digitize", tool_version=__version__, created_at=datetime.now(UTC),
                detail=f"retry requested by {actor} ({via}); was quarantined [{row['reason']}]"))
            fresh = conn.execute(sa.select(documents).where(documents.c.id == document_id)).mappings().one()
        return record_from_row(dict(fresh), ())
