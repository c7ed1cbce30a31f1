"""The Excel workbook: a summary sheet, one sheet per agency table, and the register rows behind the stock.

Vietnamese only (the HTML page is the bilingual one). openpyxl is imported when a workbook is written, not
when coverage is imported, and the workbook is write-only so the detail sheets stream. Every text goes in as
a string cell (:mod:`digitize.spreadsheet`): a title starting with "=" is shown, never run.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from digitize.clock import end_of_business_day
from digitize.coverage.accounting import REASONS
from digitize.coverage.audit import (
    ACCOUNTING_HEADERS,
    COMPONENT_HEADERS,
    SUCCESSION_HEADERS,
    UNCOUNTED_HEADERS,
    accounting_table,
    component_table,
    provenance_rows,
    reason_counts,
    succession_table,
    uncounted_table,
)
from digitize.coverage.figures import assessment, indicator_figures
from digitize.coverage.indicators import CoverageReport
from digitize.personal import mask_holder_id
from digitize.spreadsheet import xlsx_text, xlsx_value

EXCEL_MAX_ROWS = 1_048_576
"""Rows in one Excel sheet, header included: the detail continues on another sheet beyond it."""

_XLSX_HEADER_FILL = "1F4E79"
_XLSX_MET_FILL = "C6EFCE"
_XLSX_BEHIND_FILL = "FFC7CE"
_LEVEL_HEADERS = (
    "Cấp",
    "Đạt được",
    "Tổng số",
    "Tỷ lệ (%)",
    "Chỉ tiêu (%)",
    "Đánh giá",
    "Còn thiếu (điểm)",
    "Còn thiếu (số lượng)",
)
_AGENCY_HEADERS = (
    "Mã cơ quan",
    "Tên cơ quan",
    "Cấp",
    "Đã số hóa",
    "Còn hiệu lực",
    "Tỷ lệ (%)",
    "Chỉ tiêu (%)",
    "Đánh giá",
    "Còn thiếu (điểm)",
    "Còn thiếu (kết quả)",
)
_ASKED_HEADERS = (
    "Mã cơ quan tiếp nhận",
    "Tên cơ quan",
    "Cấp",
    "Hồ sơ không phải nộp lại",
    "Hồ sơ đã tra cứu",
    "Giấy tờ tái sử dụng",
    "Giấy tờ phải nộp lại",
    "Tỷ lệ (%)",
    "Chỉ tiêu (%)",
    "Đánh giá",
    "Còn thiếu (điểm)",
    "Còn thiếu (hồ sơ)",
)
_UNIT_HEADERS = ("Mã đơn vị", "Tên đơn vị", "Cấp", "Tài liệu đã quét", "Đang triển khai số hóa")
_DETAIL_HEADERS = (
    "Mã sổ",
    "Mã cơ quan",
    "Tên cơ quan",
    "Cấp",
    "Mã TTHC",
    "Mã hồ sơ",
    "Tên kết quả",
    "Ngày cấp",
    "Hiệu lực đến",
    "Chủ thể",
    "Đã số hóa",
    "Mã tài liệu số hóa",
)


def write_xlsx(report: CoverageReport, path: Path, *, detail: bool = True, holder_ids: bool = False) -> None:
    """Write an Excel workbook: summary, per agency, one-stop units, (if ``detail``) the register rows and the
    archived documents not counted; then the accounting per level with the reasons' counts, the rows counted
    through succession, and the provenance ``coverage check`` reads.

    The detail's holder IDs are masked (``0790••••1234``) unless ``holder_ids``: a caller asking for them
    records that access (the CLI's ``--show-holder-ids``).

    The workbook is written in openpyxl's write-only mode so the detail sheets stream: a million rows
    never sit in memory as cells. Sheets beyond Excel's row limit continue on "Chi tiết (2)", etc.
    """
    book = _Book.open(report)
    _write_summary_sheet(book)
    _write_agency_sheet(book)
    _write_unit_sheet(book)
    if report.asked_by_agency is not None:
        _write_asked_sheet(book, report.asked_by_agency)
    if detail:
        _write_detail_sheets(book, holder_ids)
    _write_audit_sheets(book, detail)
    book.save(Path(path))
    _pin_times(Path(path), report.cutoff or end_of_business_day(report.as_of))


@dataclass(frozen=True)
class _Book:
    """A write-only workbook being filled for one report, with the styles its sheets share."""

    report: CoverageReport
    workbook: Any
    new_cell: Any
    """openpyxl's ``WriteOnlyCell`` (imported with the workbook)."""
    title_font: Any
    bold: Any
    head_font: Any
    head_fill: Any
    wrap: Any
    fills: dict[bool, Any]
    """Met → green, behind → red."""
    extent: dict[str, list[int]] = field(default_factory=dict)
    """Per sheet title: [rows appended, columns], for the print areas."""

    @classmethod
    def open(cls, report: CoverageReport) -> _Book:
        """A new workbook for ``report``; the first call imports openpyxl."""
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font, PatternFill

        return cls(
            report=report,
            workbook=Workbook(write_only=True),
            new_cell=WriteOnlyCell,
            title_font=Font(bold=True, size=14),
            bold=Font(bold=True),
            head_font=Font(bold=True, color="FFFFFF"),
            head_fill=PatternFill("solid", fgColor=_XLSX_HEADER_FILL),
            wrap=Alignment(wrap_text=True, vertical="top"),
            fills={
                True: PatternFill("solid", fgColor=_XLSX_MET_FILL),
                False: PatternFill("solid", fgColor=_XLSX_BEHIND_FILL),
            },
        )

    def sheet(
        self, title: str, widths: Sequence[float], *, freeze: str | None = None, title_rows: str | None = "1:1"
    ) -> Any:
        """A new sheet with these column widths (from column A), frozen panes if given, and print set-up.

        Auditors print the workbook: every sheet prints landscape on A4, as wide as one page (as many
        pages down as it needs), with its header row (``title_rows``) repeated on every page and its
        columns as the print area, so no column is cut off from its rows.
        """
        ws = self.workbook.create_sheet(title)
        for i, w in enumerate(widths):
            ws.column_dimensions[chr(ord("A") + i)].width = w
        if freeze is not None:
            ws.freeze_panes = freeze
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = 9  # A4 (openpyxl: Worksheet.PAPERSIZE_A4)
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.gridLines = True
        if title_rows is not None:
            ws.print_title_rows = title_rows
        self.extent[ws.title] = [0, len(widths)]
        return ws

    def append(self, ws: Any, values: Sequence[Any]) -> None:
        """Append a row, its text kept text (never a formula), counting rows for the print area."""
        def text_cell(text: str) -> Any:
            return self.new_cell(ws, value=text)

        ws.append([xlsx_value(v, text_cell) for v in values])
        self.extent[ws.title][0] += 1

    def save(self, path: Path) -> None:
        """Set each sheet's print area to the rows and columns it holds, then write the file."""
        for ws in self.workbook.worksheets:
            rows, columns = self.extent[ws.title]
            ws.print_area = f"A1:{chr(ord('A') + columns - 1)}{max(rows, 1)}"
        self.workbook.save(path)

    def cell(self, ws: Any, value: Any, *, font: Any = None, fill: Any = None, fmt: str | None = None) -> Any:
        """A styled cell; missing values (None, NaN, NA) are written empty."""
        c = self.new_cell(ws, value=None if value is None or (not isinstance(value, str) and pd.isna(value)) else value)
        if font is not None:
            c.font = font
        if fill is not None:
            c.fill = fill
        if fmt is not None:
            c.number_format = fmt
        return xlsx_text(c)

    def header(self, ws: Any, names: Sequence[str]) -> list[Any]:
        """The header row: white bold wrapped text on the report's blue."""
        out = [self.cell(ws, n, font=self.head_font, fill=self.head_fill) for n in names]
        for c in out:
            c.alignment = self.wrap
        return out

    def verdict(self, ws: Any, text: str, met: bool | None) -> Any:
        """An assessment cell, green when met, red when behind, plain without a target."""
        return self.cell(ws, text, fill=self.fills[met] if met is not None else None)

    def level_name(self, code: Any) -> str:
        """The level's Vietnamese name, as every sheet shows it."""
        return self.report.plan.level_names(str(code))[0]


def _met(row: dict[str, Any]) -> bool | None:
    """Whether a row met its target; None when there is no target to meet (or nothing counted)."""
    return None if pd.isna(row["met"]) else bool(row["met"])


def _write_summary_sheet(book: _Book) -> None:
    """Title, then every indicator per level against its target, with what was counted."""
    report, plan = book.report, book.report.plan
    ws = book.sheet("Tổng hợp", (22, 12, 12, 11, 12, 40, 16, 18), title_rows=None)
    book.append(ws, [book.cell(ws, f"Tiến độ số hóa theo Kế hoạch {plan.id} ({plan.province})", font=book.title_font)])
    book.append(ws, [f"Số liệu đến hết ngày {report.as_of.isoformat()}; chỉ tiêu năm {report.as_of.year}."])
    book.append(ws, [plan.source_reference])
    for number, fig in enumerate(indicator_figures(report), start=1):
        book.append(ws, [])
        book.append(ws, [book.cell(ws, f"{number}. {fig.status.title_vi}", font=book.bold)])
        if fig.frame is None:
            book.append(ws, [fig.status.basis_vi])
            continue
        book.append(ws, book.header(ws, _LEVEL_HEADERS))
        for row in fig.frame.to_dict("records"):
            book.append(
                ws,
                [
                    book.level_name(row["level"]),
                    int(row[fig.num]),
                    int(row[fig.den]),
                    book.cell(ws, row["coverage_pct"], fmt="0.0"),
                    book.cell(ws, row["target_pct"], fmt="0.0"),
                    book.verdict(ws, assessment(row, fig)[0], _met(row)),
                    book.cell(ws, row["gap_points"], fmt="0.0"),
                    book.cell(ws, row[fig.to_target]),
                ],
            )
        book.append(ws, [fig.status.basis_vi])


def _write_agency_sheet(book: _Book) -> None:
    """Stock per agency, laggards first, with an auto-filter."""
    by_agency = book.report.by_agency
    ws = book.sheet("Theo cơ quan", (16, 44, 12, 11, 12, 10, 12, 10, 16, 18), freeze="C2")
    book.append(ws, book.header(ws, _AGENCY_HEADERS))
    for row in by_agency.to_dict("records"):
        met = _met(row)
        verdict = (
            ("đạt" if met else "chưa đạt")
            if met is not None
            else ("không có dữ liệu" if row["valid"] == 0 else "chưa có chỉ tiêu")
        )
        book.append(
            ws,
            [
                row["agency_code"],
                row["name"],
                book.level_name(row["level"]),
                int(row["digitized"]),
                int(row["valid"]),
                book.cell(ws, row["coverage_pct"], fmt="0.0"),
                book.cell(ws, row["target_pct"], fmt="0.0"),
                book.verdict(ws, verdict, met),
                book.cell(ws, row["gap_points"], fmt="0.0"),
                book.cell(ws, row["docs_to_target"]),
            ],
        )
    if len(by_agency):
        ws.auto_filter.ref = f"A1:J{len(by_agency) + 1}"


def _write_unit_sheet(book: _Book) -> None:
    """Each one-stop unit with the documents it scanned and whether it counts as running."""
    ws = book.sheet("Bộ phận Một cửa", (16, 44, 12, 16, 22), freeze="A2")
    book.append(ws, book.header(ws, _UNIT_HEADERS))
    for row in book.report.units.to_dict("records"):
        running = bool(row["running"])
        book.append(
            ws,
            [
                row["code"],
                row["name"],
                book.level_name(row["level"]),
                int(row["documents_scanned"]),
                book.cell(ws, "có" if running else "chưa", fill=book.fills[running]),
            ],
        )


def _write_asked_sheet(book: _Book, asked_by_agency: pd.DataFrame) -> None:
    """ "Not asked again" per receiving office, laggards first."""
    ws = book.sheet("Không phải nộp lại", (16, 44, 12, 14, 12, 14, 14, 11, 12, 10, 16, 18), freeze="C2")
    book.append(ws, book.header(ws, _ASKED_HEADERS))
    for row in asked_by_agency.to_dict("records"):
        met = _met(row)
        book.append(
            ws,
            [
                row["agency_code"],
                row["agency_name"],
                book.level_name(row["level"]),
                int(row["not_asked"]),
                int(row["dossiers"]),
                int(row["reused_docs"]),
                int(row["supplied_again_docs"]),
                book.cell(ws, row["coverage_pct"], fmt="0.0"),
                book.cell(ws, row["target_pct"], fmt="0.0"),
                book.verdict(ws, ("đạt" if met else "chưa đạt") if met is not None else "chưa có chỉ tiêu", met),
                book.cell(ws, row["gap_points"], fmt="0.0"),
                book.cell(ws, row["dossiers_to_target"]),
            ],
        )


def _write_detail_sheets(book: _Book, holder_ids: bool) -> None:
    """Stream the register rows behind the stock figures, splitting at Excel's row limit."""
    rows = book.report.detail
    holders = rows["holder_id"] if holder_ids else rows["holder_id"].map(lambda v: mask_holder_id(str(v)),
                                                                          na_action="ignore")
    names = {lv.code: lv.vi for lv in book.report.plan.levels}
    issued = pd.Series(rows["issued_date"].dt.date, dtype=object)
    until = rows["valid_until"].dt.date.astype(object).where(rows["valid_until"].notna(), None)
    columns = [
        rows["register_id"].astype(object).tolist(),
        rows["agency_code"].astype(object).tolist(),
        rows["agency_name"].astype(object).tolist(),
        rows["level"].map(lambda c: names.get(c, c)).tolist(),
        rows["procedure_code"].astype(object).tolist(),
        _texts(rows["dossier_code"]),
        _texts(rows["title"]),
        issued.tolist(),
        until.tolist(),
        _texts(holders),
        np.where(rows["digitized"].to_numpy(), "có", "chưa").tolist(),
        _texts(rows["document_code"]),
    ]
    per_sheet = EXCEL_MAX_ROWS - 1
    total = len(rows)
    sheets = max(1, math.ceil(total / per_sheet))
    for n in range(sheets):
        title = "Chi tiết" if n == 0 else f"Chi tiết ({n + 1})"
        ws = book.sheet(title, (12, 16, 36, 11, 11, 28, 44, 12, 12, 14, 10, 30), freeze="B2")
        book.append(ws, book.header(ws, _DETAIL_HEADERS))
        lo, hi = n * per_sheet, min(total, (n + 1) * per_sheet)
        for values in zip(*(c[lo:hi] for c in columns), strict=True):
            book.append(ws, values)


def _write_audit_sheets(book: _Book, detail: bool) -> None:
    """Archived = counted + not counted per level, the documents not counted (with ``detail``, like the
    register rows: the reasons with their counts, and dossier components per agency, always), succession, and
    provenance.

    "Nguồn gốc số liệu" is what ``coverage check`` reads back: column A the key, C the value (from row 2).
    """
    report = book.report
    if detail:
        ws = book.sheet("Không được tính", (20, 8, 16, 12, 12, 28, 12, 24), freeze="A2")
        book.append(ws, book.header(ws, [vi for vi, _ in UNCOUNTED_HEADERS[:-1]]))  # the reasons' wording: next sheet
        for values in uncounted_table(report):
            book.append(ws, [*values[:3], book.level_name(values[3]), *values[4:-1]])
    ws = book.sheet("Đối chiếu lưu trữ", (24, 44, 14, 16), freeze="A2")
    book.append(ws, book.header(ws, [vi for vi, _ in ACCOUNTING_HEADERS]))
    for level, *counts in accounting_table(report):
        book.append(ws, [book.level_name(level), *counts])
    book.append(ws, [])
    book.append(ws, book.header(ws, ["Mã lý do", "Lý do không được tính", "Số tài liệu"]))
    per_reason = reason_counts(report)
    for code, (vi, _en) in REASONS.items():
        book.append(ws, [code, vi, per_reason.get(code, 0)])
    components = component_table(report)
    if components:
        book.append(ws, [])
        book.append(ws, book.header(ws, [vi for vi, _ in COMPONENT_HEADERS]))
        for level, agency, code, documents in components:
            book.append(ws, [book.level_name(level), agency, code, documents])
    ws = book.sheet("Cơ quan kế thừa", (12, 16, 16, 36, 11, 36, 10, 30), freeze="A2")
    book.append(ws, book.header(ws, [vi for vi, _ in SUCCESSION_HEADERS]))
    for values in succession_table(report):
        book.append(ws, [*values[:4], book.level_name(values[4]), *values[5:]])
    ws = book.sheet("Nguồn gốc số liệu", (30, 40, 70))
    book.append(ws, book.header(ws, ["Khóa", "Mục", "Giá trị"]))
    for key, vi, _en, value in provenance_rows(report):
        book.append(ws, [key, vi, value])


def _pin_times(path: Path, when: datetime) -> None:
    """Make the file's bytes a function of the report: the workbook's created/modified times and every zip
    entry's time are the cut-off, not the moment it was written (openpyxl stamps "now" on save)."""
    utc = when.astimezone(UTC)
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp, data)
            pinned = zipfile.ZipInfo(info.filename, date_time=utc.timetuple()[:6])
            pinned.compress_type = zipfile.ZIP_DEFLATED
            pinned.external_attr = info.external_attr
            out.writestr(pinned, data)


def _texts(values: pd.Series) -> list[Any]:
    """Column values as Python objects with missing values as None (what openpyxl writes as empty)."""
    return values.astype(object).where(values.notna(), None).tolist()
