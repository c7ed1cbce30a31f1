"""Registration: each manifest document's originals hashed and registered in the catalog, idempotent by content.

A document whose bytes were registered before (from another batch, or twice in this one) is a
:class:`Duplicate`, named with its existing code; an interrupted earlier run of the same batch resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from digitize import __version__
from digitize.intake import BatchPlan, BatchSource, PlannedDocument, RowError

if TYPE_CHECKING:
    from digitize.catalog import Catalog, DocumentSpec


@dataclass(frozen=True)
class Duplicate:
    """A document of this batch whose bytes were already registered elsewhere."""

    key: str
    """The manifest's document key (document_id or file name)."""

    existing_id: int
    """Catalog id of the document first registered with these bytes."""

    existing_code: str | None
    """Its code, if it has one."""

    existing_batch: str
    """Batch it first arrived in."""

    def named(self, batch_id: str) -> tuple[str, str]:
        """(this batch's document, what it duplicates) as a run summary names them; no personal data."""
        existing = self.existing_code or f"document {self.existing_id} (batch {self.existing_batch})"
        return f"{batch_id}/{self.key}", existing


@dataclass(frozen=True)
class RegisteredBatch:
    """Result of registering a batch: what to process, what was a duplicate, what the manifest refused."""

    batch_id: str
    """Name of the batch folder."""

    root: Path
    """The batch folder."""

    to_process: tuple[int, ...]
    """Catalog ids of documents still to take through the stages."""

    duplicates: tuple[Duplicate, ...]
    """Documents already registered from another batch (or twice in this one)."""

    rejected: tuple[RowError, ...]
    """Manifest rows and files that could not be registered."""

    source: BatchSource | None = None
    """Where the originals are read from (``None``: the local folder ``root``)."""


def document_spec(plan: BatchPlan, doc: PlannedDocument) -> DocumentSpec:
    """What the catalog registers for one manifest document: its fields and the SHA-256 of each file."""
    from digitize.catalog import DocumentSpec, FileSpec

    inspected = [plan.files.inspect(name) for name in doc.files]
    files = tuple(FileSpec(position=i, name=name, sha256=sha, size=size, pixels=pixels)
                  for i, (name, (sha, size, pixels)) in enumerate(zip(doc.files, inspected, strict=True)))
    return DocumentSpec(
        batch_id=plan.batch_id, files=files, agency_code=doc.agency_code, kind=doc.kind, title=doc.title,
        issued_date=doc.issued_date, manifest_document_id=doc.key, procedure_code=doc.procedure_code,
        dossier_code=doc.dossier_code, register_id=doc.register_id, valid_until=doc.valid_until,
        holder_id=doc.holder_id, scanned_at=doc.scanned_at,
    )


def register_batch(catalog: Catalog, plan: BatchPlan) -> RegisteredBatch:
    """Hash each original and register it (idempotent by content), recording refused rows as events."""
    to_process: list[int] = []
    duplicates: list[Duplicate] = []
    for error in plan.errors:
        catalog.add_event(None, "manifest_validation", "failure", batch_id=plan.batch_id,
                          detail=f"row {error.row} ({error.file}): [{error.reason}] {error.message}")
    for doc in plan.documents:
        spec = document_spec(plan, doc)
        digests = ", ".join(f.sha256 for f in spec.files)
        with catalog.transaction():  # a new document and its ingestion event: both or neither
            record, created = catalog.register_document(spec)
            if created:
                catalog.add_event(record.id, "ingestion", "success", tool="digitize", tool_version=__version__,
                                  batch_id=plan.batch_id,
                                  detail=f"registered {len(spec.files)} file(s), sha256 {digests}")
        if created:
            to_process.append(record.id)
        elif record.batch_id == plan.batch_id and record.status == "RECEIVED" and record.id not in to_process:
            to_process.append(record.id)  # an interrupted earlier run of this batch: resume it
        elif record.batch_id != plan.batch_id or record.id in to_process:
            duplicates.append(Duplicate(doc.key, record.id, record.code, record.batch_id))
            catalog.add_event(record.id, "duplicate_detection", "warning", batch_id=plan.batch_id,
                              detail=f"{doc.key} in batch {plan.batch_id} has the same bytes as document "
                                     f"{record.code or record.id} of batch {record.batch_id}; not processed again")
    return RegisteredBatch(plan.batch_id, plan.root, tuple(to_process), tuple(duplicates), plan.errors, plan.source)
