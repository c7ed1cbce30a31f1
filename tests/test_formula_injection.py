"""Formula injection: officers' text that starts like a formula stays text in every spreadsheet we write.

A title or an agency name starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel when a CSV is opened, and openpyxl writes a str starting with ``=`` as a live formula. The
XLSX report must hold the text itself, the CSVs a neutralised copy that reads back to it (OWASP's rule).
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from robustness_support import record

from digitize.config import REPO_ROOT
from digitize.coverage import compute_coverage, drill_down, load_plan, write_csv, write_xlsx
from digitize.spreadsheet import csv_cell, csv_frame, csv_original

GROUP = "security"
PLAN = REPO_ROOT / "schemas" / "plans" / "tien-giang-155-2021.json"
AS_OF = date(2024, 6, 30)
STARTS = ("=", "+", "-", "@", "\t", "\r")
NAMES = {c: f'{c}HYPERLINK("http://evil.example/{i}","Sở Tư pháp {i}")' for i, c in enumerate(STARTS)}
TITLES = {c: f"{c}cmd|' /C calc'!A0 kết quả {i}" for i, c in enumerate(STARTS)}
CODES = {c: f"000.00.{10 + i}.H99" for i, c in enumerate(STARTS)}


def _frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One province agency per dangerous character, named with it, and one register row titled with it."""
    agencies = pd.DataFrame([
        {"code": CODES[c], "name": NAMES[c], "level": "province", "parent_code": None, "remote": False,
         "one_stop": True, "valid_from": date(2020, 1, 1), "valid_to": None, "successor_code": None}
        for c in STARTS])
    register = pd.DataFrame([
        {"register_id": f"R{i}", "agency_code": CODES[c], "procedure_code": "1.000110",
         "dossier_code": f"{CODES[c]}-230101-{i + 1:04d}", "title": TITLES[c], "issued_date": date(2023, 1, 1),
         "valid_until": None, "holder_id": None}
        for i, c in enumerate(STARTS)])
    archived = pd.DataFrame([
        {"code": "A0", "agency_code": CODES["="], "kind": "KQ", "register_id": "R0", "dossier_code": None,
         "issued_date": date(2023, 1, 1), "valid_until": None, "archived_at": datetime(2024, 5, 1, 9),
         "digitized_at": datetime(2024, 5, 1, 9),
         "scanned_at": CODES["="], "version": 1}])
    return agencies, register, archived


@pytest.fixture(scope="module")
def report() -> Any:
    return compute_coverage(*_frames(), load_plan(PLAN), AS_OF)


def test_xlsx_holds_the_text_itself_and_no_formula(report: Any, tmp_path: Path) -> None:
    path = tmp_path / "coverage.xlsx"
    write_xlsx(report, path)
    book = openpyxl.load_workbook(path)
    cells = [cell for ws in book.worksheets for row in ws.iter_rows() for cell in row]
    formulas = [f"{cell.parent.title}!{cell.coordinate}" for cell in cells if cell.data_type == "f"]
    assert formulas == []
    texts = {cell.value: cell.data_type for cell in cells if isinstance(cell.value, str)}
    for c in STARTS:
        assert texts.get(NAMES[c]) == "s", repr(NAMES[c])  # agency sheet, units sheet, detail
        assert texts.get(TITLES[c]) == "s", repr(TITLES[c])  # detail sheet
    record(GROUP, "agency name or title starting with = + - @ tab CR, in the XLSX report", "TEXT CELL", None,
           "string cell equal to the original; no formula anywhere in the workbook")


