"""Indicator 4 ("citizens not asked again") end to end: outcomes recorded through the real HTTP API.

The one-stop system reports, per new dossier, each paper it reused from the catalog
(``POST /documents/{code}/reuse``) or had to ask the holder for again
(``POST /holders/{holder_id}/supplied-again``). Coverage counts dossiers per receiving office; the
expected figures below are worked out by hand from the calls made here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from test_api import ServerThread
from test_search import SOTP, archive_record

from digitize import api, coverage
from digitize.catalog import reuse
from digitize.catalog.store import Catalog, documents
from digitize.config import REPO_ROOT
from digitize.presentation import dashboard

PLAN = REPO_ROOT / "schemas" / "plans" / "tien-giang-155-2021.json"
CENTRE = "000.00.01.H99"  # provincial one-stop centre (samples/agencies.csv)
COMMUNE = "000.01.31.H99"  # commune B
OLD_DISTRICT = "000.00.31.H99"  # district A, abolished on 2025-06-30
UNKNOWN = "000.00.05.H98"  # an office not in the agencies table
H1, H2 = "079070001234", "079219000001"
PURPOSE = "Tiếp nhận hồ sơ"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A catalog with three archived results (one expired), an API server and the outcomes of six dossiers."""
    root = tmp_path_factory.mktemp("asked")
    url = f"sqlite:///{root / 'catalog.db'}"
    cat = Catalog(url)
    cat.upgrade()
    assert cat.import_agencies(REPO_ROOT / "samples" / "agencies.csv").rejected == []
    birth = archive_record(cat, "birth", agency=SOTP, holder_id=H1, issued=date(2019, 9, 2))[1]
    land = archive_record(cat, "land", agency=COMMUNE, holder_id=H1, issued=date(2021, 5, 4))[1]
    permit = archive_record(cat, "permit", agency=SOTP, holder_id=H2, issued=date(2019, 1, 2),
                            valid_until=date(2020, 12, 31))[1]
    token = api.create_token(cat, "mot-cua-tinh")
    with ServerThread(api.create_app(cat)) as base:

        def call(path: str, body: dict[str, Any]) -> httpx.Response:
            return httpx.post(base + path, json={"purpose": PURPOSE, **body}, timeout=60,
                              headers={"Authorization": f"Bearer {token}", "X-Purpose": quote(PURPOSE)})

        def reuse(code: str, dossier: str) -> httpx.Response:
            return call(f"/documents/{code}/reuse", {"new_dossier_code": dossier})

        def again(holder: str, dossier: str, paper: str, reason: str = "not_found") -> httpx.Response:
            return call(f"/holders/{holder}/supplied-again",
                        {"new_dossier_code": dossier, "document": paper, "reason": reason})

        day = "261127"
        a, b = f"{CENTRE}-{day}-0001", f"{CENTRE}-{day}-0002"
        c, d = f"{COMMUNE}-{day}-0001", f"{COMMUNE}-{day}-0002"
        e, f = f"{OLD_DISTRICT}-{day}-0001", f"{UNKNOWN}-{day}-0001"
        statuses = [
            reuse(birth, a).status_code, reuse(land, a).status_code,  # A: both papers reused → not asked again
            reuse(birth, b).status_code, again(H1, b, "Giấy chứng nhận kết hôn").status_code,  # B: one asked again
            again(H1, c, "Sổ hộ khẩu").status_code,  # C: asked again
            again(H1, c, "Sổ hộ khẩu").status_code,  # C again: a retry, recorded once (200)
            reuse(land, d).status_code,  # D: reused
            reuse(land, e).status_code,  # E: office abolished → counted for the land's agency (commune B)
            again(H2, f, "Giấy phép xây dựng", "expired").status_code,  # F: office unknown → only in "all levels"
            reuse(permit, f).status_code,  # expired: refused (409), so nothing is recorded
        ]
        yield {"catalog": cat, "url": url, "base": base, "call": call, "statuses": statuses,
               "dossiers": {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f}}
    cat.close()


