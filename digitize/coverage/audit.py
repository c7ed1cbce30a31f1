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


SUMMARISED_REASONS = ("DOSSIER_COMPONENT",)
"""Reasons the reports give as a count per level and agency, not one row per document: dossier components
are not results, and a province archives hundreds of thousands of them. The drill-down
(``coverage --drill-down uncounted``) still lists each; the reports list every other reason's documents."""

COMPONENT_HEADERS = (("Cấp", "Level"), ("Mã cơ quan", "Agency code"), ("Mã lý do", "Reason code"),
                     ("Số tài liệu", "Documents"))


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def _texts(values: pd.Series) -> list[str]:
    """A column as text: missing values empty, timestamps as their ISO day."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        text = values.dt.strftime("%Y-%m-%d")
    else:
        text = values.astype(object).map(str, na_action="ignore")
    return text.astype(object).where(values.notna(), "").tolist()


def reason_counts(report: CoverageReport) -> dict[str, int]:
    """Documents not counted per reason (every reason, listed or summarised), in :data:`REASONS`' order."""
    counts = report.uncounted["reason"].value_counts() if len(report.uncounted) else pd.Series(dtype=int)
    return {code: int(counts.get(code, 0)) for code in REASONS if counts.get(code, 0)}


def listed_uncounted(report: CoverageReport) -> pd.DataFrame:
    """The documents not counted that the reports list one per row (every reason but the summarised ones)."""
    docs = report.uncounted
    if not len(docs):
        return docs
    return docs[~docs["reason"].isin(SUMMARISED_REASONS).to_numpy()].reset_index(drop=True)


def summarised_uncounted(report: CoverageReport) -> pd.DataFrame:
    """The summarised reasons' documents counted per level and agency: level, agency_code, reason, documents."""
    docs = report.uncounted
    columns = ["level", "agency_code", "reason", "documents"]
    if not len(docs):
        return pd.DataFrame(columns=columns)
    some = docs[docs["reason"].isin(SUMMARISED_REASONS).to_numpy()]
    keys = pd.DataFrame({"level": some["level"].astype(str), "agency_code": some["agency_code"].fillna("").astype(str),
                         "reason": some["reason"].astype(str)})
    grouped = keys.groupby(["level", "agency_code", "reason"], sort=True).size().rename("documents").reset_index()
    return grouped.astype({"documents": "int64"})[columns]


def uncounted_columns(report: CoverageReport) -> list[list[str]]:
    """The columns of :data:`UNCOUNTED_HEADERS` as text, one entry per listed document not counted
    (:func:`listed_uncounted`)."""
    docs = listed_uncounted(report)
    if not len(docs):
        return [[] for _ in UNCOUNTED_HEADERS]
    reasons = docs["reason"].astype(str)
    wording = reasons.map({code: f"{vi} / {en}" for code, (vi, en) in REASONS.items()})
    columns = [_texts(docs[c]) for c in ("document_code", "kind", "agency_code", "level", "register_id",
                                         "dossier_code", "digitized_on")]
    return [*columns, reasons.tolist(), wording.tolist()]


def uncounted_table(report: CoverageReport) -> list[tuple[str, ...]]:
    """One line per listed document not counted: the columns of :data:`UNCOUNTED_HEADERS` as text."""
    return list(zip(*uncounted_columns(report), strict=True))


def component_table(report: CoverageReport) -> list[tuple[str, str, str, int]]:
    """(level, agency code, reason, documents) of :func:`summarised_uncounted`."""
    return [(str(r["level"]), str(r["agency_code"]), str(r["reason"]), int(r["documents"]))
            for r in summarised_uncounted(report).to_dict("records")]


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
