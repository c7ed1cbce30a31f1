"""``/documents/{code}``: an archived document's metadata and sidecar, its signed PDF, and its verification."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter, Response

from digitize.api.access import AccessDep
from digitize.api.auth import PurposeDep
from digitize.api.errors import ERRORS, INTEGRITY, NOT_FOUND, ApiError
from digitize.api.models import (
    CodePath,
    DocumentDetailOut,
    ObjectCheckOut,
    SignatureOut,
    VerifyOut,
    document_out,
)
from digitize.api.services import Services
from digitize.catalog import DocumentRecord
from digitize.clock import business_today

if TYPE_CHECKING:
    from digitize.signing import SignatureVerdict

router = APIRouter()


def archived_document(services: Services, code: str) -> DocumentRecord:
    """The latest archived version of ``code`` (404 when there is none)."""
    record = services.catalog.archived_document(code)
    if record is None:
        raise ApiError(404, "NOT_FOUND", f"no archived document with code {code}",
                       "Check the code (python -m digitize show CODE on the archive side).")
    return record


def checked_object(services: Services, record: DocumentRecord, what: str, key: str, sha256: str | None) -> bytes:
    """The archived object's bytes, only when they hash to the catalog's SHA-256: forged bytes are never served."""
    data = services.archive.get(key)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ApiError(502, "ARCHIVE_INTEGRITY",
                       f"the archived {what} of {record.code} v{record.version} differs from the catalog's SHA-256: "
                       "it was changed or damaged in the archive",
                       f"Do not use this document; IT staff should restore its {what} from a backup or replica "
                       f"(python -m digitize verify {record.code} names every damaged object).")
    return data


@router.get("/documents/{code}", response_model=DocumentDetailOut, responses={**ERRORS, **NOT_FOUND, **INTEGRITY},
            summary="Metadata and archived sidecar of a document", tags=["documents"])
def document(code: CodePath, access: AccessDep, purpose: PurposeDep, sidecar: bool = True) -> DocumentDetailOut:

    def work() -> DocumentDetailOut:
        record = archived_document(access.services, code)
        data = (json.loads(checked_object(access.services, record, "sidecar", record.sidecar_key,
                                          record.sidecar_sha256))
                if sidecar and record.sidecar_key else None)
        return DocumentDetailOut(document=document_out(record, business_today()), sidecar=data)

    return access.run("document", code, purpose, work)


@router.get("/documents/{code}/pdf", responses={**ERRORS, **NOT_FOUND, **INTEGRITY, 200: {
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    "description": "The signed PDF/A as archived (its SHA-256 checked against the catalog)"}},
    response_class=Response, summary="Signed PDF of a document", tags=["documents"])
def document_pdf(code: CodePath, access: AccessDep, purpose: PurposeDep) -> Response:

    def work() -> Response:
        record = archived_document(access.services, code)
        data = checked_object(access.services, record, "signed PDF", record.pdf_key or "", record.pdf_sha256)
        digest = hashlib.sha256(data).hexdigest()
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{code}.pdf"', "X-Checksum-SHA256": digest})

    return access.run("document_pdf", code, purpose, work)


def _signature_out(verdict: SignatureVerdict | None) -> SignatureOut:
    if verdict is None:
        return SignatureOut(valid=False, intact=False, trusted=False, signer="", signing_time=None, level="",
                            summary="not checked: the signed PDF could not be read")
    return SignatureOut(valid=verdict.valid, intact=verdict.intact, trusted=verdict.trusted, signer=verdict.signer,
                        signing_time=verdict.signing_time, level=verdict.level, summary=verdict.summary)


@router.get("/documents/{code}/verify", response_model=VerifyOut, responses={**ERRORS, **NOT_FOUND},
            summary="Checksums of the PDF, sidecar and originals recomputed from the archive; signature verdict",
            tags=["documents"])
def verify(code: CodePath, access: AccessDep, purpose: PurposeDep) -> VerifyOut:

    def work() -> VerifyOut:
        from digitize.preservation import object_label, verify_record

        record = archived_document(access.services, code)
        result = verify_record(access.services.archive, record, trust_roots=access.services.trust_roots)
        objects = [ObjectCheckOut(object="signed PDF", key=record.pdf_key or "", ok=result.checksum_ok,
                                  detail=result.checksum_detail)]
        objects += [ObjectCheckOut(object=object_label(c), key=c.key, ok=c.ok, detail=c.detail) for c in result.objects]
        return VerifyOut(
            code=code, version=record.version, catalog_sha256=record.pdf_sha256, archive_sha256=result.sha256,
            checksum_ok=result.checksum_ok and result.objects_ok, objects=objects, verified_at=datetime.now(UTC),
            signature=_signature_out(result.signature))

    return access.run("verify", code, purpose, work, purpose_required=False)