def test_csv_report_neutralises_text_and_reads_back(report: Any, tmp_path: Path) -> None:
    path = tmp_path / "coverage.csv"
    write_csv(report, path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = [r["agency_name"] for r in rows if r["agency_name"]]
    assert names and all(n.startswith("'") for n in names), names
    assert {csv_original(n) for n in names} == set(NAMES.values())
    back = pd.read_csv(path, encoding="utf-8-sig", dtype={"agency_code": str, "level": str})
    assert set(back["agency_name"].dropna().map(csv_original)) == set(NAMES.values())
    assert pd.api.types.is_numeric_dtype(back["numerator"]) and pd.api.types.is_numeric_dtype(back["gap_points"])
    record(GROUP, "agency name starting with = + - @ tab CR, in the CSV report", "NEUTRALISED", None,
           "leading apostrophe (OWASP); reads back to the original without it")


def test_cli_drill_down_csv_neutralises_text_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Through the catalog and the CLI (imports strip surrounding blanks, so tab and CR cannot get this far)."""
    from digitize.catalog import Catalog
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    starts = [c for c in STARTS if c.strip()]
    agencies, register, _ = _frames()
    agencies[agencies["code"].isin([CODES[c] for c in starts])].to_csv(tmp_path / "agencies.csv", index=False)
    register[register["agency_code"].isin([CODES[c] for c in starts])].to_csv(tmp_path / "register.csv", index=False)
    assert catalog.import_agencies(tmp_path / "agencies.csv").added == len(starts)
    assert catalog.import_register(tmp_path / "register.csv").added == len(starts)
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", url)
    out = tmp_path / "drill.csv"
    assert main(["coverage", "--as-of", AS_OF.isoformat(), "--drill-down", "denominator", "--out", str(out)]) == 0
    capsys.readouterr()
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["title"] for r in rows) == sorted(csv_cell(TITLES[c]) for c in starts)
    assert all(r["title"].startswith("'") and r["agency_name"].startswith("'") for r in rows)
    back = pd.read_csv(out, dtype=str)
    assert set(back["title"].map(csv_original)) == {TITLES[c] for c in starts}
    assert set(back["agency_name"].map(csv_original)) == {NAMES[c] for c in starts}
    record(GROUP, "title or agency name starting with = + - @, in the CLI drill-down CSV", "NEUTRALISED", None,
           "leading apostrophe (OWASP); reads back to the original without it")


def test_the_rule_touches_text_only_and_is_undone_exactly() -> None:
    frame = pd.DataFrame({"gap": [-2.5, 1.0], "count": [-3, 4], "mixed": [-1, "-1"],
                          "text": ["'already quoted", "Sở Tư pháp"]})
    out = csv_frame(frame)
    assert out["gap"].tolist() == [-2.5, 1.0] and out["count"].tolist() == [-3, 4]  # numbers stay numbers
    assert out["mixed"].tolist() == [-1, "'-1"]
    assert out["text"].tolist() == ["''already quoted", "Sở Tư pháp"]
    for value in [*NAMES.values(), "'already quoted", "''", "'", "plain", "", -1, None]:
        assert csv_original(csv_cell(value)) == value
    assert frame["text"].tolist() == ["'already quoted", "Sở Tư pháp"]  # the caller's frame is left alone


WRITES_A_SPREADSHEET = re.compile(r"\.to_csv\(|\bcsv\.(?:writer|DictWriter)\(|\bWorkbook\(|\.to_excel\(")


def test_every_spreadsheet_writer_goes_through_the_helper() -> None:
    """A future CSV or XLSX output must use digitize.spreadsheet too, or this names it."""
    writers = [path for folder in ("digitize", "plugins", "dags") for path in sorted((REPO_ROOT / folder).rglob("*.py"))
               if WRITES_A_SPREADSHEET.search(path.read_text(encoding="utf-8"))]
    assert writers, "the pattern no longer finds the report writers"
    unguarded = [str(p.relative_to(REPO_ROOT)) for p in writers
                 if "digitize.spreadsheet" not in p.read_text(encoding="utf-8")]
    assert unguarded == []


def test_drill_down_frames_keep_the_original_text() -> None:
    """The neutralising happens when a file is written: the dashboard's JSON and the terminal get the text."""
    rows = drill_down(*_frames(), AS_OF)
    assert set(rows["title"]) == set(TITLES.values())
