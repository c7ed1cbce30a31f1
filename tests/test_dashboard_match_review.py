"""The proposals review page of the Airflow UI (issue 18): login, masking, and decisions under the user's name.

Real proposals (generated decision pages, OCR'd by the real Tesseract through ``propose``) on a real
catalog; the page is read through Airflow's own API app in process, as the quarantine page's tests do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import test_dashboard as shared
from test_dashboard import _auth, _cookie, _token

from digitize.match import ACCEPTED, stored_proposals
from tests import matchgen

api = shared.api
BATCH = "lo-khong-phieu"


@pytest.fixture(scope="module")
def proposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A catalog whose batch holds two proposals that wait for a person (neither ID nor dossier code printed)."""
    from digitize.archive import open_archive
    from digitize.catalog import Catalog
    from digitize.config import load_settings
    from digitize.intake import LocalBatch
    from digitize.match import ocr_options, propose_batch

    root = tmp_path_factory.mktemp("match-review")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITIZE_CATALOG_URL", f"sqlite:///{root / 'catalog.db'}")
        mp.setenv("DIGITIZE_ARCHIVE_URL", (root / "archive").as_uri())
        (root / "archive").mkdir()
        rows = matchgen.make_register(6)
        scans = [s for s in matchgen.scans_for(rows) if s.variant == "neither"][:2]
        settings = load_settings()
        catalog = Catalog(settings.catalog_url)
        catalog.upgrade()
        agencies, register = matchgen.write_reference(rows, root)
        catalog.import_agencies(agencies)
        catalog.import_register(register)
        batch = root / BATCH
        batch.mkdir()
        for i, scan in enumerate(scans):
            matchgen.render_scan(scan, batch / f"scan-{i}.png")
        propose_batch(catalog, open_archive(settings), LocalBatch(batch), ocr_options(settings, None))
        yield {"catalog": catalog, "scans": scans, "url": settings.catalog_url}


@pytest.fixture(scope="module")
def catalog_url(proposed: dict[str, Any]) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITIZE_CATALOG_URL", proposed["url"])
        yield proposed["url"]


def _form(page: str) -> tuple[str, list[str]]:
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert token, "no decision form on the page"
    return token.group(1), re.findall(r'name="key" value="([^"]+)"', page)


def test_nothing_opens_without_login_and_the_role(api: Any, proposed: dict[str, Any]) -> None:
    assert api.get("/match-review/api/items").status_code == 401
    assert api.post("/match-review/decide", data={"key": "x"}).status_code == 401
    page = api.get("/match-review/")
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login?next=")
    assert api.get("/match-review/api/items", headers=_auth(_token(role=None))).status_code == 403


def test_page_lists_waiting_proposals_with_ids_masked(api: Any, proposed: dict[str, Any]) -> None:
    page = api.get("/match-review/", headers=_cookie(_token()))
    assert page.status_code == 200, page.text
    items = api.get("/match-review/api/items", headers=_auth(_token())).json()["items"]
    assert {i["file"] for i in items} == {"scan-0.png", "scan-1.png"}
    for item, scan in zip(sorted(items, key=lambda i: i["file"]), proposed["scans"], strict=True):
        assert item["status"] != ACCEPTED and item["best"]["register_id"] == scan.row.register_id
        assert scan.row.holder_id not in page.text and scan.row.holder_id not in str(items)
        assert item["best"]["holder"].endswith(scan.row.holder_id[-4:])


def test_decisions_need_the_form_token_and_the_run_right_and_name_the_user(api: Any, proposed: dict[str, Any]
                                                                          ) -> None:
    catalog = proposed["catalog"]
    token, keys = _form(api.get("/match-review/", headers=_cookie(_token("USER"))).text)
    assert len(keys) == 2
    forged = api.post("/match-review/decide", data={"key": keys[0], "csrf_token": "0" * 64},
                      headers=_cookie(_token("USER")))
    assert forged.status_code == 403
    viewer_token, _ = _form(api.get("/match-review/", headers=_cookie(_token("VIEWER"))).text)
    viewer = api.post("/match-review/decide", data={"key": keys[0], "csrf_token": viewer_token},
                      headers=_cookie(_token("VIEWER")))
    assert viewer.status_code == 403 and "digitize_inbox" in viewer.text
    best = next(p for p in stored_proposals(catalog, batch_id=BATCH) if p.key == keys[0]).best
    assert best is not None
    accepted = api.post("/match-review/decide", headers={**_cookie(_token("USER")), "Origin": "http://testserver"},
                        data={"key": keys[0], "csrf_token": token, "register_id": best["register_id"]})
    assert accepted.status_code == 303, accepted.text
    rejected = api.post("/match-review/decide", headers=_cookie(_token("USER")),
                        data={"key": keys[1], "csrf_token": token, "reject": "1"})
    assert rejected.status_code == 303
    decided = {p.key: p.decision for p in stored_proposals(catalog, batch_id=BATCH)}
    assert decided[keys[0]] == {"decision": ACCEPTED, "register_id": best["register_id"], "user": "auditor",
                                "file": decided[keys[0]]["file"], "sha256": decided[keys[0]]["sha256"],
                                "pages": [1, 1]}
    assert decided[keys[1]]["decision"] == "rejected" and decided[keys[1]]["user"] == "auditor"
    notice = api.get(accepted.headers["location"], headers=_cookie(_token())).text
    assert f"as register row {best['register_id']} by auditor" in notice
    assert api.get("/match-review/api/items", headers=_auth(_token())).json()["items"] == []
    unknown = api.post("/match-review/decide", headers=_cookie(_token("USER")),
                       data={"key": f"{BATCH}|{'0' * 64}|1-1", "csrf_token": token})
    assert unknown.status_code == 409
