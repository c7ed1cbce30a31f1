"""Proposals review page inside the Airflow UI: a FastAPI app under ``/match-review`` and a nav entry.

Officers see the scans ``python -m digitize propose`` could not match with certainty (best and second
candidates, scores, the fields that matched, holder IDs masked) and accept one candidate or reject
the proposal. Login is Airflow's (``airflow_login``): seeing the page takes the custom view "Match
review"; deciding also takes the right to run the digitize_inbox DAG (a decision sends a scan into
the next run), and is recorded with the Airflow user's name. The form is guarded like the quarantine
page's: same-site requests only, and a token (an HMAC of the user's name under ``[api] secret_key``)
that another site cannot read or forge; a bearer-token caller needs none.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlparse

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from airflow_login import (
    AirflowLogin,
    Bearer,
    check_form,
    form_token,
    page_app,
    require_run_right,
    unavailable,
)
from fastapi import Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from quarantine_page import RETRY_DAG

URL_PREFIX = "/match-review"
RESOURCE_NAME = "Match review"
_ROOT = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")

app = page_app("Proposals to review", "Scans matched to the register with doubt: accept or reject.")
_login = AirflowLogin(RESOURCE_NAME)


FORM = "match-decision"
"""Purpose the decision form's token is bound to (:func:`airflow_login.form_token`)."""


def _catalog_url() -> str:
    from digitize.config import load_settings

    return load_settings().catalog_url


@app.get("/", response_class=HTMLResponse)
def page(user: Annotated[Any, Depends(_login.page_viewer)], decided: str | None = Query(None)) -> HTMLResponse:
    """The page: every undecided proposal that was not accepted, and the outcome of the last decision."""
    from digitize.errors import DigitizeError
    from digitize.presentation import match_review

    url = _catalog_url()
    try:
        items = match_review.collect(url)
        done = match_review.decided(url, decided) if decided else None
    except DigitizeError as exc:
        raise unavailable(exc) from exc
    notice = ""
    if done is not None and done.decision is not None:
        d = done.decision
        notice = (f"{done.file}: {d['decision']}" + (f" as register row {d['register_id']}" if d["register_id"] else "")
                  + f" by {d['user']}")
    return HTMLResponse(match_review.review_html(items, csrf_token=form_token(user, FORM), notice=notice,
                                                 action=f"{_ROOT}{URL_PREFIX}/decide"),
                        headers={"Cache-Control": "no-store"})


@app.get("/api/items", dependencies=[Depends(_login.viewer)])
def items() -> JSONResponse:
    """The page's content as JSON (holder IDs masked)."""
    from dataclasses import asdict

    from digitize.errors import DigitizeError
    from digitize.presentation import match_review

    try:
        return JSONResponse({"items": [asdict(i) for i in match_review.collect(_catalog_url())]})
    except DigitizeError as exc:
        raise unavailable(exc) from exc


@app.post("/decide")
def decide(request: Request, bearer: Bearer, user: Annotated[Any, Depends(_login.viewer)],
           key: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = "",
           register_id: Annotated[str, Form()] = "", reject: Annotated[str, Form()] = "") -> RedirectResponse:
    """Accept a candidate (``register_id``) or reject (``reject``): recorded with the user's name."""
    from digitize.errors import DigitizeError, ProposalInvalid
    from digitize.presentation import match_review

    check_form(request, user, FORM, csrf_token, bearer)
    require_run_right(user, RETRY_DAG)
    try:
        match_review.decide(_catalog_url(), key, accept=not reject, register_id=register_id or None,
                            user=user.get_name())
    except ProposalInvalid as exc:
        raise HTTPException(status_code=409, detail=f"{exc.message} — {exc.hint}") from exc
    except DigitizeError as exc:
        raise unavailable(exc) from exc
    return RedirectResponse(f"{_ROOT}{URL_PREFIX}/?{urlencode({'decided': key})}", status_code=303)


class MatchReviewPagePlugin(AirflowPlugin):
    """Registers the review app and its entry in the UI's navigation (shown in an iframe)."""

    name = "match_review_page"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Proposals to review"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "Match review", "href": f"{_ROOT}{URL_PREFIX}/", "url_route": "match-review", "destination": "nav",
         "nav_top_level": True},
    ]
