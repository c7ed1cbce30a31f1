"""Reuse API for the one-stop system: find a holder's digitized results, fetch and verify them, record their reuse.

A citizen must not be asked again for a paper the administration already
digitized (Decree 45/2020, the plan's "not asked again" indicator). The one-stop
system asks this API what a holder already has, fetches the signed PDF, checks
it, and records that it reused it in a new dossier — or, when nothing usable
was found, that the holder had to hand the paper in again; :func:`needs_frame`
hands both outcomes to coverage.

Security: every calling system has its own bearer token; only its SHA-256 is
stored (``api_clients``). Every request that touches personal data (a holder's
documents, a document's metadata, its PDF, search) must say why — ``X-Purpose``
header (percent-encode non-ASCII) or ``purpose`` query parameter — and is written
to ``access_log`` (who, what, when, why, outcome), refusals included. Errors are
JSON ``{"error": {"status", "reason", "message", "hint"}}``; bad input is a 4xx.

Run it alone with ``python -m digitize api serve`` or inside Airflow's API server
(``plugins/digitize_api.py``, under ``/digitize-api``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

import pandas as pd
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitize import __version__
from digitize.catalog import Catalog, UtcDateTime, documents
from digitize.codes import parse_dossier_code
from digitize.errors import (
    ArchiveNotFound,
    CatalogConflict,
    CodeError,
    ConfigurationError,
    DigitizeError,
    SearchQueryInvalid,
    TransientError,
)

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.config import Settings

SCOPES = ("read", "reuse")
"""``read``: search, holders, documents, PDFs, verification; ``reuse``: record a reuse."""
TOKEN_PREFIX = "dgz_"
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
HOLDER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$"
AGENCY_PATTERN = r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$"
PROCEDURE_PATTERN = r"^[0-9]\.[0-9]{6}(\.[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2})?$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_T = TypeVar("_T")

metadata = sa.MetaData()
"""The API's own tables; created by the catalog's migrations (0002, 0005), declared here to query them."""
api_clients = sa.Table(
    "api_clients", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)
access_log = sa.Table(
    "access_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Index("ix_access_log_at", "at"),
    sa.Index("ix_access_log_client", "client"),
)
reuse_events = sa.Table(
    "reuse_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_id", sa.Integer, nullable=False),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("caller_system", sa.String(200), nullable=False),
    sa.Column("new_dossier_code", sa.String(40), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("reused_at", UtcDateTime, nullable=False),
    sa.ForeignKeyConstraint(["document_id"], [documents.c.id], name="fk_reuse_events_document_id_documents"),
    sa.UniqueConstraint("document_id", "new_dossier_code", name="uq_reuse_events_document_id_new_dossier_code"),
    sa.Index("ix_reuse_events_reused_at", "reused_at"),
)
supplied_again_events = sa.Table(
    "supplied_again_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("holder_id", sa.String(100), nullable=False),
    sa.Column("new_dossier_code", sa.String(40), nullable=False),
    sa.Column("document", sa.String(200), nullable=False),
    sa.Column("procedure_code", sa.String(40)),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("caller_system", sa.String(200), nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("new_dossier_code", "holder_id", "document",
                        name="uq_supplied_again_events_new_dossier_code_holder_id_document"),
    sa.Index("ix_supplied_again_events_recorded_at", "recorded_at"),
)


# --------------------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class ApiClient:
    """A calling system, as authenticated from its token."""

    id: int
    """Row id in ``api_clients``."""
    name: str
    """Name given at ``token create``; recorded in the access log."""
    scopes: frozenset[str]
    """What it may do (see :data:`SCOPES`)."""


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def create_token(catalog: Catalog, name: str, scopes: Sequence[str] = SCOPES) -> str:
    """Register a calling system and return its new token (shown once; only its SHA-256 is stored)."""
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}", name):
        raise ConfigurationError(f"client name {name!r}: use 1-100 letters, digits, spaces, '.', '_' or '-'")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigurationError(f"scopes {unknown or '(none)'} are not among {', '.join(SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with catalog.write() as conn:
            conn.execute(sa.insert(api_clients).values(name=name, token_sha256=_sha256(token),
                                                       scopes=",".join(sorted(set(scopes))), created_at=_now()))
    except sa_exc.IntegrityError:
        raise CatalogConflict(f"an API client named {name!r} already exists",
                              hint="Revoke it first (python -m digitize api token revoke NAME) or pick another "
                                   "name.") from None
    return token


def revoke_token(catalog: Catalog, name: str) -> bool:
    """Revoke a client's token; False if there is no active client of that name."""
    with catalog.write() as conn:
        result = conn.execute(sa.update(api_clients).where((api_clients.c.name == name)
                                                           & api_clients.c.revoked_at.is_(None))
                              .values(revoked_at=_now(), name=f"{name} (revoked {_now():%Y%m%dT%H%M%S})"))
        return bool(result.rowcount)


