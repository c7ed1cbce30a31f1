"""The reuse API for the one-stop system (FastAPI): app, routers, bearer-token auth."""

from __future__ import annotations

from digitize.api.app import SCOPES, create_app, create_token, list_clients, needs_frame, revoke_token, serve

__all__ = ["SCOPES", "create_app", "create_token", "list_clients", "needs_frame", "revoke_token", "serve"]
