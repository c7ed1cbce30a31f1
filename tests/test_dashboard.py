"""The coverage dashboard plugin: Airflow's authentication in front, the report's figures behind.

Three layers, all real: the JSON API and page through Airflow's own API app (``create_app``, plugins
mounted as the API server mounts them) with tokens signed the way Airflow signs them; then a real
``airflow api-server`` driven by a real headless Chromium (Debian ``chromium``) over the DevTools
protocol: redirect to the login page, log in through the login form, the dashboard inside the Airflow
UI, the figures read from the rendered page, a screenshot; and ``coverage.write_html``'s page in
Chromium with its language switch.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from digitize import coverage
from digitize.catalog.store import ArchivedInfo, Catalog, DocumentSpec, FileSpec
from digitize.config import DEFAULT_CODE_TEMPLATE, REPO_ROOT
from digitize.errors import ConfigurationError
from digitize.presentation import dashboard

SAMPLES = REPO_ROOT / "samples"
PLAN_PATH = REPO_ROOT / "schemas" / "plans" / "tien-giang-155-2021.json"
TODAY = dashboard.today()
PAST = date(2023, 6, 30)  # before anything was archived: every figure differs from today's
API_ROUTES = ("/coverage/api/figures", "/coverage/api/levels", "/coverage/api/agencies", "/coverage/api/units",
              "/coverage/api/drill-down")
# Register rows digitized in the test catalog: (register_id, issuer, kind, one-stop unit that scanned it)
ARCHIVED = (
    ("REG-0001", "000.00.12.H99", "KQ", "000.00.01.H99"),
    ("REG-0002", "000.00.12.H99", "KQ", "000.00.01.H99"),
    ("REG-0005", "000.00.12.H99", "TP", "000.00.01.H99"),  # a dossier part: not a result, never counted
    ("REG-0015", "000.01.31.H99", "KQ", "000.01.31.H99"),
    ("REG-0016", "000.01.31.H99", "KQ", "000.01.31.H99"),
    ("REG-0017", "000.01.31.H99", "KQ", None),
    ("REG-0021", "000.02.31.H99", "KQ", None),
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def catalog_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A catalog with the sample agencies and register and a few archived results, named by DIGITIZE_CATALOG_URL."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.import_agencies(SAMPLES / "agencies.csv")
    catalog.import_register(SAMPLES / "register.csv")
    for register_id, issuer, kind, scanned_at in ARCHIVED:
        spec = DocumentSpec(batch_id="dashboard", files=(FileSpec(0, f"{register_id}.jpg", _sha(register_id), 10),),
                            agency_code=issuer, kind=kind, title=f"Kết quả {register_id}",
                            issued_date=date(2023, 1, 1), register_id=register_id, scanned_at=scanned_at)
        record, _ = catalog.register_document(spec)
        catalog.allocate_code(record.id, template=DEFAULT_CODE_TEMPLATE, year=TODAY.year)
        catalog.mark_archived(record.id, ArchivedInfo(
            pdf_key=f"pdf/{register_id}", pdf_sha256=_sha(f"pdf{register_id}"), sidecar_key=f"json/{register_id}",
            sidecar_sha256=_sha(f"json{register_id}"), original_keys=(f"orig/{register_id}",), pages=1,
            mean_confidence=90.0, needs_review=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITIZE_CATALOG_URL", url)
        yield url


def _report(url: str, as_of: date, cutoff: datetime | None = None) -> coverage.CoverageReport:
    """The figures as the published reports compute them (independently of the dashboard module), with the
    catalog as recorded at ``cutoff`` (default now)."""
    from digitize.clock import utc_now

    return coverage.CoverageInputs.from_catalog(Catalog(url), cutoff or utc_now()).report(
        coverage.load_plan(PLAN_PATH), as_of)


@pytest.fixture(scope="module")
def report(catalog_url: str) -> coverage.CoverageReport:
    return _report(catalog_url, TODAY)


# ------------------------------------------------------------------------------------ library, no HTTP


def test_the_test_catalog_has_figures_worth_comparing(report: coverage.CoverageReport) -> None:
    stock = report.by_level.set_index("level")
    assert stock.loc["province", "digitized"] == 2 and stock.loc["commune", "digitized"] == 4
    assert int(report.units["running"].sum()) == 2
    assert (report.by_agency["digitized"] > 0).any() and (report.by_agency["digitized"] == 0).any()


def test_json_values_are_plain() -> None:
    assert dashboard.json_value(float("nan")) is None
    assert dashboard.json_value(pd.NA) is None and dashboard.json_value(pd.NaT) is None
    assert dashboard.json_value(pd.Timestamp("2024-06-30")) == "2024-06-30"
    assert dashboard.json_value(pd.array([True], dtype="boolean")[0]) is True
    value = dashboard.json_value(pd.Series([7], dtype="int64")[0])
    assert value == 7 and type(value) is int


def test_plan_is_chosen_by_name_never_by_path() -> None:
    assert dashboard.resolve_plan(None, PLAN_PATH) == PLAN_PATH
    assert dashboard.resolve_plan("tien-giang-155-2021", PLAN_PATH) == PLAN_PATH
    for name in ("../../etc/passwd", str(PLAN_PATH), "nope"):
        with pytest.raises(ConfigurationError, match="unknown plan"):
            dashboard.resolve_plan(name, PLAN_PATH)


# ------------------------------------------------------------------- JSON API through Airflow's own app


@pytest.fixture(scope="module")
def api(airflow_db: Path, catalog_url: str) -> Any:
    """Airflow's API app (core: UI, public API, auth manager, plugins) in process."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app("core"), follow_redirects=False) as client:
        yield client