def today() -> date:
    return dashboard.today()  # the API stamps outcomes now; the report's day is Vietnam's


def report(env: dict[str, Any], as_of: date | None = None) -> coverage.CoverageReport:
    cat = env["catalog"]
    return coverage.compute_coverage(cat.agencies_frame(), cat.register_frame(), cat.archived_frame(),
                                     coverage.load_plan(PLAN), as_of or today(), needs=cat.needs_frame())


def test_outcomes_are_recorded_once_through_the_api(env: dict[str, Any]) -> None:
    assert env["statuses"] == [201, 201, 201, 201, 201, 200, 201, 201, 201, 409]
    needs = env["catalog"].needs_frame()
    assert sorted(needs["outcome"].value_counts().items()) == [("reused", 5), ("supplied_again", 3)]
    again = needs[needs["outcome"] == "supplied_again"].set_index("new_dossier_code")
    assert again.loc[env["dossiers"]["C"], "document"] == "Sổ hộ khẩu"
    assert again["holding_agency"].isna().all() and str(needs["at"].dt.tz) == "UTC"


def test_supplied_again_validates_and_is_audited(env: dict[str, Any]) -> None:
    call = env["call"]
    bad_code = call(f"/holders/{H1}/supplied-again", {"new_dossier_code": "HS-1", "document": "x",
                                                      "reason": "not_found"})
    assert bad_code.status_code == 422 and bad_code.json()["error"]["reason"] == "CODE_INVALID"
    bad_reason = call(f"/holders/{H1}/supplied-again", {"new_dossier_code": env["dossiers"]["A"], "document": "x",
                                                        "reason": "lost"})
    assert bad_reason.status_code == 422
    read_only = api.create_token(env["catalog"], "cong-dvc-doc", ["read"])
    refused = httpx.post(f"{env['base']}/holders/{H1}/supplied-again", timeout=60,
                         headers={"Authorization": f"Bearer {read_only}"},
                         json={"new_dossier_code": env["dossiers"]["A"], "document": "x", "reason": "not_found",
                               "purpose": PURPOSE})
    assert refused.status_code == 403
    log = reuse.access_log
    with env["catalog"].read() as conn:
        logged = list(conn.execute(sa.select(log.c.client, log.c.status, log.c.subject)
                                   .where(log.c.action == "supplied_again")))
    assert ("mot-cua-tinh", 201, H1) in logged and ("cong-dvc-doc", 403, H1) in logged
    assert env["catalog"].needs_frame()["outcome"].eq("supplied_again").sum() == 3  # nothing added


def test_openapi_describes_the_new_endpoint(env: dict[str, Any]) -> None:
    spec = httpx.get(env["base"] + "/openapi.json", timeout=30).json()
    op = spec["paths"]["/holders/{holder_id}/supplied-again"]["post"]
    assert {"200", "201", "401", "403", "422"} <= set(op["responses"])
    body = spec["components"]["schemas"]["SuppliedAgainIn"]
    assert body["properties"]["reason"]["enum"] == ["not_found", "expired", "unusable"]


