"""The sidecar: the archival description of a signed document (fields, OCR, signature, files, events).

Built from the catalog's record and events and checked against ``schemas/sidecar.schema.json`` before
it is stored beside the PDF.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from digitize.archive import sidecar_validator
from digitize.errors import ArchiveIntegrityError

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import DocumentRecord
    from digitize.ocr import OcrResult
    from digitize.pipeline.context import PipelineContext

MEDIA_TYPES = {"pdf": "application/pdf", "tiff": "image/tiff", "jpeg": "image/jpeg", "png": "image/png"}
"""Media type of an original, by the format its bytes were sniffed as."""


def build_sidecar(ctx: PipelineContext, record: DocumentRecord, *, agency_name: str, agency_level: str, code: str,
                  ocr: OcrResult, verdict: Any, pdf_obj: Any, originals: Sequence[tuple[Any, Any, str]],
                  needs_review: bool, review_reasons: Sequence[str] = (),
                  stack: dict[str, Any] | None = None) -> dict[str, Any]:
    """The archival description stored beside the PDF; validated against ``schemas/sidecar.schema.json``.

    ``stack``: for a document cut from a scanned stack, where it lies in the stack (SHA-256, page range,
    cover sheet, blank pages left out), so the catalog can be rebuilt with it.
    """
    events = [
        {"type": e.event_type, "outcome": e.outcome, "tool": e.tool, "tool_version": e.tool_version,
         "at": e.created_at.isoformat(), "detail": e.detail}
        for e in ctx.catalog.events(record.id)
    ]
    files = [{"role": "signed_pdf", "key": pdf_obj.key, "sha256": pdf_obj.sha256, "size": pdf_obj.size,
              "media_type": "application/pdf"}]
    files += [{"role": "original", "key": obj.key, "sha256": obj.sha256, "size": obj.size,
               "media_type": MEDIA_TYPES[fmt], "original_name": spec.name, "position": spec.position}
              for spec, obj, fmt in originals]
    sidecar = {
        "schema_version": 1, "code": code, "version": record.version, "fingerprint": record.fingerprint,
        "agency": {"code": record.agency_code, "name": agency_name, "level": agency_level},
        "kind": record.kind, "title": record.title, "issued_date": record.issued_date.isoformat(),
        "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        "procedure_code": record.procedure_code, "dossier_code": record.dossier_code,
        "register_id": record.register_id, "holder_id": record.holder_id, "scanned_at": record.scanned_at,
        "batch_id": record.batch_id, "manifest_document_id": record.manifest_document_id,
        "received_at": record.received_at.isoformat(), "pages": len(ocr.pages), "language": "vi",
        "ocr": {"mean_confidence": ocr.mean_confidence,
                "pages": [{"index": p.index, "confidence": p.mean_confidence, "blank": p.blank, "dpi": p.dpi,
                           "flags": list(p.flags)} for p in ocr.pages]},
        "needs_review": needs_review, "review_reasons": list(review_reasons),
        "signature": {"signer": verdict.signer, "valid": verdict.valid, "level": verdict.level,
                      "signing_time": verdict.signing_time.isoformat() if verdict.signing_time else None},
        "retention": "permanent" if record.kind == "KQ" else "20 years",
        "files": files, "events": events, "tools": dict(ctx.tool_versions, **dict(ocr.tool_versions)),
        "archived_at": datetime.now(UTC).isoformat(),
    }
    if stack is not None:
        sidecar["stack"] = stack
    sidecar_validator().validate(sidecar)
    return sidecar


def put_sidecar(archive: Archive, key: str, data: bytes, code: str) -> Any:
    """Store the sidecar; after an interrupted run, keep the one already there if it describes the same PDF."""
    existing = archive.head(key)
    if existing is not None:
        old = json.loads(archive.get(key))
        new = json.loads(data)
        if [f["sha256"] for f in old["files"]] == [f["sha256"] for f in new["files"]]:
            return existing
        raise ArchiveIntegrityError(f"sidecar {key} already exists and describes other files")
    return archive.put(key, data, content_type="application/json", metadata={"code": code})
