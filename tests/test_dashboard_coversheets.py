"""The missing-results page's "print cover sheets" button, through Airflow's own API app and its login."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sheetgen
import sqlalchemy as sa
import test_dashboard as shared
from test_dashboard import _auth, _cookie, _token

from digitize.catalog import Catalog

# the dashboard's fixtures (its catalog with the sample register, Airflow's app in process) on this module
catalog_url = shared.catalog_url
api = shared.api
ROUTE = "/coverage/missing/coversheets.pdf"
QUERY = {"level": "commune", "part": "missing", "limit": 100}


def _form(page: str) -> tuple[str, list[str]]:
    """The print form's token and the register ids it carries."""
    form = re.search(r'<form class="print" method="post" action="missing/coversheets.pdf">(.*?)</form>', page)
    assert form, "no print button on the page"
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.group(1))
    assert token
    return token.group(1), re.findall(r'name="register_id" value="([^"]+)"', form.group(1))


def test_the_button_prints_the_rows_shown_and_logs_who(api: Any, catalog_url: str, tmp_path: Path) -> None:
    page = api.get("/coverage/missing", params=QUERY, headers=_cookie(_token()))
    assert page.status_code == 200, page.text
    token, ids = _form(page.text)
    shown = re.findall(r'<tr data-register="([^"]+)">', page.text)
    assert ids == shown and len(ids) > 1
    response = api.post(ROUTE, data={"csrf_token": token, "register_id": ids}, headers=_cookie(_token()))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    (tmp_path / "sheets.pdf").write_bytes(response.content)
    sheet_ids = sheetgen.sheet_ids_of(sheetgen.render_pdf(tmp_path / "sheets.pdf", dpi=150))
    catalog = Catalog(catalog_url)
    rows = [catalog.resolve_sheet(s) for s in sheet_ids]
    catalog.close()
    assert [r.register_id for r in rows if r is not None] == ids
    assert all(r is not None and r.printed_by == "auditor" for r in rows)
    engine = sa.create_engine(catalog_url)
    with engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT client, method, path, action, detail FROM access_log "
                                      "WHERE action = 'coversheets'")).all()
    engine.dispose()
    assert [tuple(r[:4]) for r in logged] == [("airflow:auditor", "POST", ROUTE, "coversheets")]
    assert all(i in logged[0][4] for i in ids)


def test_printing_needs_the_login_and_a_fresh_form(api: Any) -> None:
    page = api.get("/coverage/missing", params=QUERY, headers=_cookie(_token())).text
    token, ids = _form(page)
    data = {"csrf_token": token, "register_id": ids[:1]}
    assert api.post(ROUTE, data=data).status_code == 401
    assert api.post(ROUTE, data=data, headers=_cookie(_token(role=None))).status_code == 403
    assert api.post(ROUTE, data={**data, "csrf_token": "0" * 64}, headers=_cookie(_token())).status_code == 403
    cross = api.post(ROUTE, data=data, headers={**_cookie(_token()), "Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert api.post(ROUTE, data={"register_id": ids[:1]}, headers=_auth(_token())).status_code == 200  # bearer


@pytest.mark.parametrize("ids", [["REG-9999"], []])
def test_rows_not_in_the_register_are_refused(api: Any, ids: list[str]) -> None:
    response = api.post(ROUTE, data={"register_id": ids}, headers=_auth(_token()))
    assert response.status_code in (400, 422), response.text
    assert not response.content.startswith(b"%PDF")


def test_no_button_where_the_rows_are_not_register_rows_still_missing(api: Any) -> None:
    for query in ({"level": "commune", "part": "numerator"}, {"indicator": "not_asked_again", "part": "missing"}):
        page = api.get("/coverage/missing", params=query, headers=_cookie(_token()))
        assert page.status_code == 200 and 'class="print"' not in page.text, query


def test_pdf_renders_to_a4_pages(tmp_path: Path, api: Any) -> None:
    response = api.post(ROUTE, data={"register_id": ["REG-0003"]}, headers=_auth(_token()))
    (tmp_path / "one.pdf").write_bytes(response.content)
    info = subprocess.run(["pdfinfo", str(tmp_path / "one.pdf")], capture_output=True, text=True).stdout
    assert re.search(r"Pages: +1\n", info) and "(A4)" in info
