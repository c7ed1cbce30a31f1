"""Coverage dashboard inside the Airflow UI: a FastAPI app under ``/coverage`` and a nav entry for it.

Authentication is Airflow's own (``airflow_login``): every route resolves the caller's Airflow token
and asks the auth manager whether the user may see the custom view "Coverage Dashboard". Without a
valid token the JSON API answers 401 and the pages redirect to the login page. Plugin endpoints are
otherwise public, so no route may skip ``_viewer``/``_page_viewer``. The missing-results page's "print cover
sheets" button posts a form guarded against cross-site requests (``airflow_login.check_form``).

The figures come from ``digitize.presentation.dashboard`` (the same code as the published reports); heavy imports
(pandas, the library, Airflow's API modules) happen inside the handlers, since every Airflow
process loads plugins.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from airflow_login import AirflowLogin, Bearer, check_form, form_token, page_app
from fastapi import Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

URL_PREFIX = "/coverage"
RESOURCE_NAME = "Coverage Dashboard"
PRINT_FORM = "coverage-coversheets"
"""Purpose the print button's form token is bound to."""
# The UI loads the view's href as is: behind a sub-path (base_url http://host/airflow) it needs that prefix.
_ROOT = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")

app = page_app("Coverage dashboard",
               "Digitization coverage per level, agency and one-stop unit against the plan's targets.")
_login = AirflowLogin(RESOURCE_NAME)
_viewer = _login.viewer
_page_viewer = _login.page_viewer


def _digitize_error(exc: Exception) -> HTTPException:
    """Library errors as HTTP answers: a bad query 400, an unavailable catalog 503, anything else 500."""
    from digitize.errors import ConfigurationError, TransientError, UsageError

    bad = isinstance(exc, ConfigurationError | UsageError)
    status = 400 if bad else 503 if isinstance(exc, TransientError) else 500
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
    part: Literal["numerator", "denominator", "missing", "uncounted", "succession"] = Query(
        "denominator", description="uncounted: the documents archived but not counted, with their reason; "
        "succession: the register rows counted through a successor agency"),
    indicator: Literal["stock", "flow", "not_asked_again"] = Query("stock"),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> JSONResponse:
    """The register rows (dossiers, for not_asked_again; documents, for uncounted) behind a level's or an agency's
    figure (no holder IDs)."""
    from digitize.config import load_settings
    from digitize.errors import DigitizeError
    from digitize.presentation import dashboard

    try:
        rows = dashboard.drill_down_rows(load_settings().catalog_url, as_of or dashboard.today(), level=level,
                                         agency=agency, part=part, indicator=indicator, offset=offset, limit=limit)
    except DigitizeError as exc:
        raise _digitize_error(exc) from exc
    return JSONResponse(rows)


Level = Query(None, description="Administrative level code (e.g. province).")
Agency = Query(None, description="Agency code.")
PartQ = Query("missing", description="missing (not yet digitized), numerator (digitized) or denominator (all).")
IndicatorQ = Query("stock")


def _missing_filters(level: str | None, agency: str | None) -> dict[str, str | None]:
    """Empty form fields mean "no filter"."""
    return {"level": level or None, "agency": (agency or "").strip() or None}


@app.get("/missing", response_class=HTMLResponse)
def missing(
    user: Annotated[Any, Depends(_page_viewer)],
    as_of: date | None = AsOf, plan: str | None = Plan, level: str | None = Level, agency: str | None = Agency,
    part: Literal["numerator", "denominator", "missing"] = PartQ,
    indicator: Literal["stock", "flow", "not_asked_again"] = IndicatorQ,
    offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
) -> HTMLResponse:
    """The rows behind a figure as a readable page (the toolbar's "not yet digitized" links), with paging."""
    from digitize.config import load_settings
    from digitize.errors import DigitizeError
    from digitize.presentation import dashboard
    from digitize.presentation.missing import missing_html

    settings = load_settings()
    try:
        plan_path = dashboard.resolve_plan(plan, settings.plan_path)
        result = dashboard.drill_down_rows(settings.catalog_url, as_of or dashboard.today(), part=part,
                                           indicator=indicator, offset=offset, limit=limit,
                                           **_missing_filters(level, agency))
        page = missing_html(result, levels=dashboard.plan_levels(plan_path), plan_name=plan_path.stem,
                            csrf_token=form_token(user, PRINT_FORM))
    except DigitizeError as exc:
        raise _digitize_error(exc) from exc
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@app.get("/missing.csv", dependencies=[Depends(_viewer)])
def missing_csv(
    as_of: date | None = AsOf, level: str | None = Level, agency: str | None = Agency,
    part: Literal["numerator", "denominator", "missing"] = PartQ,
    indicator: Literal["stock", "flow", "not_asked_again"] = IndicatorQ,
) -> Response:
    """Every row behind a figure as CSV (UTF-8 with BOM, for Excel), whatever page the table shows."""
    from digitize.config import load_settings
    from digitize.errors import DigitizeError
    from digitize.presentation import dashboard
    from digitize.presentation.missing import missing_csv as to_csv

    day = as_of or dashboard.today()
    try:
        columns, rows = dashboard.drill_down_all(load_settings().catalog_url, day, part=part, indicator=indicator,
                                                 **_missing_filters(level, agency))
    except DigitizeError as exc:
        raise _digitize_error(exc) from exc
    name = re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(p for p in (indicator, part, level, agency, day.isoformat()) if p))
    return Response(to_csv(columns, rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "Cache-Control": "no-store"})


@app.post("/missing/coversheets.pdf")
def print_coversheets(request: Request, bearer: Bearer, user: Annotated[Any, Depends(_viewer)],
                      register_id: Annotated[list[str], Form()],
                      csrf_token: Annotated[str, Form()] = "") -> Response:
    """Cover sheets (PDF) for the register rows the missing-results page showed; stored with the user's name and
    recorded in the access log."""
    from digitize.config import load_settings
    from digitize.errors import DigitizeError
    from digitize.presentation import coversheets, dashboard

    check_form(request, user, PRINT_FORM, csrf_token, bearer)
    try:
        pdf = coversheets.print_for_dashboard(load_settings().catalog_url, register_id, user=user.get_name(),
                                              path=f"{URL_PREFIX}/missing/coversheets.pdf")
    except DigitizeError as exc:
        raise _digitize_error(exc) from exc
    name = f"coversheets-{dashboard.today().isoformat()}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


class CoverageDashboardPlugin(AirflowPlugin):
    """Registers the dashboard app and its entry in the UI's navigation (shown in an iframe)."""

    name = "coverage_dashboard"
    # the base class declares these as plain lists, so they stay plain class attributes
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Coverage dashboard"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "Coverage", "href": f"{_ROOT}{URL_PREFIX}/", "url_route": "coverage", "destination": "nav",
         "nav_top_level": True},  # a top-level entry, not folded into a "Plugins" menu
    ]
