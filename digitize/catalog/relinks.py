"""Re-linking an archived document to another register row, and withdrawing the version it replaces.

A document archived under the wrong register row keeps its files; what changes is its metadata. The re-link
is a new version of the same code (origin ``relink``), or, when the agency or the kind changes (the code
names both), a new document that will get a new code. Its fingerprint is derived from the old one and the
new row, so asking for the same re-link again finds it instead of making another. The old version is
withdrawn only once the new one is archived (:meth:`RelinkRecords.withdraw`): coverage then counts the
document under its new row, and reports with an earlier cut-off still see it as it was.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digitize import __version__
from digitize.catalog.engine import CatalogBase
from digitize.catalog.records import DocumentRecord, DocumentSpec, FileSpec, record_from_row
from digitize.catalog.schema import document_files, documents, events
from digitize.errors import CatalogConflict

RELINK_EVENT = "relink"
WITHDRAWAL_EVENT = "withdrawal"


def relink_fingerprint(old_fingerprint: str, register_id: str) -> str:
    """The re-linked version's identity: the old content's under another register row."""
    return hashlib.sha256(f"relink\n{old_fingerprint}\n{register_id}".encode()).hexdigest()


class RelinkRecords(CatalogBase):
    """Catalog methods behind ``python -m digitize relink``."""

    def relink(self, document_id: int, spec: DocumentSpec, *, actor: str, reason: str, evidence: str,
               new_code: bool) -> tuple[DocumentRecord, bool]:
        """Register the re-linked version (RECEIVED) of the archived document ``document_id``; (record, created).

        ``spec`` carries the old files and the new row's metadata; ``new_code``: a new document (agency or kind
        changed) instead of the next version of the same code. Events on both rows say who, why and on what
        evidence.
        """
        spec.validate()
        if not actor.strip() or not reason.strip():
            raise ValueError("a re-link needs the actor and the reason")
        if spec.register_id is None:
            raise ValueError("a re-link names the register row")
        now = datetime.now(UTC)
        with self.write() as conn:
            old = _document(conn, documents.c.id == document_id)
            if old is None or old.status != "ARCHIVED" or old.code is None or old.withdrawn:
                raise CatalogConflict(f"document {document_id} is not an archived, current document")
            fingerprint = relink_fingerprint(old.fingerprint, spec.register_id)
            same = _document(conn, documents.c.fingerprint == fingerprint)
            if same is not None:
                return same, False
            newer = conn.execute(sa.select(documents.c.id).where(documents.c.supersedes_id == old.id)).scalar()
            if newer is not None:
                raise CatalogConflict(f"{old.code} version {old.version} is superseded by document {newer}; "
                                      "re-link the latest version")
            values: dict[str, Any] = {
                "batch_id": spec.batch_id, "agency_code": spec.agency_code, "kind": spec.kind, "title": spec.title,
                "issued_date": spec.issued_date, "valid_until": spec.valid_until, "register_id": spec.register_id,
                "dossier_code": spec.dossier_code, "procedure_code": spec.procedure_code,
                "holder_id": spec.holder_id, "scanned_at": spec.scanned_at, "stack_sha256": spec.stack_sha256,
                "stack_first_page": spec.stack_first_page, "stack_last_page": spec.stack_last_page,
                "sheet_id": spec.sheet_id, "fingerprint": fingerprint, "status": "RECEIVED", "received_at": now,
                "needs_review": False, "origin": "relink"}
            if new_code:
                values.update(version=1)
            else:
                values.update(code=old.code, version=old.version + 1, supersedes_id=old.id,
                              digitized_at=old.digitized_at or old.archived_at)
            new_id = conn.execute(sa.insert(documents).values(**values).returning(documents.c.id)).scalar_one()
            conn.execute(sa.insert(document_files), [
                {"document_id": new_id, "position": f.position, "name": f.name, "sha256": f.sha256, "size": f.size,
                 "pixels": f.pixels} for f in spec.files])
            what = "a new document (agency or kind changed)" if new_code else f"version {old.version + 1} of {old.code}"
            detail = f"by {actor}: {reason}; evidence: {evidence}"
            conn.execute(sa.insert(events), [
                _event(new_id, spec.batch_id, f"{what} re-links {old.code} v{old.version} "
                                               f"(register row {old.register_id}) to register row "
                                               f"{spec.register_id} {detail}", now),
                _event(old.id, old.batch_id, f"re-linked to register row {spec.register_id} as document {new_id} "
                                             f"{detail}", now),
            ])
            created = _document(conn, documents.c.id == new_id)
            assert created is not None
            return created, True

    def withdraw(self, document_id: int, *, actor: str, reason: str, at: datetime | None = None) -> None:
        """Withdraw an archived version from coverage from ``at`` (default now), with an event saying who and why."""
        now = at or datetime.now(UTC)
        with self.write() as conn:
            done = conn.execute(sa.update(documents).where((documents.c.id == document_id)
                                                           & (documents.c.status == "ARCHIVED")
                                                           & ~documents.c.withdrawn)
                                .values(withdrawn=True, withdrawn_at=now)).rowcount
            if done:
                batch = conn.execute(sa.select(documents.c.batch_id).where(documents.c.id == document_id)).scalar()
                conn.execute(sa.insert(events).values(**{
                    **_event(document_id, batch, f"withdrawn from coverage by {actor}: {reason}", now),
                    "event_type": WITHDRAWAL_EVENT}))


def _document(conn: Connection, condition: sa.ColumnElement[bool]) -> DocumentRecord | None:
    row = conn.execute(sa.select(documents).where(condition)).mappings().first()
    if row is None:
        return None
    files = conn.execute(sa.select(document_files).where(document_files.c.document_id == row["id"])
                         .order_by(document_files.c.position)).mappings()
    return record_from_row(dict(row), [
        (FileSpec(f["position"], f["name"], f["sha256"], f["size"], f["pixels"]), f["original_key"]) for f in files])


def _event(document_id: int, batch_id: str | None, detail: str, at: datetime) -> dict[str, Any]:
    return {"document_id": document_id, "batch_id": batch_id, "event_type": RELINK_EVENT, "outcome": "success",
            "tool": "digitize", "tool_version": __version__, "detail": detail, "created_at": at}
