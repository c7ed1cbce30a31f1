"""Airflow's login in front of this project's UI pages (the coverage dashboard, the quarantine page).

Not a plugin itself: the page plugins import it (Airflow puts the plugins folder on ``sys.path``). Their
cookie-authenticated forms (the quarantine page's retry, the dashboard's cover sheets) are guarded against
cross-site posts by :func:`check_form`.
Every route resolves the caller with the API server's ``get_user`` (a ``Authorization: Bearer`` JWT,
else the UI's ``_token`` session cookie, validated with ``[api_auth] jwt_secret``) and asks the auth
manager whether the user may see the page's custom view. Without a valid token an API route answers
401 and a page redirects to the login page. Plugin endpoints are otherwise public, so no route may
skip these dependencies, and FastAPI's own /docs, /redoc and /openapi.json stay off.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


class LoginRequired(Exception):
    """A page was asked for without a valid Airflow session: send the browser to the login page."""


async def authenticated(request: Request, bearer: HTTPAuthorizationCredentials | None) -> Any:
    """The caller as Airflow's API resolves it (bearer token first, then the UI's cookie); 401/403 if none."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, _oauth_token=None, bearer_credentials=bearer)


class AirflowLogin:
    """The dependencies of one page's routes, authorized as the custom view ``resource_name``."""

    def __init__(self, resource_name: str) -> None:
        self.resource_name = resource_name

    def authorize(self, user: Any) -> Any:
        """403 unless the auth manager lets this user see the view (a custom view, GET)."""
        from airflow.api_fastapi.app import get_auth_manager

        if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=self.resource_name,
                                                            user=user):
            raise HTTPException(status_code=403, detail=f"Not allowed to see the {self.resource_name}")
        return user

    async def viewer(self, request: Request, bearer: Bearer) -> Any:
        """Dependency of every API route: an authenticated, authorized Airflow user, else 401/403."""
        return self.authorize(await authenticated(request, bearer))

    async def page_viewer(self, request: Request, bearer: Bearer) -> Any:
        """Dependency of a page: a missing, expired or forged token sends the browser to the login page."""
        try:
            user = await authenticated(request, bearer)
        except HTTPException as exc:
            raise LoginRequired from exc
        return self.authorize(user)


async def to_login(request: Request, exc: Exception) -> RedirectResponse:
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)


def page_app(title: str, description: str) -> FastAPI:
    """A FastAPI app for a page plugin: no generated docs (they would skip the login), login redirect installed."""
    app = FastAPI(title=title, description=description, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(LoginRequired, to_login)
    return app


def form_token(user: Any, purpose: str) -> str:
    """A form's token against cross-site requests: bound to the user and the form, unforgeable without the API
    server's secret (an HMAC under ``[api] secret_key``)."""
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback="") or conf.get("api_auth", "jwt_secret", fallback="")
    if not secret:
        raise HTTPException(status_code=503, detail=f"[api] secret_key is not set: the {purpose} form is disabled")
    return hmac.new(secret.encode(), f"{purpose}:{user.get_name()}".encode(), hashlib.sha256).hexdigest()


def check_form(request: Request, user: Any, purpose: str, token: str, bearer: Any) -> None:
    """403 for a cookie-authenticated form post another site made the browser send (``Origin``,
    ``Sec-Fetch-Site``) or whose token is stale or forged; a bearer token (never sent by browsers on their own)
    needs neither."""
    if bearer is not None:
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(status_code=403, detail="cross-site request refused")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise HTTPException(status_code=403, detail="cross-site request refused")
    if not hmac.compare_digest(token, form_token(user, purpose)):
        raise HTTPException(status_code=403, detail="the form is stale or forged: reload the page")


def require_run_right(user: Any, dag_id: str) -> None:
    """403 unless the user may start runs of ``dag_id``: the pages' retries and decisions lead to such a run."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if not get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=dag_id), user=user):
        raise HTTPException(status_code=403, detail=f"Retrying needs the right to run the {dag_id} DAG")


def unavailable(exc: Exception) -> HTTPException:
    """503 naming the library error's reason, message and what to do (never a traceback)."""
    return HTTPException(status_code=503, detail={"reason": getattr(exc, "reason", "INTERNAL_ERROR"),
                                                  "message": str(getattr(exc, "message", exc)),
                                                  "hint": getattr(exc, "hint", "")})
