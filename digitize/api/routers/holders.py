"""``GET /holders/{holder_id}/documents``: what the administration already holds for a citizen or company."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from digitize.api.access import AccessDep
from digitize.api.auth import PurposeDep
from digitize.api.errors import ERRORS
from digitize.api.models import PROCEDURE_PATTERN, HolderDocumentsOut, HolderPath, document_out
from digitize.clock import business_today

router = APIRouter()


@router.get("/holders/{holder_id}/documents", response_model=HolderDocumentsOut, responses=ERRORS,
            summary="A holder's digitized documents (still valid unless include_expired)", tags=["reuse"])
def holder_documents(
    access: AccessDep, purpose: PurposeDep, holder_id: HolderPath,
    procedure_code: Annotated[str | None, Query(pattern=PROCEDURE_PATTERN)] = None,
    kind: Literal["KQ", "TP"] | None = None,
    include_expired: bool = False,
) -> HolderDocumentsOut:
    today = business_today()

    def work() -> HolderDocumentsOut:
        records = access.services.catalog.holder_documents(holder_id, procedure_code=procedure_code, kind=kind,
                                                           valid_on=None if include_expired else today)
        return HolderDocumentsOut(holder_id=holder_id, documents=[document_out(r, today) for r in records])

    return access.run("holder_documents", holder_id, purpose, work, returned=lambda out: (
        f"returned {len(out.documents)} document(s): {', '.join(d.code for d in out.documents)}"
        if out.documents else "returned nothing"))
