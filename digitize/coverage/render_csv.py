"""The report as one tidy table: :func:`report_rows` (also the dashboard's JSON) and the CSV file of it.

One row per indicator × scope: every indicator per level, then stock and "not asked again" per agency,
and each one-stop unit for the units indicator. An indicator the data cannot measure keeps one row,
flagged not computable, so a reader sees it was left out on purpose.

The audit rows follow the figures: ``accounting`` per level (numerator = counted, denominator = archived),
``archived_not_counted`` dossier components per agency (``scope`` = ``agency``, ``numerator`` = how many) and
each other document not counted with its ``reason`` (``scope`` = ``document``), each register row counted through
``succession`` (``basis`` = the chain). The ``provenance`` rows come first (``scope`` = the field,
``basis`` = its value): what ``coverage check`` reads back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from digitize.coverage.accounting import REASONS
from digitize.coverage.audit import listed_uncounted, provenance_rows, summarised_uncounted
from digitize.coverage.figures import Figures, indicator_figures
from digitize.coverage.indicators import CoverageReport
from digitize.spreadsheet import csv_frame

CSV_COLUMNS = (
    "plan_id",
    "as_of",
    "indicator",
    "scope",
    "level",
    "agency_code",
    "agency_name",
    "numerator",
    "denominator",
    "coverage_pct",
    "target_pct",
    "met",
    "gap_points",
    "to_target",
    "computable",
    "basis",
    "register_id",
    "document_code",
    "reason",
)


def report_rows(report: CoverageReport) -> pd.DataFrame:
    """Every figure of the report as one tidy frame (the CSV's rows): per level, per agency, per unit."""
    parts = [_provenance_rows(report)]
    parts += [part for fig in indicator_figures(report) for part in _indicator_rows(report, fig)]
    parts += _audit_rows(report)
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True)
    rows["plan_id"], rows["as_of"] = report.plan_id, report.as_of.isoformat()
    for column in CSV_COLUMNS:
        if column not in rows.columns:
            rows[column] = pd.NA
    rows["numerator"] = rows["numerator"].astype("Int64")
    rows["denominator"] = rows["denominator"].astype("Int64")
    rows["to_target"] = rows["to_target"].astype("Int64")
    return rows[list(CSV_COLUMNS)]


def write_csv(report: CoverageReport, path: Path) -> None:
    """Write every figure as a UTF-8 CSV (tidy: one row per indicator × level/agency/unit).

    With a byte-order mark: Excel on Windows reads a CSV without one as the local code page and garbles
    Vietnamese; pandas, Python's ``utf-8-sig`` and LibreOffice all read it transparently. Text that a
    spreadsheet would run as a formula gets a leading apostrophe (:func:`digitize.spreadsheet.csv_cell`).
    """
    csv_frame(report_rows(report)).to_csv(Path(path), index=False, encoding="utf-8-sig", lineterminator="\n")


def _provenance_rows(report: CoverageReport) -> pd.DataFrame:
    """The report's provenance: one row per field, the value in ``basis``."""
    return pd.DataFrame(
        [{"indicator": "provenance", "scope": key, "basis": value} for key, _vi, _en, value in provenance_rows(report)]
    )


def _audit_rows(report: CoverageReport) -> list[pd.DataFrame]:
    """Archived = counted + not counted per level, dossier components not counted per agency (``numerator`` = their
    number), each other document not counted, each row counted by succession."""
    accounting = report.accounting
    components = summarised_uncounted(report)
    docs = listed_uncounted(report)
    succession = report.succession
    english = {code: en for code, (_vi, en) in REASONS.items()}
    return [
        pd.DataFrame({"indicator": "accounting", "scope": "level", "level": accounting["level"],
                      "numerator": accounting["counted"], "denominator": accounting["archived"],
                      "basis": "archived = counted + not counted"}),
        pd.DataFrame({"indicator": "archived_not_counted", "scope": "agency", "level": components["level"],
                      "agency_code": components["agency_code"], "reason": components["reason"],
                      "numerator": components["documents"],
                      "basis": components["reason"].map(english)}) if len(components) else pd.DataFrame(),
        pd.DataFrame({"indicator": "archived_not_counted", "scope": "document", "level": docs["level"],
                      "agency_code": docs["agency_code"], "register_id": docs["register_id"],
                      "document_code": docs["document_code"], "reason": docs["reason"],
                      "basis": docs["reason"].map(english)}) if len(docs) else pd.DataFrame(),
        pd.DataFrame({"indicator": "succession", "scope": "register_row", "level": succession["level"],
                      "agency_code": succession["agency_code"], "agency_name": succession["agency_name"],
                      "register_id": succession["register_id"], "document_code": succession["document_code"],
                      "met": succession["digitized"].astype("boolean"), "basis": succession["via"]})
        if len(succession) else pd.DataFrame(),
    ]


def _indicator_rows(report: CoverageReport, fig: Figures) -> list[pd.DataFrame]:
    """One indicator's rows: per level, then per agency or per unit where the report has them."""
    if fig.frame is None:
        return [
            pd.DataFrame(
                [{"indicator": fig.status.id, "scope": "level", "computable": False, "basis": fig.status.basis_en}]
            )
        ]
    parts = [_level_rows(fig, fig.frame)]
    if fig.status.id == "stock":
        parts.append(_agency_rows(fig, report.by_agency, name="name", num="digitized", den="valid"))
    if fig.status.id == "not_asked_again" and report.asked_by_agency is not None:
        parts.append(_agency_rows(fig, report.asked_by_agency, name="agency_name", num="not_asked", den="dossiers"))
    if fig.status.id == "units":
        parts.append(_unit_rows(fig, report.units))
    return parts


def _level_rows(fig: Figures, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-level rows of a computable indicator."""
    return pd.DataFrame(
        {
            "indicator": fig.status.id,
            "scope": "level",
            "level": frame["level"],
            "numerator": frame[fig.num],
            "denominator": frame[fig.den],
            "coverage_pct": frame["coverage_pct"],
            "target_pct": frame["target_pct"],
            "met": frame["met"],
            "gap_points": frame["gap_points"],
            "to_target": frame[fig.to_target],
            "computable": True,
            "basis": fig.status.basis_en,
        }
    )


def _agency_rows(fig: Figures, agencies: pd.DataFrame, *, name: str, num: str, den: str) -> pd.DataFrame:
    """Per-agency rows of an indicator; each per-agency frame names its columns after what it counts."""
    return pd.DataFrame(
        {
            "indicator": fig.status.id,
            "scope": "agency",
            "level": agencies["level"],
            "agency_code": agencies["agency_code"],
            "agency_name": agencies[name],
            "numerator": agencies[num],
            "denominator": agencies[den],
            "coverage_pct": agencies["coverage_pct"],
            "target_pct": agencies["target_pct"],
            "met": agencies["met"],
            "gap_points": agencies["gap_points"],
            "to_target": agencies[fig.to_target],
            "computable": True,
            "basis": fig.status.basis_en,
        }
    )


def _unit_rows(fig: Figures, units: pd.DataFrame) -> pd.DataFrame:
    """Each one-stop unit: documents it scanned, and whether that makes it count as running."""
    return pd.DataFrame(
        {
            "indicator": "units",
            "scope": "unit",
            "level": units["level"],
            "agency_code": units["code"],
            "agency_name": units["name"],
            "numerator": units["documents_scanned"],
            "met": units["running"].astype("boolean"),
            "computable": True,
            "basis": fig.status.basis_en,
        }
    )
