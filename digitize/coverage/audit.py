"""What every format shows an auditor besides the figures: provenance, the accounting of archived
documents, the documents not counted with their reason, and the rows counted through succession.

The renderers (text, CSV, XLSX, HTML) all take these tables from here, so they list the same things
with the same wording, and ``coverage check`` reads the provenance back under the same keys.
"""

from __future__ import annotations

import pandas as pd

from digitize.coverage.accounting import REASONS
from digitize.coverage.indicators import CoverageReport
from digitize.coverage.provenance import PROVENANCE_KEYS

PROVENANCE_LABELS: dict[str, tuple[str, str]] = {
    "as_of": ("Số liệu đến hết ngày (D)", "Figures as of the end of (D)"),
    "cutoff": ("Dữ liệu ghi nhận đến (C)", "Data recorded up to (C)"),
    "plan_id": ("Kế hoạch", "Plan"),
    "plan_sha256": ("SHA-256 của tệp kế hoạch", "SHA-256 of the plan file"),
    "code_version": ("Phiên bản phần mềm", "Code version"),
    "inputs_sha256": ("SHA-256 của dữ liệu đầu vào", "SHA-256 of the inputs"),
    "latest_recorded_at": ("Dữ liệu mới nhất ghi nhận lúc", "Newest fact recorded at"),
    "includes_data_recorded_after": ("Có dữ liệu ghi nhận sau thời điểm", "Includes data recorded after"),
}

UNCOUNTED_HEADERS = (
    ("Mã tài liệu", "Document code"),
    ("Loại", "Kind"),
    ("Mã cơ quan", "Agency code"),
    ("Cấp", "Level"),
    ("Mã sổ", "Register ID"),
    ("Mã hồ sơ", "Dossier code"),
    ("Ngày số hóa", "Digitized on"),
    ("Mã lý do", "Reason code"),
    ("Lý do", "Reason"),
)
ACCOUNTING_HEADERS = (("Cấp", "Level"), ("Đã lưu trữ", "Archived"), ("Được tính", "Counted"),
                      ("Không được tính", "Not counted"))
SUCCESSION_HEADERS = (
    ("Mã sổ", "Register ID"),
    ("Cơ quan trong sổ", "Agency in the register"),
    ("Tính cho cơ quan", "Counted for"),
    ("Tên cơ quan", "Agency"),
    ("Cấp", "Level"),
    ("Chuỗi kế thừa", "Succession"),
    ("Đã số hóa", "Digitized"),
    ("Mã tài liệu số hóa", "Document code"),
)


def provenance_rows(report: CoverageReport) -> list[tuple[str, str, str, str]]:
    """(key, Vietnamese label, English label, value) of every provenance field, in the fixed order."""
    values = report.provenance()
    return [(key, *PROVENANCE_LABELS[key], values[key]) for key in PROVENANCE_KEYS]


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def uncounted_table(report: CoverageReport) -> list[tuple[str, ...]]:
    """One line per archived document not counted: the columns of :data:`UNCOUNTED_HEADERS` as text."""
    out: list[tuple[str, ...]] = []
    for row in report.uncounted.to_dict("records"):
        vi, en = REASONS[str(row["reason"])]
        out.append((_text(row["document_code"]), _text(row["kind"]), _text(row["agency_code"]), _text(row["level"]),
                    _text(row["register_id"]), _text(row["dossier_code"]), _text(row["digitized_on"]),
                    str(row["reason"]), f"{vi} / {en}"))
    return out


def accounting_table(report: CoverageReport) -> list[tuple[str, int, int, int]]:
    """Per level: (level, archived, counted, not counted)."""
    return [(str(r["level"]), int(r["archived"]), int(r["counted"]), int(r["not_counted"]))
            for r in report.accounting.to_dict("records")]


def succession_table(report: CoverageReport) -> list[tuple[str, ...]]:
    """One line per still-valid register row counted through succession (:data:`SUCCESSION_HEADERS`)."""
    return [
        (_text(r["register_id"]), _text(r["registered_agency"]), _text(r["agency_code"]), _text(r["agency_name"]),
         _text(r["level"]), _text(r["via"]), "có / yes" if bool(r["digitized"]) else "chưa / no",
         _text(r["document_code"]))
        for r in report.succession.to_dict("records")
    ]
