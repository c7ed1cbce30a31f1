"""The API's request and response bodies (pydantic), and the patterns its inputs and path parameters must match.

Their class names are the schema names of the OpenAPI description.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from digitize.catalog import DocumentRecord

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
HOLDER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$"
AGENCY_PATTERN = r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$"
PROCEDURE_PATTERN = r"^[0-9]\.[0-9]{6}(\.[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2})?$"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
"""Free text (purposes, caller systems, papers) holding one of these is refused."""
CodePath = Annotated[str, Path(pattern=CODE_PATTERN, description="Uniform document code")]
HolderPath = Annotated[str, Path(pattern=HOLDER_PATTERN, description="Citizen ID or tax code")]


class ErrorBody(BaseModel):
    status: int = Field(description="HTTP status")
    reason: str = Field(description="Stable reason code, e.g. UNAUTHENTICATED, PURPOSE_REQUIRED, NOT_FOUND")
    message: str = Field(description="What went wrong")
    hint: str = Field(description="What to do about it")
    details: list[dict[str, Any]] | None = Field(None, description="Invalid fields (validation errors)")


class ErrorOut(BaseModel):
    error: ErrorBody


class DocumentOut(BaseModel):
    code: str = Field(description="Uniform document code")
    version: int
    title: str
    agency_code: str = Field(description="Issuing agency (QCVN 102:2016 code)")
    kind: Literal["KQ", "TP"] = Field(description="KQ procedure result, TP dossier component")
    issued_date: date
    valid_until: date | None = Field(description="Last day of validity; null = indefinite")
    still_valid: bool = Field(description="Valid today")
    dossier_code: str | None
    procedure_code: str | None
    register_id: str | None
    holder_id: str | None = Field(description="Citizen ID or tax code of the holder (personal data)")
    pages: int | None
    mean_confidence: float | None = Field(description="Mean OCR confidence 0-100")
    needs_review: bool
    pdf_sha256: str | None = Field(description="SHA-256 of the signed PDF as archived")
    archived_at: datetime | None


class DocumentDetailOut(BaseModel):
    document: DocumentOut
    sidecar: dict[str, Any] | None = Field(description="The archived JSON sidecar (schemas/sidecar.schema.json)")


class HolderDocumentsOut(BaseModel):
    holder_id: str
    documents: list[DocumentOut]


class SignatureOut(BaseModel):
    valid: bool
    intact: bool
    trusted: bool
    signer: str
    signing_time: datetime | None
    level: str
    summary: str


class ObjectCheckOut(BaseModel):
    object: str = Field(description="Which archived object: 'signed PDF', 'sidecar' or 'original NN'")
    key: str = Field(description="Its archive key ('' when the catalog records none)")
    ok: bool = Field(description="Its bytes hash to the SHA-256 the catalog recorded")
    detail: str


class VerifyOut(BaseModel):
    code: str
    version: int
    catalog_sha256: str | None = Field(description="The signed PDF's SHA-256 in the catalog")
    archive_sha256: str = Field(description="The signed PDF's SHA-256 recomputed from the archive")
    checksum_ok: bool = Field(description="Every archived object (signed PDF, sidecar, originals) hashes to the "
                                          "catalog's SHA-256; `objects` names any that does not")
    objects: list[ObjectCheckOut]
    signature: SignatureOut
    verified_at: datetime


class ReuseIn(BaseModel):
    new_dossier_code: str = Field(min_length=1, max_length=40, description="Circular 01/2018 code of the new dossier")
    purpose: str = Field(min_length=1, max_length=500, description="Why the document is reused")
    caller_system: str | None = Field(None, min_length=1, max_length=200,
                                      description="Calling system (default: the client's name)")


class ReuseOut(BaseModel):
    id: int
    code: str
    new_dossier_code: str
    caller_system: str
    purpose: str
    reused_at: datetime
    created: bool = Field(description="False when this reuse was already recorded (idempotent retry)")


class SuppliedAgainIn(BaseModel):
    new_dossier_code: str = Field(min_length=1, max_length=40, description="Circular 01/2018 code of the new dossier")
    document: str = Field(min_length=1, max_length=200,
                          description="The paper the holder had to hand in again, e.g. its name or code")
    procedure_code: str | None = Field(None, pattern=PROCEDURE_PATTERN,
                                       description="Procedure whose result the paper is, when known")
    reason: Literal["not_found", "expired", "unusable"] = Field(
        description="not_found: no digitized copy here; expired: only an expired one; unusable: one was found but "
                    "could not be used")
    purpose: str = Field(min_length=1, max_length=500, description="Why the holder's data is recorded")
    caller_system: str | None = Field(None, min_length=1, max_length=200,
                                      description="Calling system (default: the client's name)")


class SuppliedAgainOut(BaseModel):
    id: int
    holder_id: str
    new_dossier_code: str
    document: str
    procedure_code: str | None
    reason: str
    caller_system: str
    recorded_at: datetime
    created: bool = Field(description="False when this was already recorded (idempotent retry)")


class SearchHitOut(BaseModel):
    code: str
    version: int
    page: int = Field(description="1-based page of the signed PDF")
    title: str
    agency_code: str
    kind: str
    dossier_code: str | None
    procedure_code: str | None
    holder_id: str | None
    issued_date: date
    valid_until: date | None
    score: float
    snippet: str = Field(description="Text around the match, matched words between « and »")


class SearchOut(BaseModel):
    query: str
    exact: bool
    corrected_query: str | None
    truncated: bool
    hits: list[SearchHitOut]



def document_out(record: DocumentRecord, today: date) -> DocumentOut:
    """The API's view of an archived document (validated: an archived document has a code); ``still_valid`` as
    of ``today``."""
    return DocumentOut.model_validate({
        "code": record.code, "version": record.version, "title": record.title, "agency_code": record.agency_code,
        "kind": record.kind, "issued_date": record.issued_date, "valid_until": record.valid_until,
        "still_valid": record.valid_until is None or record.valid_until >= today,
        "dossier_code": record.dossier_code, "procedure_code": record.procedure_code,
        "register_id": record.register_id, "holder_id": record.holder_id, "pages": record.pages,
        "mean_confidence": record.mean_confidence, "needs_review": bool(record.needs_review),
        "pdf_sha256": record.pdf_sha256, "archived_at": record.archived_at,
    })