def test_figures_per_level_and_agency_match_the_hand_count(env: dict[str, Any]) -> None:
    rep = report(env)
    status = rep.status("not_asked_again")
    assert status is not None and status.computable and "every paper reported was reused" in status.basis_en
    assert rep.asked_by_level is not None and rep.asked_by_agency is not None
    levels = rep.asked_by_level.set_index("level")
    # province centre: A not asked, B asked → 1/2; district: none; commune B: C asked, D and E (fallback) not → 2/3;
    # all levels: A, D, E of A–F → 3/6. Papers reused: A 2, B 1 (centre 3), D 1, E 1 (commune 2); handed in
    # again: B (centre), C (commune), F (unattributed).
    assert list(levels.index) == ["province", "district", "commune", "all"]
    assert list(levels["not_asked"]) == [1, 0, 2, 3] and list(levels["dossiers"]) == [2, 0, 3, 6]
    assert list(levels["reused_docs"]) == [3, 0, 2, 5] and list(levels["supplied_again_docs"]) == [1, 0, 1, 3]
    assert levels.loc["province", "coverage_pct"] == 50.0 and levels.loc["all", "coverage_pct"] == 50.0
    assert levels.loc["commune", "coverage_pct"] == pytest.approx(200 / 3)
    assert pd.isna(levels.loc["district", "coverage_pct"]) and pd.isna(levels.loc["district", "met"])
    # target from 2023 on: 80 % (plan, "all"), the same for each level; 80 % of 6 is 4.8 → 5 dossiers, 2 short
    assert list(levels["target_pct"]) == [80.0] * 4
    assert [bool(levels.loc[lv, "met"]) for lv in ("province", "commune", "all")] == [False, False, False]
    assert list(levels["dossiers_to_target"]) == [1, 0, 1, 2]
    assert levels.loc["all", "gap_points"] == 30.0
    agencies = rep.asked_by_agency
    assert [(r["agency_code"], r["not_asked"], r["dossiers"]) for r in agencies.to_dict("records")] == [
        (CENTRE, 1, 2), (COMMUNE, 2, 3)]  # laggards first: 30 points behind, then 13.3


def test_target_comparison_in_2022(env: dict[str, Any]) -> None:
    """The same outcomes a year where the plan asks 30 %: every level with dossiers meets it."""
    cat = env["catalog"]
    needs = cat.needs_frame()
    needs["at"] = needs["at"].map(lambda t: t.replace(year=2022, month=3, day=1))
    rep = coverage.compute_coverage(cat.agencies_frame(), cat.register_frame(), cat.archived_frame(),
                                    coverage.load_plan(PLAN), date(2022, 12, 31), needs=needs)
    assert rep.asked_by_level is not None
    levels = rep.asked_by_level.set_index("level")
    assert list(levels["target_pct"]) == [30.0] * 4
    # in 2022 the district office was still valid: E counts for it (1/1); the commune has C and D (1/2)
    assert list(levels["not_asked"]) == [1, 1, 1, 3] and list(levels["dossiers"]) == [2, 1, 2, 6]
    assert [bool(levels.loc[lv, "met"]) for lv in ("province", "district", "commune", "all")] == [True] * 4
    assert list(levels["dossiers_to_target"]) == [0, 0, 0, 0]


def test_not_computable_without_lookups_in_the_period(env: dict[str, Any]) -> None:
    yesterday = today() - timedelta(days=1)
    rep = report(env, yesterday)
    status = rep.status("not_asked_again")
    assert status is not None and not status.computable and "not computable" in status.basis_en
    assert rep.asked_by_level is None and rep.asked_by_agency is None
    text = coverage.render_table(rep)
    assert "Không có lượt tái sử dụng hay nộp lại giấy tờ nào được ghi nhận" in text
    cat = env["catalog"]
    without = coverage.compute_coverage(cat.agencies_frame(), cat.register_frame(), cat.archived_frame(),
                                        coverage.load_plan(PLAN), today())
    unread = without.status("not_asked_again")
    assert unread is not None and not unread.computable and "without the reuse records" in unread.basis_en


def test_reports_show_the_indicator(env: dict[str, Any], tmp_path: Path) -> None:
    rep = report(env)
    text = coverage.render_table(rep)
    assert "Toàn tỉnh / All levels" in text and "3/6" in text
    assert "chậm 30.0 điểm, còn thiếu 2 hồ sơ / behind by 30.0 points, 2 dossiers short" in text
    coverage.write_csv(rep, tmp_path / "c.csv")
    rows = pd.read_csv(tmp_path / "c.csv", dtype={"agency_code": str, "level": str})
    mine = rows[rows["indicator"] == "not_asked_again"]
    assert [(r.scope, r.level, r.numerator, r.denominator) for r in mine.itertuples()] == [
        ("level", "province", 1, 2), ("level", "district", 0, 0), ("level", "commune", 2, 3), ("level", "all", 3, 6),
        ("agency", "province", 1, 2), ("agency", "commune", 2, 3)]
    coverage.write_html(rep, tmp_path / "c.html")
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert 'id="not-asked-again"' in page and "Toàn tỉnh" in page and "50.0 % (3/6)" in page
    coverage.write_xlsx(rep, tmp_path / "c.xlsx", detail=False)
    sheet = openpyxl.load_workbook(tmp_path / "c.xlsx")["Không phải nộp lại"]
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert [(v[0], v[3], v[4], v[5], v[6]) for v in values] == [(CENTRE, 1, 2, 3, 1), (COMMUNE, 2, 3, 2, 1)]


