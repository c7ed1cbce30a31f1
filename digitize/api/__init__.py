"""The reuse API for the one-stop system (FastAPI): app, one router per resource, bearer-token auth."""

from __future__ import annotations

from digitize.api.app import create_app, serve
from digitize.api.auth import SCOPES, create_token, list_clients, revoke_token

__all__ = ["SCOPES", "create_app", "create_token", "list_clients", "revoke_token", "serve"]
