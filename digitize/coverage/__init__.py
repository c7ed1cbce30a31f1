"""Coverage against the plan: plan targets, indicators, one renderer per format."""

from __future__ import annotations

from digitize.coverage.indicators import (
    ARCHIVED_COLUMNS,
    CSV_COLUMNS,
    CoverageReport,
    Part,
    Plan,
    compute_coverage,
    drill_down,
    drill_down_dossiers,
    load_plan,
    render_table,
    report_rows,
    write_csv,
    write_html,
    write_xlsx,
)

__all__ = [
    "ARCHIVED_COLUMNS",
    "CSV_COLUMNS",
    "CoverageReport",
    "Part",
    "Plan",
    "compute_coverage",
    "drill_down",
    "drill_down_dossiers",
    "load_plan",
    "render_table",
    "report_rows",
    "write_csv",
    "write_html",
    "write_xlsx",
]
