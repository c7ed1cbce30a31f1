"""Coverage against the plan: hand-computed figures on small frames, the plan file, and every renderer."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from digitize import coverage
from digitize.config import REPO_ROOT
from digitize.coverage import (
    CoverageOptions,
    CoverageReport,
    Plan,
    compute_coverage,
    drill_down,
    load_plan,
    render_table,
    write_csv,
    write_html,
    write_xlsx,
)
from digitize.errors import ConfigurationError

PLAN_PATH = REPO_ROOT / "schemas" / "plans" / "tien-giang-155-2021.json"
AS_OF = date(2024, 6, 30)  # 2024 targets: stock 90/80/75, flow 80, units 100/100/90

P1, PC, D1, D2 = "000.00.12.H99", "000.00.01.H99", "000.00.31.H99", "000.00.32.H99"
C1, C2, C3, C4 = "000.01.31.H99", "000.02.31.H99", "000.03.31.H99", "000.04.31.H99"
Frames = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
AUDIT_SHEETS = ["Không được tính", "Đối chiếu lưu trữ", "Cơ quan kế thừa", "Nguồn gốc số liệu"]


def agency(
    code: str,
    level: str,
    *,
    one_stop: bool = False,
    remote: bool = False,
    valid_from: date = date(2020, 1, 1),
    valid_to: date | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Cơ quan {code} (mẫu)",
        "level": level,
        "parent_code": None,
        "remote": remote,
        "one_stop": one_stop,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "successor_code": None,
    }


def reg(rid: str, agency_code: str, issued: date, until: date | None = None) -> dict[str, Any]:
    return {
        "register_id": rid,
        "agency_code": agency_code,
        "procedure_code": "1.000110",
        "dossier_code": f"{agency_code}-{issued:%y%m%d}-{int(rid[1:]):04d}",
        "title": f"Kết quả {rid}",
        "issued_date": issued,
        "valid_until": until,
        "holder_id": f"H-{rid}",
    }


def doc(
    code: str,
    agency_code: str,
    *,
    register_id: str | None = None,
    dossier_code: str | None = None,
    kind: str = "KQ",
    at: datetime = datetime(2024, 5, 1, 9),
    scanned_at: str | None = None,
    version: int = 1,
) -> dict[str, Any]:
    return {
        "code": code,
        "agency_code": agency_code,
        "kind": kind,
        "register_id": register_id,
        "dossier_code": dossier_code,
        "issued_date": date(2023, 1, 1),
        "valid_until": None,
        "archived_at": at,
        "digitized_at": at,
        "scanned_at": scanned_at,
        "version": version,
    }


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(PLAN_PATH)


@pytest.fixture()
def frames() -> Frames:
    agencies = pd.DataFrame(
        [
            agency(P1, "province"),
            agency(PC, "province", one_stop=True),
            agency(D1, "district", one_stop=True),
            agency(D2, "district", one_stop=True, valid_to=date(2023, 12, 31)),  # abolished
            agency(C1, "commune", one_stop=True),
            agency(C2, "commune", one_stop=True, remote=True),
            agency(C3, "commune", one_stop=True, valid_from=date(2024, 7, 1)),  # not yet valid
            agency(C4, "commune", one_stop=True),
        ]
    )
    register = pd.DataFrame(
        [
            reg("R1", P1, date(2023, 1, 1)),
            reg("R2", P1, date(2022, 5, 5), date(2030, 1, 1)),
            reg("R3", P1, date(2021, 1, 1), date(2024, 6, 29)),  # expired the day before
            reg("R4", P1, date(2024, 2, 1), date(2024, 6, 30)),  # valid through as_of (inclusive)
            reg("R5", P1, date(2024, 7, 1)),  # issued after as_of
            reg("R6", D1, date(2022, 1, 1)),
            reg("R7", D1, date(2024, 3, 1)),
            reg("R8", D2, date(2022, 1, 1)),  # agency abolished
            reg("R9", C1, date(2020, 1, 1)),
            reg("R10", C1, date(2021, 1, 1)),
            reg("R11", C1, date(2022, 1, 1)),
            reg("R12", C1, date(2024, 4, 1)),
            reg("R13", C3, date(2023, 1, 1)),  # agency not yet valid
            reg("R14", C2, date(2023, 1, 1)),
        ]
    )
    r6_dossier = register.loc[register["register_id"] == "R6", "dossier_code"].item()
    archived = pd.DataFrame(
        [
            doc("A1", P1, register_id="R1", scanned_at=PC),
            doc("A2", P1, register_id="R1", version=2, at=datetime(2024, 6, 1, 8), scanned_at=PC),  # same row again
            doc("A3", D1, dossier_code=r6_dossier, scanned_at=D1),  # linked by dossier code
            doc("A4", D1, register_id="R7", at=datetime(2024, 7, 1, 0, 0), scanned_at=D1),  # after as_of
            doc("A5", C1, register_id="R9", at=datetime(2024, 6, 30, 23, 59), scanned_at=C2),  # remote scanner
            doc("A6", C1, register_id="R10", kind="TP", scanned_at=C1),  # a dossier part, not the result
            doc("A7", P1, register_id="R3", scanned_at=PC),  # expired row
            doc("A8", D2, register_id="R8", scanned_at=None),  # abolished agency
            doc("A9", C1, register_id="R12", at=datetime(2024, 5, 5), scanned_at=C1),
        ]
    )
    return agencies, register, archived


def level_row(frame: pd.DataFrame, level: str) -> dict[str, Any]:
    rows = frame[frame["level"] == level].to_dict("records")
    assert len(rows) == 1
    return rows[0]


@pytest.fixture()
def report(frames: Frames, plan: Plan) -> CoverageReport:
    return compute_coverage(*frames, plan, AS_OF)


# ------------------------------------------------------------------------------------------------ plan


def test_plan_file_holds_the_targets_of_155(plan: Plan) -> None:
    assert (plan.id, plan.province, plan.issued) == ("155/KH-UBND", "Tiền Giang", date(2021, 6, 17))
    stock = plan.indicator("stock")
    assert stock is not None
    expected = {2021: (30, 20, 15), 2022: (50, 40, 35), 2023: (70, 60, 55), 2024: (90, 80, 75), 2025: (100, 100, 95)}
    for year, targets in expected.items():
        assert tuple(stock.target(lv, year) for lv in ("province", "district", "commune")) == targets
    units = plan.indicator("units")
    assert units is not None and units.excludes_remote
    assert (units.target("province", 2021), units.target("district", 2021)) == (100, None)
    assert (units.target("district", 2022), units.target("commune", 2022)) == (50, 30)
    assert (units.target("district", 2024), units.target("commune", 2025)) == (100, 100)
    asked = plan.indicator("not_asked_again")
    assert asked is not None and (asked.target("all", 2022), asked.target("all", 2024)) == (30, 80)
    flow = plan.indicator("flow")
    assert flow is not None and [flow.target("commune", y) for y in (2022, 2023, 2025)] == [None, 60, 100]


def test_targets_clamp_to_last_year_and_none_before_first(plan: Plan) -> None:
    stock = plan.indicator("stock")
    assert stock is not None
    assert stock.target("commune", 2031) == 95
    assert stock.target("province", 2020) is None
    assert stock.target("ward", 2024) is None


def write_plan(tmp_path: Path, mutate: Any) -> Path:
    data = json.loads(PLAN_PATH.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["indicators"][0]["targets"]["province"].__setitem__("2024", 120), r"indicators\[0\].targets"),
        (lambda d: d.pop("issued"), "'issued' is a required property"),
        (lambda d: d.__setitem__("issued", "17/06/2021"), r"\$\.issued"),
        (lambda d: d["indicators"][0]["targets"].__setitem__("ward", {"2024": 50}), "'ward' is not a declared level"),
        (lambda d: d["indicators"][0].__setitem__("id", "stocks"), r"\$\.indicators\[0\]\.id"),
        (lambda d: d["levels"].append(dict(d["levels"][0])), "level 'province' declared twice"),
    ],
)
def test_broken_plan_is_rejected_with_a_clear_message(tmp_path: Path, mutate: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_plan(write_plan(tmp_path, mutate))
    assert "plan.json" in str(err.value)
    assert re.search(expected, str(err.value)), str(err.value)
    assert err.value.reason == "CONFIGURATION_ERROR" and "plan.schema.json" in err.value.hint


def test_plan_file_not_json_or_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid UTF-8 JSON"):
        load_plan(bad)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_plan(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------ indicator 1


def test_stock_by_level_hand_computed(report: CoverageReport) -> None:
    # province: R1, R2, R4 valid (R3 expired, R5 not issued yet); R1 digitized twice → counted once
    p = level_row(report.by_level, "province")
    assert (p["digitized"], p["valid"], p["target_pct"]) == (1, 3, 90.0)
    assert p["coverage_pct"] == pytest.approx(100 / 3)
    assert p["met"] is False or not p["met"]
    assert p["gap_points"] == pytest.approx(90 - 100 / 3)
    assert p["docs_to_target"] == 2  # ceil(0.9 * 3) - 1
    # district: R6 (by dossier code) of R6, R7 (R7 archived after as_of; R8's agency abolished)
    d = level_row(report.by_level, "district")
    assert (d["digitized"], d["valid"], d["docs_to_target"]) == (1, 2, 1)
    assert d["coverage_pct"] == pytest.approx(50.0)
    # commune: C1 R9..R12 + C2 R14 (C3 not yet valid); R9 (23:59 on as_of) and R12 digitized, R10 only a TP
    c = level_row(report.by_level, "commune")
    assert (c["digitized"], c["valid"], c["docs_to_target"]) == (2, 5, 2)  # ceil(0.75 * 5) = 4
    assert c["coverage_pct"] == pytest.approx(40.0)
    assert list(report.by_level["level"]) == ["province", "district", "commune"]
    assert report.plan_id == "155/KH-UBND" and report.as_of == AS_OF


def test_stock_by_agency_laggards_first(report: CoverageReport) -> None:
    a = report.by_agency.set_index("agency_code")
    assert set(a.index) == {P1, PC, D1, C1, C2, C4}  # D2 abolished, C3 not yet valid
    assert (a.loc[P1, "digitized"], a.loc[P1, "valid"]) == (1, 3)
    assert (a.loc[C1, "digitized"], a.loc[C1, "valid"]) == (2, 4)
    assert (a.loc[C2, "digitized"], a.loc[C2, "valid"]) == (0, 1)
    assert pd.isna(a.loc[PC, "coverage_pct"]) and pd.isna(a.loc[PC, "met"])  # nothing registered: no figure
    order = list(report.by_agency["agency_code"])
    # gaps: C2 75, P1 56.7, C1 25, D1 30 → C2, P1, D1, C1, then agencies without a figure
    assert order[:4] == [C2, P1, D1, C1]
    assert set(order[4:]) == {PC, C4}
    assert list(report.by_agency.columns[:9]) == [
        "agency_code",
        "name",
        "level",
        "digitized",
        "valid",
        "coverage_pct",
        "target_pct",
        "met",
        "gap_points",
    ]


def test_target_rounding_is_exact_and_met_when_reached(plan: Plan, tmp_path: Path) -> None:
    agencies = pd.DataFrame([agency(P1, "province")])
    register = pd.DataFrame([reg(f"R{i}", P1, date(2020, 1, 1)) for i in range(1, 1001)])
    archived = pd.DataFrame([doc(f"A{i}", P1, register_id=f"R{i}", at=datetime(2021, 3, 1)) for i in range(1, 162)])
    report = compute_coverage(agencies, register.head(10), archived.head(3), plan, date(2021, 12, 31))
    p = level_row(report.by_level, "province")
    assert (p["target_pct"], p["coverage_pct"], p["docs_to_target"], p["gap_points"]) == (30.0, 30.0, 0, 0.0)
    assert bool(p["met"]) is True
    # 16.1 % of 1000 is 161, but 16.1 * 1000 / 100 = 161.00000000000003 in floating point
    odd = load_plan(write_plan(tmp_path, lambda d: d["indicators"][0]["targets"]["province"].__setitem__("2021", 16.1)))
    p = level_row(compute_coverage(agencies, register, archived, odd, date(2021, 12, 31)).by_level, "province")
    assert (p["digitized"], p["valid"], p["docs_to_target"], bool(p["met"])) == (161, 1000, 0, True)


def test_before_the_plan_there_is_no_target(frames: Frames, plan: Plan) -> None:
    report = compute_coverage(*frames, plan, date(2020, 12, 31))
    assert report.by_level["target_pct"].isna().all()
    assert report.by_level["met"].isna().all() and report.by_level["docs_to_target"].isna().all()
    assert "chưa có chỉ tiêu / no target yet" in render_table(report)


def test_after_the_plan_the_last_targets_apply(frames: Frames, plan: Plan) -> None:
    report = compute_coverage(*frames, plan, date(2027, 1, 1))
    assert list(report.by_level["target_pct"]) == [100.0, 100.0, 95.0]


def test_timezone_aware_archive_times_are_read_in_vietnam(frames: Frames, plan: Plan) -> None:
    agencies, register, archived = frames
    archived = archived.copy()
    # 16:30 UTC is 23:30 in Hà Nội (counted); 17:30 UTC is 00:30 the next day (not counted)
    archived["digitized_at"] = pd.to_datetime(archived["digitized_at"]).dt.tz_localize("UTC")
    archived.loc[archived["code"] == "A5", "digitized_at"] = pd.Timestamp(datetime(2024, 6, 30, 17, 30, tzinfo=UTC))
    archived.loc[archived["code"] == "A9", "digitized_at"] = pd.Timestamp(datetime(2024, 6, 30, 16, 30, tzinfo=UTC))
    c = level_row(compute_coverage(agencies, register, archived, plan, AS_OF).by_level, "commune")
    assert c["digitized"] == 1  # R12 only


def test_csv_style_frames_with_text_dates_and_flags(plan: Plan) -> None:
    agencies = pd.read_csv(REPO_ROOT / "samples" / "agencies.csv", dtype=str, keep_default_na=False).replace("", None)
    register = pd.read_csv(REPO_ROOT / "samples" / "register.csv", dtype=str, keep_default_na=False).replace("", None)
    demo = {
        "REG-0001": "000.00.12.H99",
        "REG-0002": "000.00.12.H99",
        "REG-0010": "000.00.31.H99",
        "REG-0017": "000.01.31.H99",
    }
    archived = pd.DataFrame(
        [
            doc(f"D{i}", a, register_id=r, at=datetime(2024, 12, 1), scanned_at=a)
            for i, (r, a) in enumerate(demo.items())
        ]
    )
    report = compute_coverage(agencies, register, archived, plan, date(2024, 12, 31))
    detail = report.detail.set_index("register_id")
    for rid, code in demo.items():
        assert detail.loc[rid, "agency_code"] == code and bool(detail.loc[rid, "digitized"])
    assert list(report.by_level["digitized"]) == [2, 1, 1]
    assert list(report.by_level["valid"]) == [6, 5, 8]
    assert report.units.set_index("code").loc["000.00.31.H99", "running"]
    assert "000.02.31.H99" not in set(report.units["code"])  # remote commune


def test_fresh_catalog_without_documents_or_register(frames: Frames, plan: Plan) -> None:
    agencies, register, _ = frames
    nothing = pd.DataFrame(columns=list(coverage.ARCHIVED_COLUMNS))
    report = compute_coverage(agencies, register, nothing, plan, AS_OF)
    assert list(report.by_level["digitized"]) == [0, 0, 0] and list(report.by_level["valid"]) == [3, 2, 5]
    assert list(report.units_by_level["running"]) == [0, 0, 0]
    empty = compute_coverage(agencies, register.iloc[0:0], nothing, plan, AS_OF)
    stock = empty.status("stock")
    assert stock is not None and not stock.computable and empty.flow_by_level is None
    assert "import the register first" in render_table(empty)


def test_missing_column_is_a_configuration_error(frames: Frames, plan: Plan) -> None:
    agencies, register, archived = frames
    with pytest.raises(ConfigurationError, match="register frame lacks columns"):
        compute_coverage(agencies, register.drop(columns=["valid_until"]), archived, plan, AS_OF)


# ------------------------------------------------------------------------------------------- drill-down


def test_drill_down_lists_the_rows_behind_a_figure(frames: Frames) -> None:
    def ids(**kw: Any) -> list[str]:
        return sorted(drill_down(*frames, AS_OF, **kw)["register_id"])

    assert ids(level="province") == ["R1", "R2", "R4"]
    assert ids(level="province", part="numerator") == ["R1"]
    assert ids(level="province", part="missing") == ["R2", "R4"]
    assert ids(agency=C1, part="numerator") == ["R12", "R9"]
    assert ids(agency=D1, part="numerator", indicator="flow") == []
    assert ids(level="commune", indicator="flow") == ["R12"]
    rows = drill_down(*frames, AS_OF, agency=P1, part="numerator")
    assert rows.loc[0, "document_code"] == "A2"  # the latest version
    with pytest.raises(ConfigurationError, match="part"):
        drill_down(*frames, AS_OF, part="everything")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- indicators 2–4


def test_units_running_remote_excluded(report: CoverageReport, frames: Frames, plan: Plan) -> None:
    u = report.units.set_index("code")
    assert set(u.index) == {PC, D1, C1, C4}  # C2 remote, C3 not yet valid, D2 abolished, P1 not one-stop
    assert (u.loc[PC, "documents_scanned"], u.loc[D1, "documents_scanned"], u.loc[C1, "documents_scanned"]) == (3, 1, 2)
    c = level_row(report.units_by_level, "commune")
    assert (c["running"], c["units"], c["target_pct"], c["units_to_target"]) == (1, 2, 90.0, 1)
    assert not c["met"]
    d = level_row(report.units_by_level, "district")
    assert (d["running"], d["units"]) == (1, 1) and bool(d["met"])
    strict = compute_coverage(*frames, plan, AS_OF, options=CoverageOptions(min_scanned_documents=2))
    assert list(strict.units_by_level["running"]) == [1, 0, 1]


def test_units_window(frames: Frames, plan: Plan) -> None:
    report = compute_coverage(*frames, plan, date(2025, 7, 1))  # the last scan (A4) was a year and a day ago
    assert report.units_by_level["running"].sum() == 0
    assert compute_coverage(*frames, plan, date(2025, 6, 30)).units_by_level["running"].sum() == 1  # D1 (A4)
    ever = compute_coverage(*frames, plan, date(2025, 7, 1), options=CoverageOptions(units_window_days=None))
    assert list(ever.units_by_level["running"]) == [1, 1, 1]


def test_flow_and_not_computable_indicators(report: CoverageReport, frames: Frames, plan: Plan) -> None:
    assert report.flow_by_level is not None
    f = report.flow_by_level.set_index("level")
    # issued 1 Jan–30 Jun 2024: R4 (province), R7 (district, archived after as_of), R12 (commune, archived)
    assert list(f["resolved"]) == [1, 1, 1] and list(f["digitized"]) == [0, 0, 1]
    assert list(f["target_pct"]) == [80.0, 80.0, 80.0]
    asked = report.status("not_asked_again")
    assert asked is not None and not asked.computable and "not computable" in asked.basis_en.lower()
    # no result issued in 2025 yet on 1 January: the flow is not computable, not 0 %
    later = compute_coverage(*frames, plan, date(2025, 1, 1))
    flow = later.status("flow")
    assert later.flow_by_level is None and flow is not None and not flow.computable
    text = render_table(later)
    assert "not computable from the imported data" in text


# ---------------------------------------------------------------------------------------------- renderers


def test_render_table(report: CoverageReport) -> None:
    text = render_table(report)
    for label in ("Cấp tỉnh / Province", "Cấp huyện / District", "Cấp xã / Commune", "155/KH-UBND", "2024-06-30"):
        assert label in text
    assert re.search(r"Cấp tỉnh / Province\s+1/3\s+33\.3\s+90\.0\s+chậm 56\.7 điểm, còn thiếu 2 kết quả", text)
    assert "behind by 56.7 points, 2 results short" in text
    assert "Không tính được" in text and "Not computable" in text
    assert re.search(r"Cấp huyện / District\s+1/1\s+100\.0\s+100\.0\s+đạt / met", text)


def test_csv_round_trip(report: CoverageReport, tmp_path: Path) -> None:
    path = tmp_path / "coverage.csv"
    write_csv(report, path)
    back = pd.read_csv(path, dtype={"agency_code": str, "level": str})
    assert list(back.columns) == list(coverage.CSV_COLUMNS)
    levels = back[(back["indicator"] == "stock") & (back["scope"] == "level")].reset_index(drop=True)
    assert list(levels["level"]) == list(report.by_level["level"])
    assert list(levels["numerator"]) == list(report.by_level["digitized"])
    assert list(levels["denominator"]) == list(report.by_level["valid"])
    assert list(levels["coverage_pct"]) == pytest.approx(list(report.by_level["coverage_pct"]))
    assert list(levels["to_target"]) == list(report.by_level["docs_to_target"])
    agencies = back[(back["indicator"] == "stock") & (back["scope"] == "agency")]
    assert list(agencies["agency_code"]) == list(report.by_agency["agency_code"])
    asked = back[back["indicator"] == "not_asked_again"]
    assert len(asked) == 1 and not asked["computable"].item() and asked["coverage_pct"].isna().all()
    assert path.read_text(encoding="utf-8").count("Cơ quan 000.00.12.H99 (mẫu)") == 1


def test_xlsx_has_the_sheets(report: CoverageReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "coverage.xlsx"
    # 5 data rows a sheet → the 10 detail rows need 2 sheets
    monkeypatch.setattr("digitize.coverage.render_xlsx.EXCEL_MAX_ROWS", 6)
    write_xlsx(report, path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Tổng hợp", "Theo cơ quan", "Bộ phận Một cửa", "Chi tiết", "Chi tiết (2)", *AUDIT_SHEETS]
    agencies = wb["Theo cơ quan"]
    assert [c.value for c in agencies[1]][:5] == ["Mã cơ quan", "Tên cơ quan", "Cấp", "Đã số hóa", "Còn hiệu lực"]
    assert agencies["A2"].value == C2 and agencies["C2"].value == "Cấp xã"
    assert agencies.freeze_panes == "C2"
    detail_rows = [r for ws in (wb["Chi tiết"], wb["Chi tiết (2)"]) for r in ws.iter_rows(min_row=2, values_only=True)]
    assert sorted(r[0] for r in detail_rows) == sorted(report.detail["register_id"])
    r1 = next(r for r in detail_rows if r[0] == "R1")
    assert r1[10] == "có" and r1[11] == "A2" and r1[7].date() == date(2023, 1, 1)
    summary = [r for r in wb["Tổng hợp"].iter_rows(values_only=True) if r and r[0] == "Cấp tỉnh"]
    assert summary[0][1:3] == (1, 3)
    write_xlsx(report, path, detail=False)
    assert openpyxl.load_workbook(path).sheetnames == ["Tổng hợp", "Theo cơ quan", "Bộ phận Một cửa", *AUDIT_SHEETS[1:]]


def test_csv_has_a_byte_order_mark_for_excel(report: CoverageReport, tmp_path: Path) -> None:
    """Excel on Windows reads a CSV without a BOM in the local code page: Vietnamese would be garbled."""
    path = tmp_path / "coverage.csv"
    write_csv(report, path)
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode()) and raw.count("\ufeff".encode()) == 1
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert list(back.columns) == list(coverage.CSV_COLUMNS) and "(mẫu)" in raw.decode("utf-8-sig")


def test_every_xlsx_sheet_prints_one_page_wide_with_its_header(report: CoverageReport, tmp_path: Path) -> None:
    path = tmp_path / "coverage.xlsx"
    write_xlsx(report, path)
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        setup = ws.page_setup
        assert (setup.orientation, setup.fitToWidth, setup.fitToHeight) == ("landscape", 1, 0), ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.print_area and ws.print_area.endswith(f"${ws.max_row}"), (ws.title, ws.print_area)
        if ws.title != "Tổng hợp":  # the summary has one table per indicator, no single header row
            assert ws.print_title_rows == "$1:$1", ws.title


def test_xlsx_printed_by_libreoffice_keeps_every_column_with_its_rows(report: CoverageReport, tmp_path: Path) -> None:
    """What an auditor gets from Calc's print: one page per small sheet, every page with its header row."""
    import shutil
    import subprocess

    soffice = shutil.which("soffice")
    assert soffice, "LibreOffice Calc is installed by scripts/setup.sh (libreoffice-calc-nogui)"
    path = tmp_path / "coverage.xlsx"
    write_xlsx(report, path)
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
                    "--convert-to", "pdf", "--outdir", str(tmp_path), str(path)],
                   check=True, capture_output=True, timeout=180)
    pdf = tmp_path / "coverage.pdf"
    pages = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                           text=True).stdout.split("\f")
    pages = [p for p in pages if p.strip()]
    sheets = openpyxl.load_workbook(path).worksheets
    assert len(pages) == len(sheets), [p[:80] for p in pages]  # the demo-sized report: one page per sheet
    for page, ws in zip(pages, sheets, strict=True):
        first, last = ws.cell(1, 1).value, ws.cell(1, ws.max_column).value
        if ws.title != "Tổng hợp":
            assert str(first) in page and str(last) in page, (ws.title, first, last)