def _token(role: str | None = "VIEWER", expires_in: int = 600) -> str:
    """A token signed by the auth manager itself, as Airflow's login does."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username="auditor", role=role)
    return get_auth_manager().generate_jwt(user, expiration_time_in_seconds=expires_in)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cookie(token: str) -> dict[str, str]:
    """The UI's session: Airflow's login stores the JWT in the ``_token`` cookie."""
    return {"Cookie": f"_token={token}"}


def test_plugin_is_registered_with_its_app_and_nav_entry(api: Any) -> None:
    response = api.get("/api/v2/plugins", headers=_auth(_token("ADMIN")))
    assert response.status_code == 200, response.text
    plugin = next(p for p in response.json()["plugins"] if p["name"] == "coverage_dashboard")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/coverage"]
    assert [(v["url_route"], v["href"], v["destination"]) for v in plugin["external_views"]] == [
        ("coverage", "/coverage/", "nav")]


def test_api_refuses_requests_without_a_valid_airflow_token(api: Any) -> None:
    forged = _token().rsplit(".", 1)[0] + ".c2lnbmVkLXdpdGgtYW5vdGhlci1zZWNyZXQ"
    for route in API_ROUTES:
        assert api.get(route).status_code == 401, route
        assert api.get(route, headers=_auth(_token(expires_in=-60))).status_code == 401, route
        assert api.get(route, headers=_auth(forged)).status_code == 403, route
        assert api.get(route, headers=_cookie("not-a-jwt")).status_code == 403, route
        refused = api.get(route, headers=_auth(_token(role=None)))  # authenticated, no role: not authorized
        assert refused.status_code == 403 and "Coverage Dashboard" in refused.text, route
        assert api.get(route, headers=_auth(_token())).status_code == 200, route


def test_no_page_of_the_plugin_opens_without_login(api: Any) -> None:
    """FastAPI's generated docs and schema are not served: they would bypass Airflow's login."""
    for route in ("/coverage/docs", "/coverage/redoc", "/coverage/openapi.json", "/coverage/docs/oauth2-redirect"):
        response = api.get(route)
        assert response.status_code in (401, 404), (route, response.status_code)
        assert "swagger" not in response.text.lower() and "openapi" not in response.text.lower(), route


def test_page_sends_anonymous_browsers_to_the_login_page(api: Any) -> None:
    response = api.get("/coverage/?as_of=2024-06-30")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login?next=")
    assert "coverage%2F%3Fas_of%3D2024-06-30" in response.headers["location"]
    expired = api.get("/coverage/", headers=_cookie(_token(expires_in=-60)))
    assert expired.status_code == 303
    assert api.get("/coverage/", headers=_auth(_token(role=None))).status_code == 403


def _level_tuples(frame: pd.DataFrame, num: str, den: str, to_target: str) -> list[tuple[Any, ...]]:
    return [(r["level"], int(r[num]), int(r[den]), _num(r["coverage_pct"]), _num(r["target_pct"]),
             None if pd.isna(r["met"]) else bool(r["met"]), _num(r["gap_points"]),
             None if pd.isna(r[to_target]) else int(r[to_target])) for r in frame.to_dict("records")]


def _num(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def _json_level_tuples(levels: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(lv["level"], lv["numerator"], lv["denominator"], lv["coverage_pct"], lv["target_pct"], lv["met"],
             lv["gap_points"], lv["to_target"]) for lv in levels]


@pytest.mark.parametrize("as_of", [TODAY, PAST])
def test_figures_equal_compute_coverage(api: Any, catalog_url: str, as_of: date) -> None:
    expected = _report(catalog_url, as_of)
    response = api.get("/coverage/api/figures", params={"as_of": as_of.isoformat(), "plan": "tien-giang-155-2021"},
                       headers=_auth(_token()))
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["as_of"] == as_of.isoformat() and got["plan"]["id"] == expected.plan.id
    indicators = {i["id"]: i for i in got["indicators"]}
    assert list(indicators) == [s.id for s in expected.indicators]
    assert _json_level_tuples(indicators["stock"]["levels"]) == _level_tuples(
        expected.by_level, "digitized", "valid", "docs_to_target")
    assert _json_level_tuples(indicators["units"]["levels"]) == _level_tuples(
        expected.units_by_level, "running", "units", "units_to_target")
    if expected.flow_by_level is None:
        assert indicators["flow"]["computable"] is False and indicators["flow"]["levels"] == []
    else:
        assert _json_level_tuples(indicators["flow"]["levels"]) == _level_tuples(
            expected.flow_by_level, "digitized", "resolved", "docs_to_target")
    assert indicators["not_asked_again"]["computable"] is False
    assert [(a["agency_code"], a["digitized"], a["valid"], a["coverage_pct"], a["target_pct"], a["gap_points"])
            for a in got["agencies"]] == [
        (r["agency_code"], int(r["digitized"]), int(r["valid"]), _num(r["coverage_pct"]), _num(r["target_pct"]),
         _num(r["gap_points"])) for r in expected.by_agency.to_dict("records")]  # laggards first, same order
    assert [(u["code"], u["documents_scanned"], u["running"]) for u in got["units"]] == [
        (r["code"], int(r["documents_scanned"]), bool(r["running"])) for r in expected.units.to_dict("records")]


def test_partial_endpoints_and_the_default_day(api: Any, report: coverage.CoverageReport) -> None:
    whole = api.get("/coverage/api/figures", headers=_auth(_token())).json()  # no query: today, DIGITIZE_PLAN
    assert whole["as_of"] == TODAY.isoformat() and whole["plan"]["name"] == "tien-giang-155-2021"
    for route, key in (("levels", "indicators"), ("agencies", "agencies"), ("units", "units")):
        part = api.get(f"/coverage/api/{route}", headers=_auth(_token())).json()
        assert part[key] == whole[key], route


def test_drill_down_rows_are_the_report_rows_without_holder_ids(api: Any, catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    frames = (catalog.agencies_frame(), catalog.register_frame(), catalog.archived_frame())
    for query in ({"level": "commune", "part": "missing"}, {"agency": "000.00.12.H99", "part": "numerator"},
                  {"level": "province"}):
        response = api.get("/coverage/api/drill-down", params={"as_of": TODAY.isoformat(), **query},
                           headers=_auth(_token()))
        assert response.status_code == 200, response.text
        got = response.json()
        expected = coverage.drill_down(*frames, TODAY, **query)  # type: ignore[arg-type]
        assert got["total"] == len(expected) > 0
        assert [r["register_id"] for r in got["rows"]] == expected["register_id"].tolist()
        assert [r["document_code"] for r in got["rows"]] == [
            None if pd.isna(c) else c for c in expected["document_code"]]
        assert all("holder_id" not in r for r in got["rows"])
    paged = api.get("/coverage/api/drill-down", params={"level": "province", "offset": 1, "limit": 2},
                    headers=_auth(_token())).json()
    assert len(paged["rows"]) == 2 and paged["offset"] == 1
    uncounted = api.get("/coverage/api/drill-down", params={"as_of": TODAY.isoformat(), "part": "uncounted"},
                        headers=_auth(_token())).json()
    report = _report(catalog_url, TODAY)
    assert [(r["document_code"], r["reason"]) for r in uncounted["rows"]] == list(
        zip(report.uncounted["document_code"], report.uncounted["reason"], strict=True))
    assert uncounted["total"] > 0 and "DOSSIER_COMPONENT" in {r["reason"] for r in uncounted["rows"]}


def test_bad_queries_are_refused_with_a_reason(api: Any) -> None:
    unknown = api.get("/coverage/api/figures", params={"plan": "../../airflow"}, headers=_auth(_token()))
    assert unknown.status_code == 400 and unknown.json()["detail"]["reason"] == "CONFIGURATION_ERROR"
    assert api.get("/coverage/api/figures", params={"as_of": "30/06/2024"}, headers=_auth(_token())).status_code == 422
    assert api.get("/coverage/api/drill-down", params={"part": "all"}, headers=_auth(_token())).status_code == 422
    assert api.get("/coverage/api/drill-down", params={"limit": 5000}, headers=_auth(_token())).status_code == 422


def test_page_is_the_html_report_with_a_toolbar(api: Any, catalog_url: str, tmp_path: Path) -> None:
    response = api.get("/coverage/", params={"as_of": PAST.isoformat()}, headers=_cookie(_token()))
    assert response.status_code == 200, response.text
    page = response.text
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    cutoff = datetime.fromisoformat(coverage.read_provenance(tmp_path / "page.html")["cutoff"])  # the page's C
    coverage.write_html(_report(catalog_url, PAST, cutoff), tmp_path / "report.html")
    report_page = (tmp_path / "report.html").read_text(encoding="utf-8")
    # the report's body follows the toolbar unchanged: the same figures, character for character
    assert page.split('</form>', 1)[1] == report_page.split("<body>", 1)[1]
    assert f'value="{PAST.isoformat()}"' in page and 'href="api/figures?as_of=' in page


def _missing_links(page: str) -> list[str]:
    """The toolbar's "results not yet digitized" links, as the page's HTML writes them."""
    import html as html_lib
    import re

    section = page.split("Results not yet digitized:", 1)[1].split("</span></span>", 1)[0]
    return [html_lib.unescape(h) for h in re.findall(r'href="([^"]+)"', section)]


def test_missing_results_links_open_a_readable_page(api: Any, catalog_url: str) -> None:
    """Issue 20: the links opened raw JSON; they open an HTML table with the same filters and a CSV link."""
    page = api.get("/coverage/", headers=_cookie(_token())).text
    links = _missing_links(page)
    assert len(links) == 3 and all(link.startswith("missing?") for link in links), links  # one per level
    catalog = Catalog(catalog_url)
    frames = (catalog.agencies_frame(), catalog.register_frame(), catalog.archived_frame())
    listed = 0
    for link in links:
        response = api.get(f"/coverage/{link}", headers=_cookie(_token()))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        level = dict(pair.split("=") for pair in link.split("?", 1)[1].split("&"))["level"]
        expected = coverage.drill_down(*frames, TODAY, level=level, part="missing")
        shown = re.findall(r'<tr data-register="([^"]+)"', response.text)
        assert shown == expected["register_id"].tolist()[:100]
        listed += len(shown)
        assert f'<option value="{level}" selected' in response.text  # the filters, filled in
        assert 'name="part"' in response.text and 'name="agency"' in response.text
        assert 'href="missing.csv?' in response.text
        assert all("holder" not in h.lower() for h in re.findall(r"<th>(.*?)</th>", response.text))
    assert listed > 0


def test_missing_results_page_pages_through_the_rows(api: Any, catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    expected = coverage.drill_down(catalog.agencies_frame(), catalog.register_frame(), catalog.archived_frame(),
                                   TODAY, level="province", part="denominator")["register_id"].tolist()
    assert len(expected) >= 4
    response = api.get("/coverage/missing", params={"level": "province", "part": "denominator", "offset": 1,
                                                   "limit": 2}, headers=_cookie(_token()))
    assert response.status_code == 200, response.text
    assert re.findall(r'<tr data-register="([^"]+)"', response.text) == expected[1:3]
    assert f"2–3 / {len(expected)}" in response.text
    assert 'rel="prev" href="missing?' in response.text and "offset=0" in response.text
    assert 'rel="next" href="missing?' in response.text and "offset=3" in response.text


def test_missing_results_csv_has_every_row_with_a_bom(api: Any, catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    expected = coverage.drill_down(catalog.agencies_frame(), catalog.register_frame(), catalog.archived_frame(),
                                   TODAY, level="commune", part="missing")
    response = api.get("/coverage/missing.csv", params={"level": "commune", "part": "missing", "limit": 1},
                       headers=_cookie(_token()))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # Excel on Windows reads Vietnamese only with the BOM
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["register_id"] for r in rows] == expected["register_id"].tolist()  # all rows, not one page
    assert rows[0]["title"] == expected["title"].iloc[0] and "holder_id" not in rows[0]


def test_missing_results_need_the_login(api: Any) -> None:
    page = api.get("/coverage/missing", params={"level": "commune"})
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login?next=")
    assert api.get("/coverage/missing.csv", params={"level": "commune"}).status_code == 401
    for route in ("/coverage/missing", "/coverage/missing.csv"):
        assert api.get(route, headers=_auth(_token(role=None))).status_code == 403, route


# ------------------------------------------------------------------------------- real browser, real server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is not installed: run `make setup` (scripts/setup.sh installs it)"
    return path


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, synchronous)."""

    def __init__(self, user_data: Path, size: tuple[int, int] = (1280, 1000)) -> None:
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={user_data}", f"--window-size={size[0]},{size[1]}",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = user_data / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert self.process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.stack = ExitStack()
        self.ws = self.stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))
        self.next_id = 0
        self.call("Page.enable")
        self.call("Network.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, (method, message["error"])
                return dict(message["result"])

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, (expression, result["exceptionDetails"])
        return result["result"].get("value")

    WHERE = ("[location.href, ...[...document.querySelectorAll('iframe')].map(f => "
             "{ try { return f.contentWindow.location.href + ' ' + f.contentDocument.body.innerText.slice(0, 300); } "
             "catch (e) { return 'iframe ' + f.src + ' ' + e; } })]")
    """Where the page is, shown when a wait times out (with any iframe's address and text)."""

    def wait_for(self, expression: str, timeout: float = 45) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            # elements (even of an iframe) come back as true: they cannot cross the protocol by value
            value = self.evaluate(f"(() => {{ try {{ const v = ({expression}); "
                                  "return v && typeof v === 'object' ? true : v; } catch (e) { return null; } })()")
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {expression}; at {self.evaluate(self.WHERE)}"
            time.sleep(0.2)

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.stack.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Browser]:
    instance = Browser(tmp_path / "chromium-profile")
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="module")
def api_server(airflow_db: Path, catalog_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``airflow api-server`` for real on a free loopback port, with the test catalog."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("api-server") / "api-server.log"
    env = {**os.environ, "AIRFLOW__API__BASE_URL": base, "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__API__HOST": "127.0.0.1", "DIGITIZE_CATALOG_URL": catalog_url}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host",
                                    "127.0.0.1", "--apps", "core", "--workers", "1"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def _admin_password() -> str:
    from airflow.configuration import conf

    return str(json.loads(Path(conf.get("core", "simple_auth_manager_passwords_file")).read_text())["admin"])


_READ_PAGE = """(() => {
  const text = (el) => el ? (el.querySelector('.vi') || el).textContent.trim() : null;
  const sections = [...D.querySelectorAll('section')]
    .filter(s => !s.querySelector('#agencies') && !s.closest('.audit'));
  return {
    sections: sections.map(s => ({title: text(s.querySelector('h2')),
      rows: [...s.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(text))})),
    agencies: [...D.querySelectorAll('#agencies tbody tr')].map(tr => [...tr.cells].map(text)),
    asOf: D.querySelector('input[name=as_of]').value,
  };
})()"""


def _expected_page(report: coverage.CoverageReport) -> dict[str, Any]:
    """What the page must show, built from the report's frames (one decimal, as the HTML report rounds)."""
    frames = {"stock": (report.by_level, "digitized", "valid"), "units": (report.units_by_level, "running", "units"),
              "flow": (report.flow_by_level, "digitized", "resolved")}

    def pct(value: Any) -> str:
        return "—" if pd.isna(value) else f"{float(value):.1f}"

    sections = []
    for status in report.indicators:
        frame, num, den = frames.get(status.id, (None, "", ""))
        rows = [] if frame is None or not status.computable else [
            [report.plan.level_names(str(r["level"]))[0], f"{int(r[num])}/{int(r[den])}", pct(r["coverage_pct"]),
             pct(r["target_pct"])] for r in frame.to_dict("records")]
        sections.append({"title": status.title_vi, "rows": rows})
    agencies = [[r["agency_code"], str(int(r["digitized"])), str(int(r["valid"])), pct(r["coverage_pct"])]
                for r in report.by_agency.to_dict("records")]
    return {"sections": sections, "agencies": agencies, "asOf": report.as_of.isoformat()}


def _shown(page: dict[str, Any]) -> dict[str, Any]:
    """The compared columns of what the browser read: level, done/total, coverage, target; agency figures."""
    return {"sections": [{"title": s["title"], "rows": [r[:4] for r in s["rows"]]} for s in page["sections"]],
            "agencies": [[a[0], a[3], a[4], a[5]] for a in page["agencies"]], "asOf": page["asOf"]}


def test_dashboard_in_the_airflow_ui_after_login(api_server: str, browser: Browser, report: coverage.CoverageReport,
                                                 tmp_path: Path) -> None:
    # anonymous: the dashboard sends the browser to Airflow's login page, which brings it back after login
    browser.open(f"{api_server}/coverage/")
    browser.wait_for("location.pathname.startsWith('/auth/login') && document.querySelector('input[type=password]')")
    assert "next=" in browser.evaluate("location.search")
    for selector, value in (("input[name=username]", "admin"), ("input[type=password]", _admin_password())):
        browser.evaluate(f"document.querySelector('{selector}').focus()")
        browser.call("Input.insertText", text=value)
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    browser.wait_for("location.pathname === '/coverage/' && document.querySelector('#agencies tbody tr')")
    direct = browser.evaluate(_READ_PAGE.replace("D.", "document."))
    assert _shown(direct) == _expected_page(report)

    # the same page inside the Airflow UI (nav entry -> /plugin/coverage, an iframe on /coverage/)
    browser.open(f"{api_server}/plugin/coverage")
    browser.wait_for("document.querySelector('iframe') && "
                     "document.querySelector('iframe').contentDocument.querySelector('#agencies tbody tr')")
    frame = "document.querySelector('iframe').contentDocument."
    assert browser.evaluate("document.querySelector('iframe').getAttribute('src')").endswith("/coverage/")
    assert browser.wait_for("[...document.querySelectorAll('a')].some(a => a.getAttribute('href')?.endsWith("
                            "'plugin/coverage'))")
    shown = browser.evaluate(_READ_PAGE.replace("D.", frame))
    assert _shown(shown) == _expected_page(report)
    time.sleep(0.5)  # let the UI finish painting its navigation before the picture
    png = browser.screenshot(tmp_path / "dashboard.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copyfile(png, REPO_ROOT / "docs" / "dashboard.png")

    # another day from the toolbar: the figures follow (and differ from today's)
    browser.open(f"{api_server}/coverage/?as_of={PAST.isoformat()}")
    browser.wait_for("document.querySelector('#agencies tbody tr')")
    past = _expected_page(_report(os.environ["DIGITIZE_CATALOG_URL"], PAST))
    assert _shown(browser.evaluate(_READ_PAGE.replace("D.", "document."))) == past
    assert past["sections"] != _expected_page(report)["sections"]


def test_html_report_renders_and_switches_language_in_chromium(report: coverage.CoverageReport, tmp_path: Path
                                                               ) -> None:
    page = tmp_path / "coverage.html"
    coverage.write_html(report, page)
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile-dump'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    stock = report.by_level.set_index("level")
    for level in ("province", "commune"):
        assert f"{int(stock.loc[level, 'digitized'])}/{int(stock.loc[level, 'valid'])}" in dom.stdout
    assert dom.stdout.count("<tr>") >= len(report.by_agency)

    browser = Browser(tmp_path / "profile-cdp")
    try:
        browser.open(page.as_uri())
        visible = browser.evaluate("document.body.innerText")  # innerText leaves out what CSS hides
        assert "Cấp tỉnh" in visible and "Digitized" not in visible
        assert browser.evaluate("document.documentElement.lang") == "vi"
        browser.evaluate("document.getElementById('lang').click()")
        english = browser.evaluate("document.body.innerText")
        assert browser.evaluate("document.documentElement.lang") == "en"
        assert "Digitized" in english and "Đã số hóa" not in english
        assert f"{int(stock.loc['province', 'digitized'])}/{int(stock.loc['province', 'valid'])}" in english
        # the agency table sorts by a column when its header is clicked (ascending by digitized results)
        browser.evaluate("document.querySelectorAll('#agencies th')[3].click()")
        counts = browser.evaluate(
            "[...document.querySelectorAll('#agencies tbody tr')].map(r => +r.cells[3].dataset.v)")
        assert counts == sorted(counts) and counts != []
    finally:
        browser.close()

