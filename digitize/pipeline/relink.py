"""``relink``: a document archived under the wrong register row, made again under the right one.

The new version (or, when the agency or the kind changes, the new document with its own code) has the
same files and the register row's metadata; it goes through the pipeline like any document, so it is
OCR'd, stamped and signed again and gets its own sidecar. Its originals come from the archive, where the
old version keeps them (:class:`ArchivedOriginals`), each checked against its registered SHA-256. Only
once the new one is archived is the old version withdrawn from coverage; every step is an event with
who, why and the evidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.checksums import sha256_bytes
from digitize.errors import ManifestError, UsageError
from digitize.intake import BatchSource
from digitize.pipeline.context import PipelineContext
from digitize.pipeline.stages import process_document
from digitize.pipeline.summary import DocumentOutcome

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import DocumentRecord, RegisterRow


class ArchivedOriginals(BatchSource):
    """The originals of an archived version, read from the archive as a batch's scans would be from the inbox."""

    def __init__(self, archive: Archive, record: DocumentRecord) -> None:
        self._archive = archive
        self._code = record.code or str(record.id)
        self._keys = {spec.name: key for spec, key in zip(record.files, record.original_keys, strict=True) if key}

    @property
    def name(self) -> str:
        return f"archived-{self._code}"

    @property
    def uri(self) -> str:
        return f"archive:{self._code}"

    def files(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def exists(self, relative: str) -> bool:
        return relative in self._keys

    def size(self, relative: str) -> int:
        return len(self.read_bytes(relative))

    def read_bytes(self, relative: str) -> bytes:
        return self._archive.get(self._keys[relative])

    def digest(self, relative: str) -> tuple[str, int]:
        data = self.read_bytes(relative)
        return sha256_bytes(data), len(data)

    def fetch(self, relative: str, scratch: Path) -> tuple[Path, str]:
        data = self.read_bytes(relative)
        target = scratch / "originals" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target, sha256_bytes(data)

    def is_ready(self, *, quiet_seconds: int, now: float | None = None) -> bool:
        return True


def relink_document(ctx: PipelineContext, code: str, register_id: str, *, actor: str,
                    reason: str) -> tuple[DocumentOutcome, DocumentRecord]:
    """Re-link the archived document ``code`` to ``register_id``: (the new version's outcome, the old version)."""
    from digitize.catalog import DocumentSpec

    catalog = ctx.catalog
    current = catalog.archived_document(code)
    if current is None:
        raise ManifestError(f"no archived document has code {code}", hint="Check the code with 'show'.")
    row = catalog.register_row(register_id)
    if row is None:
        raise UsageError(f"register row {register_id} is unknown", hint="Import the register, or check the id.")
    if current.register_id == register_id:
        raise UsageError(f"{code} is already linked to register row {register_id}")
    kind = "KQ"  # register rows are procedure results
    spec = DocumentSpec(batch_id=current.batch_id, files=current.files, agency_code=row.agency_code, kind=kind,
                        title=row.title, issued_date=row.issued_date, procedure_code=row.procedure_code,
                        dossier_code=row.dossier_code, register_id=row.register_id, valid_until=row.valid_until,
                        holder_id=row.holder_id, scanned_at=current.scanned_at, stack_sha256=current.stack_sha256,
                        stack_first_page=current.stack_first_page, stack_last_page=current.stack_last_page,
                        sheet_id=current.sheet_id)
    new_code = (row.agency_code, kind) != (current.agency_code, current.kind)
    record, _created = catalog.relink(current.id, spec, actor=actor, reason=reason, evidence=_evidence(current, row),
                                      new_code=new_code)
    outcome = process_document(ctx, record.id, ArchivedOriginals(ctx.archive, current))
    if outcome.status == "ARCHIVED":
        catalog.withdraw(current.id, actor=actor, reason=f"re-linked to register row {register_id} as "
                                                           f"{outcome.code} (document {record.id}): {reason}")
    return outcome, current


def _evidence(current: DocumentRecord, row: RegisterRow) -> str:
    """Which fields of the archived version the new row shares (no personal data: field names only)."""
    same = [name for name, a, b in (("holder_id", current.holder_id, row.holder_id),
                                    ("dossier_code", current.dossier_code, row.dossier_code),
                                    ("issued_date", current.issued_date, row.issued_date),
                                    ("agency", current.agency_code, row.agency_code),
                                    ("title", current.title, row.title)) if a and a == b]
    return f"the new row shares {', '.join(same) or 'no field'} with the old link"
