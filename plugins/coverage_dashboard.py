"""Coverage dashboard inside the Airflow UI: a FastAPI app under ``/coverage`` and a nav entry for it.

Authentication is Airflow's own: every route resolves the caller with the API server's
``get_user`` (a ``Authorization: Bearer`` JWT, else the UI's ``_token`` session cookie, validated with
``[api_auth] jwt_secret``) and asks the auth manager whether the user may see the custom view
"Coverage Dashboard". Without a valid token the JSON API answers 401 and the page redirects to the
login page. Plugin endpoints are otherwise public, so no route may skip ``_viewer``.

The figures come from ``digitize.presentation.dashboard`` (the same code as the published reports); heavy imports
(pandas, the library, Airflow's API modules) happen inside the handlers, since every Airflow
process loads plugins.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

URL_PREFIX = "/coverage"
RESOURCE_NAME = "Coverage Dashboard"
# The UI loads the view's href as is: behind a sub-path (base_url http://host/airflow) it needs that prefix.
_ROOT = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")

app = FastAPI(
    title="Coverage dashboard",
    description="Digitization coverage per level, agency and one-stop unit against the plan's targets.",
    # FastAPI's own pages (/docs, /redoc, /openapi.json) would skip ``_viewer``: plugin routes are public.
    docs_url=None, redoc_url=None, openapi_url=None,
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


class _LoginRequired(Exception):
    """The page was asked for without a valid Airflow session: send the browser to the login page."""


async def _authenticated(request: Request, bearer: HTTPAuthorizationCredentials | None) -> Any:
    """The caller as Airflow's API resolves it (bearer token first, then the UI's cookie); 401/403 if none."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, _oauth_token=None, bearer_credentials=bearer)


def _authorize(user: Any) -> Any:
    """403 unless the auth manager lets this user see the dashboard (a custom view, GET)."""
    from airflow.api_fastapi.app import get_auth_manager

    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE_NAME, user=user):
        raise HTTPException(status_code=403, detail=f"Not allowed to see the {RESOURCE_NAME}")
    return user


async def _viewer(request: Request, bearer: Bearer) -> Any:
    """Dependency of every API route: an authenticated, authorized Airflow user, else 401/403."""
    return _authorize(await _authenticated(request, bearer))


async def _page_viewer(request: Request, bearer: Bearer) -> Any:
    """Dependency of the page: a missing, expired or forged token sends the browser to the login page."""
    try:
        user = await _authenticated(request, bearer)
    except HTTPException as exc:
        raise _LoginRequired from exc
    return _authorize(user)


@app.exception_handler(_LoginRequired)
async def _to_login(request: Request, exc: _LoginRequired) -> RedirectResponse:
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)


def _digitize_error(exc: Exception) -> HTTPException:
    """Library errors as HTTP answers: a bad query 400, an unavailable catalog 503, anything else 500."""
    from digitize.errors import ConfigurationError, TransientError

    status = 400 if isinstance(exc, ConfigurationError) else 503 if isinstance(exc, TransientError) else 500
    return HTTPException(status_code=status, detail={"reason": getattr(exc, "reason", "INTERNAL_ERROR"),
                                                     "message": str(getattr(exc, "message", exc)),
                                                     "hint": getattr(exc, "hint", "")})


def _report(as_of: date | None, plan: str | None) -> tuple[Any, str, dict[str, Any]]:
    """(report, plan name, plans offered) for the query; the catalog and default plan come from DIGITIZE_*."""
    from digitize.config import load_settings
    from digitize.errors import DigitizeError
    from digitize.presentation import dashboard

    settings = load_settings()
    try:
        plan_path = dashboard.resolve_plan(plan, settings.plan_path)
        report = dashboard.compute_report(settings.catalog_url, plan_path, as_of or dashboard.today())
    except DigitizeError as exc:
        raise _digitize_error(exc) from exc
    return report, plan_path.stem, dashboard.plan_files(settings.plan_path)


AsOf = Query(None, description="Day the figures describe (YYYY-MM-DD); default: today in Vietnam.")
Plan = Query(None, description="Plan file name in schemas/plans without .json; default: DIGITIZE_PLAN.")


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(_page_viewer)])
def page(as_of: date | None = AsOf, plan: str | None = Plan) -> HTMLResponse:
    """The dashboard page: the HTML report's page for the chosen day and plan, with a toolbar."""
    from digitize.presentation import dashboard

    report, name, plans = _report(as_of, plan)
    return HTMLResponse(dashboard.dashboard_html(report, plan_name=name, plans=plans),
                        headers={"Cache-Control": "no-store"})


@app.get("/api/figures", dependencies=[Depends(_viewer)])
def figures(as_of: date | None = AsOf, plan: str | None = Plan) -> JSONResponse:
    """Every figure: indicators per level, agencies laggards first, one-stop units, "not asked again" offices."""
    from digitize.presentation import dashboard

    report, name, _ = _report(as_of, plan)
    return JSONResponse(dashboard.all_figures(report, name))


@app.get("/api/levels", dependencies=[Depends(_viewer)])
def levels(as_of: date | None = AsOf, plan: str | None = Plan) -> JSONResponse:
    """Each indicator of the plan per administrative level, with its target for the year."""
    from digitize.presentation import dashboard

    report, name, _ = _report(as_of, plan)
    return JSONResponse({**dashboard.plan_summary(report, name), "indicators": dashboard.level_figures(report)})


@app.get("/api/agencies", dependencies=[Depends(_viewer)])
def agencies(as_of: date | None = AsOf, plan: str | None = Plan) -> JSONResponse:
    """Still-valid results digitized per agency, laggards first."""
    from digitize.presentation import dashboard

    report, name, _ = _report(as_of, plan)
    return JSONResponse({**dashboard.plan_summary(report, name), "agencies": dashboard.agency_figures(report)})


@app.get("/api/units", dependencies=[Depends(_viewer)])
def units(as_of: date | None = AsOf, plan: str | None = Plan) -> JSONResponse:
    """One-stop units and whether each runs the digitization."""
    from digitize.presentation import dashboard

    report, name, _ = _report(as_of, plan)
    return JSONResponse({**dashboard.plan_summary(report, name), "units": dashboard.unit_figures(report)})


@app.get("/api/drill-down", dependencies=[Depends(_viewer)])
def drill_down(
    as_of: date | None = AsOf,
    level: str | None = Query(None, description="Administrative level code (e.g. province)."),
    agency: str | None = Query(None, description="Agency code."),
    part: Literal["numerator", "denominator", "missing"] = Query("denominator"),
    indicator: Literal["stock", "flow", "not_asked_again"] = Query("stock"),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> JSONResponse:
    """The register rows (dossiers, for not_asked_again) behind a level's or an agency's figure (no holder IDs)."""
    from digitize.config import load_settings
    from digitize.errors import DigitizeError
    from digitize.presentation import dashboard

    try:
        rows = dashboard.drill_down_rows(load_settings().catalog_url, as_of or dashboard.today(), level=level,
                                         agency=agency, part=part, indicator=indicator, offset=offset, limit=limit)
    except DigitizeError as exc:
        raise _digitize_error(exc) from exc
    return JSONResponse(rows)


class CoverageDashboardPlugin(AirflowPlugin):
    """Registers the dashboard app and its entry in the UI's navigation (shown in an iframe)."""

    name = "coverage_dashboard"
    # the base class declares these as plain lists, so they stay plain class attributes
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Coverage dashboard"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "Coverage", "href": f"{_ROOT}{URL_PREFIX}/", "url_route": "coverage", "destination": "nav"},
    ]