def test_dashboard_figures_and_drill_down(env: dict[str, Any]) -> None:
    rep = dashboard.compute_report(env["url"], PLAN, today())
    figures = dashboard.all_figures(rep, "tien-giang-155-2021")
    asked = {i["id"]: i for i in figures["indicators"]}["not_asked_again"]
    assert asked["computable"] is True
    assert [(lv["level"], lv["numerator"], lv["denominator"], lv["target_pct"]) for lv in asked["levels"]] == [
        ("province", 1, 2, 80.0), ("district", 0, 0, 80.0), ("commune", 2, 3, 80.0), ("all", 3, 6, 80.0)]
    assert [a["agency_code"] for a in figures["not_asked_again_agencies"]] == [CENTRE, COMMUNE]
    page = dashboard.drill_down_rows(env["url"], today(), level="commune", part="missing",
                                     indicator="not_asked_again")
    assert page["total"] == 1 and page["rows"][0]["new_dossier_code"] == env["dossiers"]["C"]
    assert "holder_id" not in page["rows"][0]
    everyone = dashboard.drill_down_rows(env["url"], today(), level="all", indicator="not_asked_again")
    assert everyone["total"] == 6
    html_page = dashboard.dashboard_html(rep, plan_name="tien-giang-155-2021", plans=dashboard.plan_files(PLAN))
    assert "indicator=not_asked_again&amp;level=commune&amp;part=missing" in html_page


def test_cli_prints_the_indicator_and_lists_the_dossiers_asked_again(env: dict[str, Any]) -> None:
    run_env = {**os.environ, "DIGITIZE_CATALOG_URL": env["url"]}
    python = str(REPO_ROOT / ".venv" / "bin" / "python")
    shown = subprocess.run([python, "-m", "digitize", "coverage", "--as-of", today().isoformat()],
                           capture_output=True, text=True, timeout=120, env=run_env, cwd=REPO_ROOT)
    assert shown.returncode == 0, shown.stderr
    assert "Toàn tỉnh / All levels" in shown.stdout and "3/6" in shown.stdout
    listed = subprocess.run([python, "-m", "digitize", "coverage", "--as-of", today().isoformat(), "--drill-down",
                             "missing", "--indicator", "not_asked_again", "--level", "province"],
                            capture_output=True, text=True, timeout=120, env=run_env, cwd=REPO_ROOT)
    assert listed.returncode == 0, listed.stderr
    assert env["dossiers"]["B"] in listed.stdout and env["dossiers"]["A"] not in listed.stdout


def test_migrations_create_the_api_tables_as_declared(tmp_path: Path) -> None:
    """The reuse API's tables in the catalog (clients, access log, reuse and supplied-again records) match their
    migrations."""
    assert set(reuse.metadata.tables) == {"api_clients", "access_log", "reuse_events", "supplied_again_events"}
    url = f"sqlite:///{tmp_path / 'm.db'}"
    Catalog(url).upgrade()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        def api_only(obj: Any, name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
            table = obj if kind == "table" else getattr(obj, "table", None)
            return table is None or table.name in reuse.metadata.tables

        context = MigrationContext.configure(conn, opts={"include_object": api_only})
        declared = sa.MetaData()
        documents.to_metadata(declared)  # referenced by reuse_events; left out of the comparison above
        for table in reuse.metadata.tables.values():
            table.to_metadata(declared)
        diff = compare_metadata(context, declared)
    engine.dispose()
    assert diff == [], diff
