"""Who calls and why: bearer tokens (issued, revoked, checked) and the purpose of an access, as dependencies.

Every calling system has its own bearer token; only its SHA-256 is stored in
the catalog. A request that touches personal data says why, in the
``X-Purpose`` header (percent-encoded UTF-8) or the ``purpose`` query parameter.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from digitize.api.errors import ApiError
from digitize.api.models import CONTROL_CHARACTERS
from digitize.api.services import ServicesDep
from digitize.errors import ConfigurationError
from digitize.personal import mask_holder_ids

if TYPE_CHECKING:
    from digitize.catalog import Catalog

SCOPES = ("read", "reuse")
"""``read``: search, holders, documents, PDFs, verification; ``reuse``: record a reuse."""
TOKEN_PREFIX = "dgz_"


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


def create_token(catalog: Catalog, name: str, scopes: Sequence[str] = SCOPES) -> str:
    """Register a calling system and return its new token (shown once; only its SHA-256 is stored)."""
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}", name):
        raise ConfigurationError(f"client name {name!r}: use 1-100 letters, digits, spaces, '.', '_' or '-'")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ConfigurationError(f"scopes {unknown or '(none)'} are not among {', '.join(SCOPES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    catalog.create_api_client(name, _sha256(token), scopes)
    return token


def revoke_token(catalog: Catalog, name: str) -> bool:
    """Revoke a client's token; False if there is no active client of that name."""
    return catalog.revoke_api_client(name)


def list_clients(catalog: Catalog) -> list[dict[str, Any]]:
    """Clients with their scopes and dates (never a token)."""
    return catalog.list_api_clients()


def authenticate(catalog: Catalog, token: str) -> ApiClient | None:
    """The active client holding ``token``, or None."""
    found = catalog.active_api_client(_sha256(token))
    return None if found is None else ApiClient(found.id, found.name, found.scopes)


_bearer = HTTPBearer(auto_error=False, description="Token of the calling system")


def authenticated_client(request: Request, services: ServicesDep,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiClient:
    """The authenticated calling system; 401 otherwise, logged with the reason (never the token presented)."""
    token = credentials.credentials if credentials is not None else ""
    found = authenticate(services.catalog, token) if token else None
    if found is not None:
        return found
    if not token:
        reason = "no bearer token"
    else:
        revoked = services.catalog.revoked_api_client(_sha256(token))
        reason = f"revoked token of client {revoked!r}" if revoked else "unknown token"
    services.catalog.log_access(client=None, method=request.method, path=mask_holder_ids(request.url.path),
                                action="authenticate", subject=None, purpose="", status=401, detail=reason)
    if not token:
        raise ApiError(401, "UNAUTHENTICATED", "no bearer token", "Send 'Authorization: Bearer <token>'.")
    raise ApiError(401, "UNAUTHENTICATED", "unknown or revoked token",
                   "Ask the archive's IT staff for a token (python -m digitize api token create NAME).")


ClientDep = Annotated[ApiClient, Depends(authenticated_client)]


def plain_purpose(raw: str | None) -> str | None:
    """A purpose as logged (NFC, trimmed), or None when missing, blank or holding control characters."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFC", raw).strip()
    if not text or CONTROL_CHARACTERS.search(text):
        return None
    return text


def purpose_of_access(
    x_purpose: Annotated[str | None, Header(max_length=500, description="Why personal data is accessed "
                                                                       "(percent-encoded UTF-8)")] = None,
    purpose: Annotated[str | None, Query(max_length=500, description="Alternative to the X-Purpose header")] = None,
) -> str | None:
    """The purpose the request gives, the header before the query parameter (None when it gives none)."""
    return plain_purpose(unquote(x_purpose) if x_purpose else purpose)


PurposeDep = Annotated[str | None, Depends(purpose_of_access)]