def list_clients(catalog: Catalog) -> list[dict[str, Any]]:
    """Clients with their scopes and dates (never a token)."""
    with catalog.read() as conn:
        rows = conn.execute(sa.select(api_clients.c.name, api_clients.c.scopes, api_clients.c.created_at,
                                      api_clients.c.revoked_at).order_by(api_clients.c.id)).mappings()
        return [dict(r) for r in rows]


def authenticate(catalog: Catalog, token: str) -> ApiClient | None:
    """The active client holding ``token``, or None."""
    with catalog.read() as conn:
        row = conn.execute(sa.select(api_clients).where((api_clients.c.token_sha256 == _sha256(token))
                                                        & api_clients.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    return ApiClient(row.id, row.name, frozenset(row.scopes.split(",")))


# --------------------------------------------------------------------------------------- reuse


def reuse_frame(catalog: Catalog) -> pd.DataFrame:
    """Reuse events, one row per (document, new dossier); coverage reads :func:`needs_frame`.

    Columns: id, document_id, code, holder_id, agency_code, kind, procedure_code, register_id, client,
    caller_system, new_dossier_code, purpose, reused_at (datetime64 UTC).
    """
    columns = ["id", "document_id", "code", "holder_id", "agency_code", "kind", "procedure_code", "register_id",
               "client", "caller_system", "new_dossier_code", "purpose", "reused_at"]
    query = (
        sa.select(reuse_events.c.id, reuse_events.c.document_id, reuse_events.c.code, documents.c.holder_id,
                  documents.c.agency_code, documents.c.kind, documents.c.procedure_code, documents.c.register_id,
                  reuse_events.c.client, reuse_events.c.caller_system, reuse_events.c.new_dossier_code,
                  reuse_events.c.purpose, reuse_events.c.reused_at)
        .join(documents, documents.c.id == reuse_events.c.document_id)
        .order_by(reuse_events.c.id)
    )
    with catalog.read() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["reused_at"] = pd.to_datetime(frame["reused_at"], utc=True)
    return frame


NEEDS_COLUMNS = ("new_dossier_code", "outcome", "holder_id", "holding_agency", "document", "at")


def needs_frame(catalog: Catalog) -> pd.DataFrame:
    """Every paper a new dossier needed that the one-stop system reported: reused, or supplied again.

    Coverage's "not asked again" indicator counts dossiers from it. Columns: new_dossier_code,
    outcome (``reused`` | ``supplied_again``), holder_id, holding_agency (the reused document's agency; None
    when supplied again), document (code reused, or the paper asked for), at (datetime64 UTC).
    """
    reused = (
        sa.select(reuse_events.c.new_dossier_code, sa.literal("reused").label("outcome"), documents.c.holder_id,
                  documents.c.agency_code, reuse_events.c.code, reuse_events.c.reused_at)
        .join(documents, documents.c.id == reuse_events.c.document_id)
        .order_by(reuse_events.c.id)
    )
    again = (
        sa.select(supplied_again_events.c.new_dossier_code, sa.literal("supplied_again").label("outcome"),
                  supplied_again_events.c.holder_id, sa.null().label("agency_code"), supplied_again_events.c.document,
                  supplied_again_events.c.recorded_at)
        .order_by(supplied_again_events.c.id)
    )
    with catalog.read() as conn:
        rows = [tuple(r) for r in conn.execute(reused)] + [tuple(r) for r in conn.execute(again)]
    frame = pd.DataFrame.from_records(rows, columns=list(NEEDS_COLUMNS))
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


# --------------------------------------------------------------------------------------- models


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


class VerifyOut(BaseModel):
    code: str
    version: int
    catalog_sha256: str | None
    archive_sha256: str
    checksum_ok: bool = Field(description="SHA-256 recomputed from the archived bytes equals the catalog's")
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


# --------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An HTTP error with a stable reason and a hint, rendered as :class:`ErrorOut`."""

    def __init__(self, status: int, reason: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.hint = status, reason, message, hint


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, unknown or revoked bearer token"},
    403: {"model": ErrorOut, "description": "The token's client lacks the scope"},
    422: {"model": ErrorOut, "description": "Invalid parameter or body, or no purpose given"},
    503: {"model": ErrorOut, "description": "Catalog or archive temporarily unavailable"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such archived document"}}


def _error_response(status: int, reason: str, message: str, hint: str,
                    details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "reason": reason, "message": message, "hint": hint}
    if details is not None:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _from_digitize(exc: DigitizeError) -> ApiError:
    if isinstance(exc, SearchQueryInvalid | CodeError):
        return ApiError(422, exc.reason, exc.message, exc.hint)
    if isinstance(exc, ArchiveNotFound):
        return ApiError(404, exc.reason, "the archive holds no object for this document", exc.hint)
    if isinstance(exc, TransientError | ConfigurationError):
        return ApiError(503, exc.reason, "a service the API needs is unavailable; retry later", exc.hint)
    return ApiError(500, exc.reason, exc.message, exc.hint)


# --------------------------------------------------------------------------------------- services


class Services:
    """Catalog, archive and trust roots of the app, created on first use (importing the app costs nothing)."""

    def __init__(self, catalog: Catalog | None, archive: Archive | None, trust_roots: Sequence[Path] | None,
                 settings: Settings | None) -> None:
        self._catalog, self._archive, self._roots, self._settings = catalog, archive, trust_roots, settings
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from digitize.config import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def catalog(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                catalog = Catalog(self.settings.catalog_url)
                catalog.upgrade()
                self._catalog = catalog
            return self._catalog

    @property
    def archive(self) -> Archive:
        with self._lock:
            if self._archive is None:
                from digitize.archive import S3Archive

                self._archive = S3Archive.from_settings(self.settings)
            return self._archive

    @property
    def trust_roots(self) -> Sequence[Path]:
        return self._roots if self._roots is not None else self.settings.trust_roots


# --------------------------------------------------------------------------------------- app


def _purpose(x_purpose: str | None, purpose: str | None) -> str | None:
    raw = unquote(x_purpose) if x_purpose else purpose
    if raw is None:
        return None
    text = unicodedata.normalize("NFC", raw).strip()
    if not text or _CONTROL.search(text):
        return None
    return text


def _latest_archived_query(condition: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Documents matching ``condition`` that no archived later version replaces (a separate function so
    tests can look at its query plan)."""
    newer = documents.alias("newer")
    later = (sa.select(newer.c.id).where((newer.c.code == documents.c.code) & (newer.c.status == "ARCHIVED")
                                         & (newer.c.version > documents.c.version)).exists())
    return (sa.select(documents).where(condition & ~later)
            .order_by(documents.c.issued_date.desc(), documents.c.id))


def _latest_archived(catalog: Catalog, condition: sa.ColumnElement[bool]) -> list[Any]:
    query = _latest_archived_query(condition)
    with catalog.read() as conn:  # status filtered here: in SQL it could steer the planner to the status index
        return [r for r in conn.execute(query) if r.status == "ARCHIVED"]


def _document_out(row: Any, today: date) -> DocumentOut:
    return DocumentOut(
        code=row.code, version=row.version, title=row.title, agency_code=row.agency_code, kind=row.kind,
        issued_date=row.issued_date, valid_until=row.valid_until,
        still_valid=row.valid_until is None or row.valid_until >= today, dossier_code=row.dossier_code,
        procedure_code=row.procedure_code, register_id=row.register_id, holder_id=row.holder_id, pages=row.pages,
        mean_confidence=row.mean_confidence, needs_review=bool(row.needs_review), pdf_sha256=row.pdf_sha256,
        archived_at=row.archived_at,
    )


_bearer = HTTPBearer(auto_error=False, description="Token of the calling system")


def _client(request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiClient:
    """The authenticated calling system (401 otherwise)."""
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "UNAUTHENTICATED", "no bearer token", "Send 'Authorization: Bearer <token>'.")
    found = authenticate(request.app.state.services.catalog, credentials.credentials)
    if found is None:
        raise ApiError(401, "UNAUTHENTICATED", "unknown or revoked token",
                       "Ask the archive's IT staff for a token (python -m digitize api token create NAME).")
    return found


ClientDep = Annotated[ApiClient, Depends(_client)]
XPurpose = Annotated[str | None, Header(max_length=500, description="Why personal data is accessed "
                                                                    "(percent-encoded UTF-8)")]
QPurpose = Annotated[str | None, Query(max_length=500, description="Alternative to the X-Purpose header")]
CodePath = Annotated[str, PathParam(pattern=CODE_PATTERN, description="Uniform document code")]


def create_app(catalog: Catalog | None = None, *, archive: Archive | None = None,
               trust_roots: Sequence[Path] | None = None, settings: Settings | None = None) -> FastAPI:
    """The API; without arguments it uses the settings (``DIGITIZE_*``) on first request."""
    services = Services(catalog, archive, trust_roots, settings)
    app = FastAPI(
        title="digitize reuse API",
        version=__version__,
        description=(
            "Digitized procedure results for the one-stop system: a holder's still-valid documents, their metadata, "
            "signed PDFs and verification, full-text search, and the outcome of each paper a new dossier needed: "
            "reused from here, or handed in again by the holder (the plan's \"not asked again\" indicator).\n\n"
            "Authenticate with `Authorization: Bearer <token>` (one token per calling system, from "
            "`python -m digitize api token create NAME`). Endpoints returning personal data require the purpose "
            "of the access in the `X-Purpose` header (percent-encoded UTF-8) or the `purpose` query parameter; "
            "every such access is logged."
        ),
    )
    app.state.services = services
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.reason, exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))} for e in exc.errors()]
        where = ", ".join(".".join(d["loc"]) for d in details)
        return _error_response(422, "INVALID_REQUEST", f"invalid request: {where}",
                               "Correct the fields listed in details (see the OpenAPI description at /openapi.json).",
                               jsonable_encoder(details))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return _error_response(exc.status_code, reason, str(exc.detail), "See /docs for the available endpoints.")

    @app.exception_handler(DigitizeError)
    async def _digitize(_request: Request, exc: DigitizeError) -> JSONResponse:
        error = _from_digitize(exc)
        return _error_response(error.status, error.reason, error.message, error.hint)

    def require(who: ApiClient, scope: str) -> None:
        if scope not in who.scopes:
            raise ApiError(403, "FORBIDDEN", f"client {who.name!r} lacks the {scope!r} scope",
                           "Ask the archive's IT staff for a token with this scope.")

    def audited(request: Request, who: ApiClient, action: str, subject: str | None, purpose: str | None,
                work: Callable[[], _T], *, scope: str = "read", purpose_required: bool = True,
                response: Response | None = None) -> _T:
        """Check the scope and the purpose, run ``work``, and log the access (also when refused or failed)."""
        status = 200
        try:
            require(who, scope)
            if purpose_required and purpose is None:
                raise ApiError(422, "PURPOSE_REQUIRED", "this endpoint returns personal data: say why you need it",
                               "Send the X-Purpose header (percent-encoded UTF-8) or the purpose query parameter.")
            result = work()
            status = (response.status_code if response is not None else None) or 200
            return result
        except ApiError as exc:
            status = exc.status
            raise
        except DigitizeError as exc:
            status = _from_digitize(exc).status
            raise
        except Exception:
            status = 500
            raise
        finally:
            with services.catalog.write() as conn:
                conn.execute(sa.insert(access_log).values(
                    at=_now(), client=who.name, method=request.method, path=request.url.path[:1000], action=action,
                    subject=subject, purpose=purpose or "", status=status))

    def archived_document(code: str) -> Any:
        rows = _latest_archived(services.catalog, documents.c.code == code)
        if not rows:
            raise ApiError(404, "NOT_FOUND", f"no archived document with code {code}",
                           "Check the code (python -m digitize show CODE on the archive side).")
        return rows[0]

    @app.get("/holders/{holder_id}/documents", response_model=HolderDocumentsOut, responses=_ERRORS,
             summary="A holder's digitized documents (still valid unless include_expired)", tags=["reuse"])
    def holder_documents(
        request: Request, who: ClientDep,
        holder_id: Annotated[str, PathParam(pattern=HOLDER_PATTERN, description="Citizen ID or tax code")],
        x_purpose: XPurpose = None, purpose: QPurpose = None,
        procedure_code: Annotated[str | None, Query(pattern=PROCEDURE_PATTERN)] = None,
        kind: Literal["KQ", "TP"] | None = None,
        include_expired: bool = False,
    ) -> HolderDocumentsOut:
        today = date.today()

        def work() -> HolderDocumentsOut:
            condition = documents.c.holder_id == holder_id
            if procedure_code is not None:
                condition &= ((documents.c.procedure_code == procedure_code)
                              | documents.c.procedure_code.startswith(procedure_code + ".", autoescape=True))
            if kind is not None:
                condition &= documents.c.kind == kind
            if not include_expired:
                condition &= documents.c.valid_until.is_(None) | (documents.c.valid_until >= today)
            rows = _latest_archived(services.catalog, condition)
            return HolderDocumentsOut(holder_id=holder_id, documents=[_document_out(r, today) for r in rows])

        return audited(request, who, "holder_documents", holder_id, _purpose(x_purpose, purpose), work)

    @app.get("/documents/{code}", response_model=DocumentDetailOut, responses={**_ERRORS, **_NOT_FOUND},
             summary="Metadata and archived sidecar of a document", tags=["documents"])
    def document(request: Request, code: CodePath, who: ClientDep, x_purpose: XPurpose = None, purpose: QPurpose = None,
                 sidecar: bool = True) -> DocumentDetailOut:

        def work() -> DocumentDetailOut:
            row = archived_document(code)
            data = json.loads(services.archive.get(row.sidecar_key)) if sidecar and row.sidecar_key else None
            return DocumentDetailOut(document=_document_out(row, date.today()), sidecar=data)

        return audited(request, who, "document", code, _purpose(x_purpose, purpose), work)

    @app.get("/documents/{code}/pdf", responses={**_ERRORS, **_NOT_FOUND, 200: {
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The signed PDF/A as archived (its SHA-256 checked against the catalog)"}},
        response_class=Response, summary="Signed PDF of a document", tags=["documents"])
    def document_pdf(request: Request, code: CodePath, who: ClientDep, x_purpose: XPurpose = None,
                     purpose: QPurpose = None) -> Response:

        def work() -> Response:
            row = archived_document(code)
            data = services.archive.get(row.pdf_key)
            digest = hashlib.sha256(data).hexdigest()
            if digest != row.pdf_sha256:
                raise ApiError(502, "ARCHIVE_INTEGRITY", f"the archived PDF of {code} differs from the catalog",
                               "Do not use this copy; IT staff should compare the archive with the catalog.")
            return Response(data, media_type="application/pdf", headers={
                "Content-Disposition": f'inline; filename="{code}.pdf"', "X-Checksum-SHA256": digest})

        return audited(request, who, "document_pdf", code, _purpose(x_purpose, purpose), work)

    @app.get("/documents/{code}/verify", response_model=VerifyOut, responses={**_ERRORS, **_NOT_FOUND},
             summary="Checksum recomputed from the archive and signature verdict", tags=["documents"])
    def verify(request: Request, code: CodePath, who: ClientDep, x_purpose: XPurpose = None,
               purpose: QPurpose = None) -> VerifyOut:

        def work() -> VerifyOut:
            from digitize.signing import verify_pdf

            row = archived_document(code)
            data = services.archive.get(row.pdf_key)
            digest = hashlib.sha256(data).hexdigest()
            verdict = verify_pdf(data, services.trust_roots)
            return VerifyOut(
                code=row.code, version=row.version, catalog_sha256=row.pdf_sha256, archive_sha256=digest,
                checksum_ok=digest == row.pdf_sha256, verified_at=_now(),
                signature=SignatureOut(valid=verdict.valid, intact=verdict.intact, trusted=verdict.trusted,
                                       signer=verdict.signer, signing_time=verdict.signing_time,
                                       level=verdict.level, summary=verdict.summary))

        return audited(request, who, "verify", code, _purpose(x_purpose, purpose), work,
                       purpose_required=False)

    @app.post("/documents/{code}/reuse", response_model=ReuseOut, status_code=201,
              responses={**_ERRORS, **_NOT_FOUND, 200: {"model": ReuseOut, "description": "Already recorded"},
                         409: {"model": ErrorOut, "description": "The document is no longer valid"}},
              summary="Record that the document was reused in a new dossier", tags=["reuse"])
    def reuse(request: Request, code: CodePath, body: ReuseIn, who: ClientDep, response: Response) -> ReuseOut:
        purpose = _purpose(None, body.purpose)

        def work() -> ReuseOut:
            try:
                parse_dossier_code(body.new_dossier_code)
            except CodeError as exc:
                raise ApiError(422, exc.reason, f"new_dossier_code: {exc.message}", exc.hint) from None
            caller = (body.caller_system or who.name).strip()
            if not caller or _CONTROL.search(caller):
                raise ApiError(422, "INVALID_REQUEST", "caller_system is empty or holds control characters",
                               "Send the calling system's name as plain text.")
            row = archived_document(code)
            if row.valid_until is not None and row.valid_until < date.today():
                raise ApiError(409, "DOCUMENT_EXPIRED", f"{code} was valid until {row.valid_until}",
                               "Ask the holder for a current document instead.")
            catalog = services.catalog
            created = False
            try:
                with catalog.write() as conn:
                    conn.execute(sa.insert(reuse_events).values(
                        document_id=row.id, code=row.code, client=who.name, caller_system=caller,
                        new_dossier_code=body.new_dossier_code, purpose=purpose, reused_at=_now()))
                created = True
            except sa_exc.IntegrityError:
                pass  # the same reuse sent again: answer with the record
            with catalog.read() as conn:
                stored = conn.execute(sa.select(reuse_events).where(
                    (reuse_events.c.document_id == row.id)
                    & (reuse_events.c.new_dossier_code == body.new_dossier_code))).one()
            response.status_code = 201 if created else 200
            if created:
                catalog.add_event(row.id, "reuse", "success", tool="digitize-api", tool_version=__version__,
                                  detail=f"reused by {who.name} ({caller}) in dossier {body.new_dossier_code}: "
                                         f"{purpose}")
            return ReuseOut(id=stored.id, code=stored.code, new_dossier_code=stored.new_dossier_code,
                            caller_system=stored.caller_system, purpose=stored.purpose, reused_at=stored.reused_at,
                            created=created)

        return audited(request, who, "reuse", code, purpose, work, scope="reuse", response=response)

    @app.post("/holders/{holder_id}/supplied-again", response_model=SuppliedAgainOut, status_code=201,
              responses={**_ERRORS, 200: {"model": SuppliedAgainOut, "description": "Already recorded"}},
              summary="Record that the holder had to hand a paper in again for a new dossier", tags=["reuse"])
    def supplied_again(
        request: Request, who: ClientDep, body: SuppliedAgainIn, response: Response,
        holder_id: Annotated[str, PathParam(pattern=HOLDER_PATTERN, description="Citizen ID or tax code")],
    ) -> SuppliedAgainOut:
        """The other outcome of a lookup: with the reuses it is the denominator of "not asked again"."""
        purpose = _purpose(None, body.purpose)

        def work() -> SuppliedAgainOut:
            try:
                parse_dossier_code(body.new_dossier_code)
            except CodeError as exc:
                raise ApiError(422, exc.reason, f"new_dossier_code: {exc.message}", exc.hint) from None
            caller = (body.caller_system or who.name).strip()
            paper = unicodedata.normalize("NFC", body.document).strip()
            if not caller or _CONTROL.search(caller) or not paper or _CONTROL.search(paper):
                raise ApiError(422, "INVALID_REQUEST", "caller_system or document is empty or holds control "
                               "characters", "Send them as plain text.")
            key = ((supplied_again_events.c.new_dossier_code == body.new_dossier_code)
                   & (supplied_again_events.c.holder_id == holder_id) & (supplied_again_events.c.document == paper))
            created = False
            try:
                with services.catalog.write() as conn:
                    conn.execute(sa.insert(supplied_again_events).values(
                        holder_id=holder_id, new_dossier_code=body.new_dossier_code, document=paper,
                        procedure_code=body.procedure_code, reason=body.reason, client=who.name,
                        caller_system=caller, purpose=purpose, recorded_at=_now()))
                created = True
            except sa_exc.IntegrityError:
                pass  # the same report sent again: answer with the record
            with services.catalog.read() as conn:
                stored = conn.execute(sa.select(supplied_again_events).where(key)).one()
            response.status_code = 201 if created else 200
            return SuppliedAgainOut(id=stored.id, holder_id=stored.holder_id,
                                    new_dossier_code=stored.new_dossier_code, document=stored.document,
                                    procedure_code=stored.procedure_code, reason=stored.reason,
                                    caller_system=stored.caller_system, recorded_at=stored.recorded_at,
                                    created=created)

        return audited(request, who, "supplied_again", holder_id, purpose, work, scope="reuse", response=response)

    @app.get("/search", response_model=SearchOut, responses=_ERRORS, summary="Full-text search of archived pages",
             tags=["search"])
    def search_endpoint(
        request: Request, who: ClientDep,
        q: Annotated[str, Query(min_length=1, max_length=500, description='Words, codes, "phrases"')],
        x_purpose: XPurpose = None, purpose: QPurpose = None,
        agency: Annotated[str | None, Query(pattern=AGENCY_PATTERN)] = None,
        kind: Literal["KQ", "TP"] | None = None,
        issued_from: Annotated[date | None, Query(alias="from")] = None,
        issued_to: Annotated[date | None, Query(alias="to")] = None,
        holder: Annotated[str | None, Query(pattern=HOLDER_PATTERN)] = None,
        exact: bool = False,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    ) -> SearchOut:
        from digitize import search


        def work() -> SearchOut:
            result = search.search(services.catalog, q, filters=search.SearchFilters(
                agency=agency, kind=kind, issued_from=issued_from, issued_to=issued_to, holder=holder),
                exact=exact, limit=limit, offset=offset)
            return SearchOut(query=result.query, exact=result.exact, corrected_query=result.corrected_query,
                             truncated=result.truncated,
                             hits=[SearchHitOut(**{k: v for k, v in h.items() if k != "document_id"})
                                   for h in search.iter_hits(result.hits)])

        return audited(request, who, "search", q, _purpose(x_purpose, purpose), work)

    return app


def serve(host: str = "127.0.0.1", port: int = 8090) -> None:
    """Run the API with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
