"""What every renderer shows of an indicator: its per-level frame, the columns it reads, and the wording.

The text table, the CSV, the workbook and the HTML page all walk :func:`indicator_figures` so they list
the same indicators in the plan's order, with the same numbers and the same bilingual assessment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from digitize.coverage.indicators import CoverageReport, IndicatorStatus


@dataclass(frozen=True)
class Figures:
    """One indicator's per-level frame and what its columns mean, so every renderer treats them alike."""

    status: IndicatorStatus
    frame: pd.DataFrame | None
    num: str
    den: str
    to_target: str
    unit_vi: str
    unit_en: str


def indicator_figures(report: CoverageReport) -> list[Figures]:
    """Per-level figures of every indicator the plan sets, in the plan's order."""
    out = []
    for status in report.indicators:
        frame: pd.DataFrame | None
        if status.id == "stock":
            frame, num, den, still, uvi, uen = (
                report.by_level,
                "digitized",
                "valid",
                "docs_to_target",
                "kết quả",
                "results",
            )
        elif status.id == "flow":
            frame, num, den, still, uvi, uen = (
                report.flow_by_level,
                "digitized",
                "resolved",
                "docs_to_target",
                "kết quả",
                "results",
            )
        elif status.id == "units":
            frame, num, den, still, uvi, uen = (
                report.units_by_level,
                "running",
                "units",
                "units_to_target",
                "đơn vị",
                "units",
            )
        else:
            frame, num, den, still, uvi, uen = (
                report.asked_by_level,
                "not_asked",
                "dossiers",
                "dossiers_to_target",
                "hồ sơ",
                "dossiers",
            )
        out.append(Figures(status, frame if status.computable else None, num, den, still, uvi, uen))
    return out


def format_pct(value: Any) -> str:
    """A percentage with one decimal, or a dash where there is none (no target, nothing to divide by)."""
    return "—" if value is None or pd.isna(value) else f"{float(value):.1f}"


def assessment(row: Mapping[str, Any], fig: Figures) -> tuple[str, str]:
    """(Vietnamese, English) verdict of one row: met, behind by points and items, or why there is none."""
    if pd.isna(row["target_pct"]):
        return ("chưa có chỉ tiêu", "no target yet")
    if int(row[fig.den]) == 0:
        return ("không có dữ liệu", "no data")
    if bool(row["met"]):
        return ("đạt", "met")
    gap, still = float(row["gap_points"]), int(row[fig.to_target])
    return (
        f"chậm {gap:.1f} điểm, còn thiếu {still} {fig.unit_vi}",
        f"behind by {gap:.1f} points, {still} {fig.unit_en if still != 1 else fig.unit_en[:-1]} short",
    )
