"""Coverage against the plan: plan targets, indicators, one renderer per format.

- ``plan``: the plan file (levels, indicators, yearly targets) and its validation;
- ``frames``: the catalog's frames as coverage reads them, and the counting options;
- ``indicators``: :func:`compute_coverage` and the :class:`CoverageReport` it returns;
- ``drilldown``: the register rows or dossiers behind one figure;
- ``figures``: what every renderer shows of an indicator;
- ``render_text``, ``render_csv``, ``render_xlsx``, ``render_html``: one module per output format.
"""

from __future__ import annotations

from digitize.coverage.drilldown import Part, drill_down, drill_down_dossiers
from digitize.coverage.frames import ARCHIVED_COLUMNS, CoverageOptions
from digitize.coverage.indicators import CoverageReport, IndicatorStatus, compute_coverage
from digitize.coverage.plan import Plan, load_plan
from digitize.coverage.render_csv import CSV_COLUMNS, report_rows, write_csv
from digitize.coverage.render_html import write_html
from digitize.coverage.render_text import render_table
from digitize.coverage.render_xlsx import write_xlsx

__all__ = [
    "ARCHIVED_COLUMNS",
    "CSV_COLUMNS",
    "CoverageOptions",
    "CoverageReport",
    "IndicatorStatus",
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
