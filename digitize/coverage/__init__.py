"""Coverage against the plan: plan targets, indicators, one renderer per format.

- ``plan``: the plan file (levels, indicators, yearly targets) and its validation;
- ``inputs``: :class:`CoverageInputs`, the catalog's frames as recorded up to a cut-off;
- ``frames``: the frames' columns as coverage reads them, agencies valid on a day, and the counting options;
- ``rows``, ``succession``: register rows and the agency each counts for on the day (successions followed);
- ``accounting``: every archived document counted, or listed with its reason;
- ``provenance``, ``audit``, ``check``: what a report records to prove itself, and ``coverage check``;
- ``indicators``: :func:`compute_coverage` and the :class:`CoverageReport` it returns;
- ``drilldown``: the register rows or dossiers behind one figure;
- ``figures``: what every renderer shows of an indicator;
- ``render_text``, ``render_csv``, ``render_xlsx``, ``render_html``: one module per output format.
"""

from __future__ import annotations

from digitize.coverage.accounting import REASONS, UNCOUNTED_COLUMNS
from digitize.coverage.check import CheckResult, check_report, find_plan, read_provenance
from digitize.coverage.drilldown import Part, drill_down, drill_down_dossiers
from digitize.coverage.frames import ARCHIVED_COLUMNS, CoverageOptions
from digitize.coverage.indicators import CoverageReport, IndicatorStatus, compute_coverage
from digitize.coverage.inputs import CoverageInputs
from digitize.coverage.plan import Plan, load_plan
from digitize.coverage.render_csv import CSV_COLUMNS, report_rows, write_csv
from digitize.coverage.render_html import write_html
from digitize.coverage.render_text import render_table
from digitize.coverage.render_xlsx import write_xlsx

__all__ = [
    "ARCHIVED_COLUMNS",
    "CSV_COLUMNS",
    "REASONS",
    "UNCOUNTED_COLUMNS",
    "CheckResult",
    "CoverageInputs",
    "CoverageOptions",
    "CoverageReport",
    "IndicatorStatus",
    "Part",
    "Plan",
    "check_report",
    "compute_coverage",
    "drill_down",
    "drill_down_dossiers",
    "find_plan",
    "load_plan",
    "read_provenance",
    "render_table",
    "report_rows",
    "write_csv",
    "write_html",
    "write_xlsx",
]