def test_html_is_self_contained_and_has_the_figures(report: CoverageReport, tmp_path: Path) -> None:
    path = tmp_path / "coverage.html"
    write_html(report, path)
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert page.count("<svg") == 3  # stock, flow, units; indicator 4 has no chart
    assert "1/3" in page and "33.3" in page and "Cấp tỉnh" in page and "Province" in page
    assert "Cơ quan 000.02.31.H99 (mẫu)" in page
    assert page.index(C2) < page.index(P1) < page.index(C1)  # laggards first
    assert 'id="lang"' in page and "<script>" in page and 'class="sortable"' in page
    assert "Không tính được: báo cáo này không đọc các lượt tái sử dụng" in page  # indicator 4 without needs


def test_cli_formats_go_where_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """--format html or csv without --out goes to standard output; xlsx without --out is refused, never silent."""
    from digitize.catalog import Catalog
    from digitize.errors import UsageError
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.import_agencies(REPO_ROOT / "samples" / "agencies.csv")
    catalog.import_register(REPO_ROOT / "samples" / "register.csv")
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", url)
    as_of = ["--as-of", "2026-06-30"]

    assert main(["coverage", *as_of, "--format", "html"]) == 0
    html_out = capfdbinary.readouterr().out
    assert html_out.lower().startswith(b"<!doctype html>") and b"</html>" in html_out
    assert main(["coverage", *as_of, "--format", "csv"]) == 0
    csv_out = capfdbinary.readouterr().out
    assert csv_out.startswith("\ufeffplan_id,".encode())
    assert main(["coverage", *as_of, "--format", "xlsx"]) == UsageError.exit_code
    refused = capfdbinary.readouterr()
    assert b"--out" in refused.out + refused.err and b"PK" not in refused.out
    assert main(["coverage", *as_of, "--out", str(tmp_path / "report.xlsx")]) == 0
    assert openpyxl.load_workbook(tmp_path / "report.xlsx").sheetnames[0] == "Tổng hợp"
    assert main(["coverage", *as_of]) == 0
    assert "Cấp tỉnh".encode() in capfdbinary.readouterr().out
