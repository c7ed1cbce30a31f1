"""Quarantine and review page inside the Airflow UI: a FastAPI app under ``/quarantine`` and a nav entry.

Officers see, batch by batch, the quarantined documents (reason code, message, what to do, when the run
quarantined them), the documents flagged for review and the duplicates with their existing codes, and
start a retry after fixing the cause. Login is Airflow's (``airflow_login``): seeing the page takes the
custom view "Quarantine"; a retry also takes the right to run the digitize_inbox DAG (it hands the
document back to the next run), and is recorded with the Airflow user's name.

The retry form is cookie-authenticated, so it is guarded against cross-site requests: a request whose
``Origin`` or ``Sec-Fetch-Site`` says another site is refused, and the form carries a token (an HMAC of
the user's name under ``[api] secret_key``) that another site cannot read or forge. A caller with a
bearer token (not sent by browsers on their own) needs no form token (``airflow_login.check_form``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlparse

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from airflow_login import AirflowLogin, Bearer, check_form, form_token, page_app, require_run_right, unavailable
from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

URL_PREFIX = "/quarantine"
RESOURCE_NAME = "Quarantine"
RETRY_DAG = "digitize_inbox"
RETRY_FORM = "quarantine-retry"
"""Purpose the retry form's token is bound to (``airflow_login.form_token``)."""
_ROOT = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")

app = page_app("Quarantine and review", "Quarantined, flagged and duplicate documents by batch; retries.")
_login = AirflowLogin(RESOURCE_NAME)


def _catalog_url() -> str:
    from digitize.config import load_settings

    return load_settings().catalog_url


@app.get("/", response_class=HTMLResponse)
def page(user: Annotated[Any, Depends(_login.page_viewer)], retried: int | None = Query(None),
         refused: int | None = Query(None)) -> HTMLResponse:
    """The page: every batch with something waiting, and the outcome of the last retry, if any."""
    from digitize.errors import DigitizeError
    from digitize.presentation import quarantine

    url = _catalog_url()
    try:
        batches = quarantine.collect(url)
        notice = quarantine.retry_notice(url, retried or refused) if (retried or refused) else ""
    except DigitizeError as exc:
        raise unavailable(exc) from exc
    return HTMLResponse(
        quarantine.quarantine_html(batches, csrf_token=form_token(user, RETRY_FORM), notice=notice, error=bool(refused),
                                   runs_href=f"{_ROOT}/dags/{RETRY_DAG}/runs"),
        headers={"Cache-Control": "no-store"})


@app.get("/api/items", dependencies=[Depends(_login.viewer)])
def items() -> JSONResponse:
    """The page's content as JSON: batches with their quarantined, flagged and duplicate documents."""
    from dataclasses import asdict

    from digitize.errors import DigitizeError
    from digitize.presentation import quarantine

    try:
        return JSONResponse({"batches": [asdict(b) for b in quarantine.collect(_catalog_url())]})
    except DigitizeError as exc:
        raise unavailable(exc) from exc


@app.post("/retry/{document_id}")
def retry(request: Request, document_id: int, bearer: Bearer, user: Annotated[Any, Depends(_login.viewer)],
          csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    """Retry a quarantined document after a fix: back to RECEIVED, recorded with the user's name."""
    from digitize.errors import CatalogConflict, DigitizeError
    from digitize.presentation import quarantine

    check_form(request, user, RETRY_FORM, csrf_token, bearer)
    require_run_right(user, RETRY_DAG)
    outcome = "retried"
    try:
        quarantine.retry(_catalog_url(), document_id, actor=user.get_name())
    except CatalogConflict:
        outcome = "refused"
    except DigitizeError as exc:
        raise unavailable(exc) from exc
    return RedirectResponse(f"{_ROOT}{URL_PREFIX}/?{urlencode({outcome: document_id})}", status_code=303)


class QuarantinePagePlugin(AirflowPlugin):
    """Registers the quarantine app and its entry in the UI's navigation (shown in an iframe)."""

    name = "quarantine_page"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Quarantine and review"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "Quarantine", "href": f"{_ROOT}{URL_PREFIX}/", "url_route": "quarantine", "destination": "nav",
         "nav_top_level": True},
    ]
