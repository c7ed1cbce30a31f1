"""The quarantine and review page of the Airflow UI (issue 20, "Officers work in the UI").

A real pipeline run makes what an officer must look after: a corrupt scan and a scan that vanished
after registration (quarantined), a 150-dpi scan (archived, flagged for review), and the same bytes
handed in again in another batch (a duplicate). The page is then read through Airflow's own API app
in process (login, roles, CSRF, masking) and, in a real ``airflow api-server`` driven by headless
Chromium, an officer logs in, sees the vanished scan quarantined, puts it back, presses Retry, and the
next run archives it; the retry is in the event log under the officer's name.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_dashboard as shared
from robustness_support import make_context, png, register, row, write_batch
from test_dashboard import Browser, _admin_password, _auth, _cookie, _token

from digitize.catalog import RETRY_EVENT, Catalog
from digitize.pipeline import process_documents
from digitize.presentation import quarantine

HOLDER = "001203004567"
"""A citizen ID on a quarantined document: the page must never show it whole."""
BATCH = "lo-2026-12-01"
# the dashboard's fixtures, here on this module's catalog: Airflow's app in process, a real api-server, Chromium
api = shared.api
api_server = shared.api_server
browser = shared.browser
AGAIN = "lo-2026-12-02"


class Run:
    """What the pipeline run left: the context, the inbox and each document's id by file name."""

    def __init__(self, ctx: Any, inbox: Path, ids: dict[str, int]) -> None:
        self.ctx, self.inbox, self.ids = ctx, inbox, ids

    def next_run(self) -> dict[str, str]:
        """What the next digitize_inbox run does with the batch: register it again, process what waits."""
        registered = register(self.ctx, self.inbox / BATCH)
        outcomes = process_documents(self.ctx, registered.to_process, registered.root)
        return {str(o.document_id): o.status for o in outcomes}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> Run:
    root = tmp_path_factory.mktemp("quarantine-page")
    ctx = make_context(root, s3_server, demo_pki, "quarantine-page")
    inbox = root / "inbox"
    good = png(("GIẤY XÁC NHẬN", "Số 12/2026"))
    files = {"good.png": good, "broken.png": good[: len(good) // 2],
             "moved.png": png(("GIẤY CHỨNG NHẬN", "Số 13/2026")), "lowres.png": png(("Số 14/2026",), dpi=150)}
    batch = write_batch(inbox, BATCH, files, [row(name, holder_id=HOLDER if name == "broken.png" else "")
                                              for name in files])
    registered = register(ctx, batch)
    ids = {ctx.catalog.get_document(i).files[0].name: i for i in registered.to_process}
    shutil.move(batch / "moved.png", root / "moved.png")  # gone after registration: quarantined
    outcomes = {o.document_id: o for o in process_documents(ctx, registered.to_process, batch)}
    assert [outcomes[ids[n]].status for n in files] == ["ARCHIVED", "QUARANTINED", "QUARANTINED", "ARCHIVED"]
    assert ctx.catalog.get_document(ids["lowres.png"]).needs_review
    shutil.move(root / "moved.png", root / "moved-kept.png")
    duplicate = register(ctx, write_batch(inbox, AGAIN, {"again.png": good}, [row("again.png")]))
    assert len(duplicate.duplicates) == 1 and not duplicate.to_process
    return Run(ctx, inbox, ids)


@pytest.fixture(scope="module")
def catalog_url(run: Run) -> Iterator[str]:
    """The run's catalog, named by DIGITIZE_CATALOG_URL (for the in-process app and the api-server)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITIZE_CATALOG_URL", run.ctx.settings.catalog_url)
        yield run.ctx.settings.catalog_url


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found, "no retry form on the page"
    return found.group(1)


# ------------------------------------------------------------------------------------ in process


def test_plugin_is_registered_with_its_nav_entry(api: Any) -> None:
    response = api.get("/api/v2/plugins", headers=_auth(_token("ADMIN")))
    plugin = next(p for p in response.json()["plugins"] if p["name"] == "quarantine_page")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/quarantine"]
    assert [(v["url_route"], v["href"]) for v in plugin["external_views"]] == [("quarantine", "/quarantine/")]


def test_nothing_opens_without_login(api: Any, run: Run) -> None:
    assert api.get("/quarantine/api/items").status_code == 401
    assert api.post(f"/quarantine/retry/{run.ids['broken.png']}").status_code == 401
    page = api.get("/quarantine/")
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login?next=")
    assert api.get("/quarantine/", headers=_cookie(_token(expires_in=-60))).status_code == 303
    for route in ("/quarantine/docs", "/quarantine/redoc", "/quarantine/openapi.json"):
        assert api.get(route).status_code in (401, 404), route
    assert run.ctx.catalog.get_document(run.ids["broken.png"]).status == "QUARANTINED"


def test_a_user_without_the_role_is_refused(api: Any, run: Run) -> None:
    for route in ("/quarantine/", "/quarantine/api/items"):
        refused = api.get(route, headers=_auth(_token(role=None)))
        assert refused.status_code == 403 and "Quarantine" in refused.text, route
    # a viewer sees the page but may not send documents through the pipeline again
    page = api.get("/quarantine/", headers=_cookie(_token("VIEWER")))
    assert page.status_code == 200
    viewer = api.post(f"/quarantine/retry/{run.ids['broken.png']}", data={"csrf_token": _csrf(page.text)},
                      headers=_cookie(_token("VIEWER")))
    assert viewer.status_code == 403 and "digitize_inbox" in viewer.text
    assert run.ctx.catalog.get_document(run.ids["broken.png"]).status == "QUARANTINED"


def test_page_lists_each_batch_with_reason_hint_run_review_and_duplicates(api: Any, run: Run) -> None:
    response = api.get("/quarantine/", headers=_cookie(_token()))
    assert response.status_code == 200, response.text
    page = response.text
    assert HOLDER not in page and HOLDER[-3:] in page  # masked, last digits kept to tell people apart
    items = api.get("/quarantine/api/items", headers=_auth(_token())).json()["batches"]
    assert [b["batch_id"] for b in items] == [BATCH, AGAIN]
    first = items[0]
    by_file = {q["files"][0]: q for q in first["quarantined"]}
    assert set(by_file) == {"broken.png", "moved.png"}
    moved = by_file["moved.png"]
    assert moved["reason"] == "CORRUPT_FILE" and "no longer in batch" in moved["message"]
    assert moved["todo"] == "Put the file back in the batch folder and retry the document."
    assert by_file["broken.png"]["holder"].endswith(HOLDER[-3:]) and HOLDER not in str(items)
    event = run.ctx.catalog.last_events([run.ids["moved.png"]], "quarantine")[run.ids["moved.png"]]
    assert moved["quarantined_at"] == quarantine.local_time(event.created_at)
    assert "does not record the Airflow run id" in page and moved["quarantined_at"] in page
    assert [r["id"] for r in first["review"]] == [run.ids["lowres.png"]]
    good = run.ctx.catalog.get_document(run.ids["good.png"])
    (dup,) = items[1]["duplicates"]
    assert (dup["existing_code"], dup["existing_batch"]) == (good.code, BATCH) and "again.png" in dup["detail"]
    assert good.code in page and "again.png" in page


def test_retry_needs_the_form_token_and_a_same_site_request(api: Any, run: Run) -> None:
    target = f"/quarantine/retry/{run.ids['broken.png']}"
    token = _csrf(api.get("/quarantine/", headers=_cookie(_token())).text)
    assert api.post(target, headers=_cookie(_token())).status_code == 403  # no token
    assert api.post(target, data={"csrf_token": "0" * 64}, headers=_cookie(_token())).status_code == 403
    other_user = _csrf(api.get("/quarantine/", headers=_cookie(_other_user_token())).text)
    assert other_user != token
    assert api.post(target, data={"csrf_token": other_user}, headers=_cookie(_token())).status_code == 403
    cross = api.post(target, data={"csrf_token": token},
                     headers={**_cookie(_token()), "Origin": "https://evil.example"})
    assert cross.status_code == 403
    fetched = api.post(target, data={"csrf_token": token},
                       headers={**_cookie(_token()), "Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403
    assert run.ctx.catalog.get_document(run.ids["broken.png"]).status == "QUARANTINED"


def _other_user_token() -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="mallory", role="ADMIN"))


def test_retry_from_the_page_is_recorded_with_the_user_and_refused_twice(api: Any, run: Run) -> None:
    document = run.ids["broken.png"]
    token = _csrf(api.get("/quarantine/", headers=_cookie(_token("USER"))).text)
    response = api.post(f"/quarantine/retry/{document}", data={"csrf_token": token},
                        headers={**_cookie(_token("USER")), "Origin": "http://testserver"})
    assert response.status_code == 303 and response.headers["location"] == f"/quarantine/?retried={document}"
    assert run.ctx.catalog.get_document(document).status == "RECEIVED"
    (event,) = [e for e in run.ctx.catalog.events(document) if e.event_type == RETRY_EVENT]
    assert "by auditor (Airflow UI)" in event.detail and "[CORRUPT_FILE]" in event.detail
    notice = api.get(response.headers["location"], headers=_cookie(_token())).text
    assert "back to RECEIVED" in notice and "auditor" in notice
    again = api.post(f"/quarantine/retry/{document}", data={"csrf_token": token}, headers=_cookie(_token("USER")))
    assert again.headers["location"] == f"/quarantine/?refused={document}"
    assert len([e for e in run.ctx.catalog.events(document) if e.event_type == RETRY_EVENT]) == 1
    # the file is still broken: the next run quarantines it again, with the same reason
    assert run.next_run() == {str(document): "QUARANTINED"}
    assert run.ctx.catalog.get_document(document).reason == "CORRUPT_FILE"


def test_masking_keeps_codes_and_hides_ids() -> None:
    assert quarantine.mask_id(HOLDER) == "•••••••••567"
    assert quarantine.mask_text(f"holder {HOLDER} and 123456789.") == "holder •••••••••567 and ••••••789."
    code = "000.00.12.H99.KQ.2026.000001"
    assert quarantine.mask_text(f"document {code} batch 20261201") == f"document {code} batch 20261201"


# ------------------------------------------------------------------------------- real browser, real server


def test_officer_retries_a_fixed_document_in_the_airflow_ui(api_server: str, browser: Browser, run: Run,
                                                            tmp_path: Path) -> None:
    document = run.ids["moved.png"]
    browser.open(f"{api_server}/quarantine/")
    browser.wait_for("location.pathname.startsWith('/auth/login') && document.querySelector('input[type=password]')")
    for selector, value in (("input[name=username]", "admin"), ("input[type=password]", _admin_password())):
        browser.evaluate(f"document.querySelector('{selector}').focus()")
        browser.call("Input.insertText", text=value)
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    browser.wait_for("location.pathname === '/quarantine/' && document.querySelector('table.quarantined')")

    # the page inside the Airflow UI: nav entry -> /plugin/quarantine, an iframe on /quarantine/
    browser.open(f"{api_server}/plugin/quarantine")
    frame = "document.querySelector('iframe').contentDocument"
    row_of = f"{frame}.querySelector('table.quarantined tr[data-id=\"{document}\"]')"
    browser.wait_for(f"document.querySelector('iframe') && {row_of}")
    assert browser.wait_for("[...document.querySelectorAll('a')].some(a => a.getAttribute('href')?.endsWith("
                            "'plugin/quarantine'))")  # a top-level entry of the navigation
    text = browser.evaluate(f"{frame}.body.innerText")
    assert HOLDER not in text and "CORRUPT_FILE" in text and "Put the file back in the batch folder" in text
    assert BATCH in text and AGAIN in text and "does not record the Airflow run id" in text
    assert run.ctx.catalog.get_document(run.ids["good.png"]).code in text  # the duplicate's existing code

    # the officer puts the scan back, then presses Retry on its row
    shutil.copyfile(run.inbox.parent / "moved-kept.png", run.inbox / BATCH / "moved.png")
    browser.evaluate(f"{row_of}.querySelector('button.retry').click()")
    browser.wait_for(f"{frame}.querySelector('.notice') && {frame}.location.search.includes('retried={document}')")
    notice = browser.evaluate(f"{frame}.querySelector('.notice').innerText")
    assert "back to RECEIVED" in notice and "admin" in notice
    assert not browser.evaluate(f"!!{row_of}")
    png_path = browser.screenshot(tmp_path / "quarantine.png")
    if os.environ.get("KEEP_SHOT"):
        shutil.copyfile(png_path, os.environ["KEEP_SHOT"])

    record = run.ctx.catalog.get_document(document)
    assert record.status == "RECEIVED" and record.reason is None
    (event,) = [e for e in run.ctx.catalog.events(document) if e.event_type == RETRY_EVENT]
    assert "by admin (Airflow UI)" in event.detail
    # what the officer was told: the next run over the batch processes it
    assert run.next_run() == {str(document): "ARCHIVED"}
    assert Catalog(run.ctx.settings.catalog_url).get_document(document).code
