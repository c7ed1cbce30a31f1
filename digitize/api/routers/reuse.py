"""The outcome of a lookup, reported by the one-stop system: a document reused in a new dossier, or a paper the
holder had to hand in again. Together they are coverage's "not asked again" indicator."""

from __future__ import annotations

import unicodedata

from fastapi import APIRouter, Response

from digitize import __version__
from digitize.api.access import AccessDep
from digitize.api.auth import plain_purpose
from digitize.api.errors import ERRORS, NOT_FOUND, ApiError
from digitize.api.models import (
    CONTROL_CHARACTERS,
    CodePath,
    ErrorOut,
    HolderPath,
    ReuseIn,
    ReuseOut,
    SuppliedAgainIn,
    SuppliedAgainOut,
)
from digitize.api.routers.documents import archived_document
from digitize.clock import business_today
from digitize.codes import parse_dossier_code
from digitize.errors import CodeError

router = APIRouter()


def _check_dossier_code(code: str) -> None:
    try:
        parse_dossier_code(code)
    except CodeError as exc:
        raise ApiError(422, exc.reason, f"new_dossier_code: {exc.message}", exc.hint) from None


@router.post("/documents/{code}/reuse", response_model=ReuseOut, status_code=201,
             responses={**ERRORS, **NOT_FOUND, 200: {"model": ReuseOut, "description": "Already recorded"},
                        409: {"model": ErrorOut, "description": "The document is no longer valid"}},
             summary="Record that the document was reused in a new dossier", tags=["reuse"])
def reuse(code: CodePath, body: ReuseIn, access: AccessDep, response: Response) -> ReuseOut:
    purpose = plain_purpose(body.purpose)
    who = access.client

    def work() -> ReuseOut:
        _check_dossier_code(body.new_dossier_code)
        caller = (body.caller_system or who.name).strip()
        if not caller or CONTROL_CHARACTERS.search(caller):
            raise ApiError(422, "INVALID_REQUEST", "caller_system is empty or holds control characters",
                           "Send the calling system's name as plain text.")
        record = archived_document(access.services, code)
        if record.valid_until is not None and record.valid_until < business_today():
            raise ApiError(409, "DOCUMENT_EXPIRED", f"{code} was valid until {record.valid_until}",
                           "Ask the holder for a current document instead.")
        catalog = access.services.catalog
        stored, created = catalog.record_reuse(
            document_id=record.id, code=code, client=who.name, caller_system=caller,
            new_dossier_code=body.new_dossier_code, purpose=purpose or "")
        response.status_code = 201 if created else 200
        if created:
            catalog.add_event(record.id, "reuse", "success", tool="digitize-api", tool_version=__version__,
                              detail=f"reused by {who.name} ({caller}) in dossier {body.new_dossier_code}: {purpose}")
        return ReuseOut(id=stored.id, code=stored.code, new_dossier_code=stored.new_dossier_code,
                        caller_system=stored.caller_system, purpose=stored.purpose, reused_at=stored.reused_at,
                        created=created)

    return access.run("reuse", code, purpose, work, scope="reuse", response=response)


@router.post("/holders/{holder_id}/supplied-again", response_model=SuppliedAgainOut, status_code=201,
             responses={**ERRORS, 200: {"model": SuppliedAgainOut, "description": "Already recorded"}},
             summary="Record that the holder had to hand a paper in again for a new dossier", tags=["reuse"])
def supplied_again(access: AccessDep, body: SuppliedAgainIn, response: Response,
                   holder_id: HolderPath) -> SuppliedAgainOut:
    """The other outcome of a lookup: with the reuses it is the denominator of "not asked again"."""
    purpose = plain_purpose(body.purpose)
    who = access.client

    def work() -> SuppliedAgainOut:
        _check_dossier_code(body.new_dossier_code)
        caller = (body.caller_system or who.name).strip()
        paper = unicodedata.normalize("NFC", body.document).strip()
        if not caller or CONTROL_CHARACTERS.search(caller) or not paper or CONTROL_CHARACTERS.search(paper):
            raise ApiError(422, "INVALID_REQUEST", "caller_system or document is empty or holds control "
                           "characters", "Send them as plain text.")
        stored, created = access.services.catalog.record_supplied_again(
            holder_id=holder_id, new_dossier_code=body.new_dossier_code, document=paper,
            procedure_code=body.procedure_code, reason=body.reason, client=who.name, caller_system=caller,
            purpose=purpose or "")
        response.status_code = 201 if created else 200
        return SuppliedAgainOut(id=stored.id, holder_id=stored.holder_id, new_dossier_code=stored.new_dossier_code,
                                document=stored.document, procedure_code=stored.procedure_code,
                                reason=stored.reason, caller_system=stored.caller_system,
                                recorded_at=stored.recorded_at, created=created)

    return access.run("supplied_again", holder_id, purpose, work, scope="reuse", response=response)
