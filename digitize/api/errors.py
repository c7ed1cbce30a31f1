"""The API's errors: :class:`ApiError`, the JSON error body, the project's errors mapped to HTTP statuses.

Every error is JSON ``{"error": {"status", "reason", "message", "hint"}}``; bad input is a 4xx.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from digitize.api.models import ErrorOut
from digitize.errors import (
    ArchiveNotFound,
    CodeError,
    ConfigurationError,
    DigitizeError,
    SearchQueryInvalid,
    TransientError,
)


class ApiError(Exception):
    """An HTTP error with a stable reason and a hint, rendered as :class:`~digitize.api.models.ErrorOut`."""

    def __init__(self, status: int, reason: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.hint = status, reason, message, hint


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, unknown or revoked bearer token"},
    403: {"model": ErrorOut, "description": "The token's client lacks the scope"},
    422: {"model": ErrorOut, "description": "Invalid parameter or body, or no purpose given"},
    503: {"model": ErrorOut, "description": "Catalog or archive temporarily unavailable"},
}
"""The error responses every endpoint documents."""
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such archived document"}}
INTEGRITY: dict[int | str, dict[str, Any]] = {502: {
    "model": ErrorOut, "description": "The archived object differs from the catalog's SHA-256 (ARCHIVE_INTEGRITY)"}}
"""Endpoints that serve archived bytes refuse forged ones."""


def error_response(status: int, reason: str, message: str, hint: str,
                   details: list[dict[str, Any]] | None = None) -> JSONResponse:
    """The JSON error body (with ``WWW-Authenticate: Bearer`` on a 401)."""
    body: dict[str, Any] = {"status": status, "reason": reason, "message": message, "hint": hint}
    if details is not None:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def from_digitize(exc: DigitizeError) -> ApiError:
    """The HTTP status a project error stands for: bad input 422, missing object 404, unavailable 503."""
    if isinstance(exc, SearchQueryInvalid | CodeError):
        return ApiError(422, exc.reason, exc.message, exc.hint)
    if isinstance(exc, ArchiveNotFound):
        return ApiError(404, exc.reason, "the archive holds no object for this document", exc.hint)
    if isinstance(exc, TransientError | ConfigurationError):
        return ApiError(503, exc.reason, "a service the API needs is unavailable; retry later", exc.hint)
    return ApiError(500, exc.reason, exc.message, exc.hint)
