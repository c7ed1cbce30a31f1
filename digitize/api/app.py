"""Reuse API for the one-stop system: find a holder's digitized results, fetch and verify them, record their reuse.

A citizen must not be asked again for a paper the administration already
digitized (Decree 45/2020, the plan's "not asked again" indicator). The one-stop
system asks this API what a holder already has, fetches the signed PDF, checks
it, and records that it reused it in a new dossier — or, when nothing usable
was found, that the holder had to hand the paper in again; the catalog's
``needs_frame`` hands both outcomes to coverage.

Security: every calling system has its own bearer token; only its SHA-256 is
stored (``api_clients``). Every request that touches personal data (a holder's
documents, a document's metadata, its PDF, search) must say why — ``X-Purpose``
header (percent-encode non-ASCII) or ``purpose`` query parameter — and is written
to ``access_log`` (who, what, when, why, outcome), refusals included. Errors are
JSON ``{"error": {"status", "reason", "message", "hint"}}``; bad input is a 4xx.

This module builds the app: its description, error handlers and routers
(``digitize/api/routers``); ``auth`` and ``access`` hold the rules every route
runs under. Run it alone with ``python -m digitize api serve`` or inside
Airflow's API server (``plugins/digitize_api.py``, under ``/digitize-api``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitize import __version__
from digitize.api.errors import ApiError, error_response, from_digitize
from digitize.api.routers import documents, holders, reuse, search
from digitize.api.services import Services
from digitize.errors import DigitizeError
from digitize.personal import mask_holder_ids

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog
    from digitize.config import Settings

DESCRIPTION = (
    "Digitized procedure results for the one-stop system: a holder's still-valid documents, their metadata, "
    "signed PDFs and verification, full-text search, and the outcome of each paper a new dossier needed: "
    "reused from here, or handed in again by the holder (the plan's \"not asked again\" indicator).\n\n"
    "Authenticate with `Authorization: Bearer <token>` (one token per calling system, from "
    "`python -m digitize api token create NAME`). Endpoints returning personal data require the purpose "
    "of the access in the `X-Purpose` header (percent-encoded UTF-8) or the `purpose` query parameter; "
    "every such access is logged."
)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.reason, exc.message, exc.hint)


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                "type": str(e.get("type", ""))} for e in exc.errors()]
    where = ", ".join(".".join(d["loc"]) for d in details)
    return error_response(422, "INVALID_REQUEST", f"invalid request: {where}",
                          "Correct the fields listed in details (see the OpenAPI description at /openapi.json).",
                          jsonable_encoder(details))


async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, reason, str(exc.detail), "See /docs for the available endpoints.")


async def _digitize(_request: Request, exc: DigitizeError) -> JSONResponse:
    error = from_digitize(exc)
    return error_response(error.status, error.reason, error.message, error.hint)


class MaskHolderIds(logging.Filter):
    """Masks holder IDs in the request lines of uvicorn's access log: the log records no access, so it must
    not hold the IDs (``/holders/0790••••1234/documents``); the access log table holds who asked for which."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_holder_ids(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = mask_holder_ids(record.msg)
        return True


def mask_access_log() -> None:
    """Install :class:`MaskHolderIds` on uvicorn's access logger, once, in whatever server runs the app."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskHolderIds) for f in logger.filters):
        logger.addFilter(MaskHolderIds())


def create_app(catalog: Catalog | None = None, *, archive: Archive | None = None,
               trust_roots: Sequence[Path] | None = None, settings: Settings | None = None) -> FastAPI:
    """The API; without arguments it uses the settings (``DIGITIZE_*``) on first request."""
    mask_access_log()
    app = FastAPI(title="digitize reuse API", version=__version__, description=DESCRIPTION)
    app.state.services = Services(catalog, archive, trust_roots, settings)
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(DigitizeError)(_digitize)
    for router in (holders.router, documents.router, reuse.router, search.router):
        app.include_router(router)
    return app


def serve(host: str = "127.0.0.1", port: int = 8090) -> None:
    """Run the API with uvicorn (blocking)."""
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
