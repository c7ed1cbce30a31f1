"""``/documents/{code}``: an archived document's metadata and sidecar, its signed PDF, and its verification."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

from fastapi import APIRouter, Response

from digitize.api.access import AccessDep
from digitize.api.auth import PurposeDep
from digitize.api.errors import ERRORS, NOT_FOUND, ApiError
from digitize.api.models import CodePath, DocumentDetailOut, SignatureOut, VerifyOut, document_out
from digitize.api.services import Services
from digitize.catalog import DocumentRecord

router = APIRouter()


def archived_document(services: Services, code: str) -> DocumentRecord:
    """The latest archived version of ``code`` (404 when there is none)."""
    record = services.catalog.archived_document(code)
    if record is None:
        raise ApiError(404, "NOT_FOUND", f"no archived document with code {code}",
                       "Check the code (python -m digitize show CODE on the archive side).")
    return record


@router.get("/documents/{code}", response_model=DocumentDetailOut, responses={**ERRORS, **NOT_FOUND},
            summary="Metadata and archived sidecar of a document", tags=["documents"])
def document(code: CodePath, access: AccessDep, purpose: PurposeDep, sidecar: bool = True) -> DocumentDetailOut:

    def work() -> DocumentDetailOut:
        record = archived_document(access.services, code)
        data = (json.loads(access.services.archive.get(record.sidecar_key))
                if sidecar and record.sidecar_key else None)
        return DocumentDetailOut(document=document_out(record, date.today()), sidecar=data)

    return access.run("document", code, purpose, work)


@router.get("/documents/{code}/pdf", responses={**ERRORS, **NOT_FOUND, 200: {
    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    "description": "The signed PDF/A as archived (its SHA-256 checked against the catalog)"}},
    response_class=Response, summary="Signed PDF of a document", tags=["documents"])
def document_pdf(code: CodePath, access: AccessDep, purpose: PurposeDep) -> Response:

    def work() -> Response:
        record = archived_document(access.services, code)
        data = access.services.archive.get(record.pdf_key or "")
        digest = hashlib.sha256(data).hexdigest()
        if digest != record.pdf_sha256:
            raise ApiError(502, "ARCHIVE_INTEGRITY", f"the archived PDF of {code} differs from the catalog",
                           "Do not use this copy; IT staff should compare the archive with the catalog.")
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{code}.pdf"', "X-Checksum-SHA256": digest})

    return access.run("document_pdf", code, purpose, work)


@router.get("/documents/{code}/verify", response_model=VerifyOut, responses={**ERRORS, **NOT_FOUND},
            summary="Checksum recomputed from the archive and signature verdict", tags=["documents"])
def verify(code: CodePath, access: AccessDep, purpose: PurposeDep) -> VerifyOut:

    def work() -> VerifyOut:
        from digitize.signing import verify_pdf

        record = archived_document(access.services, code)
        data = access.services.archive.get(record.pdf_key or "")
        digest = hashlib.sha256(data).hexdigest()
        verdict = verify_pdf(data, access.services.trust_roots)
        return VerifyOut(
            code=code, version=record.version, catalog_sha256=record.pdf_sha256, archive_sha256=digest,
            checksum_ok=digest == record.pdf_sha256, verified_at=datetime.now(UTC),
            signature=SignatureOut(valid=verdict.valid, intact=verdict.intact, trusted=verdict.trusted,
                                   signer=verdict.signer, signing_time=verdict.signing_time,
                                   level=verdict.level, summary=verdict.summary))

    return access.run("verify", code, purpose, work, purpose_required=False)
