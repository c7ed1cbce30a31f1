"""Publish coverage reports to the archive, keeping every report ever produced (history for auditors).

A published report is a report (D, C): C, the data cut-off, is the moment it was produced, and it names
the report's folder, so the history under ``reports/coverage/`` is reproducible file by file with
``python -m digitize coverage check``.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.clock import utc_now

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog
    from digitize.coverage import CoverageReport, Plan

_FORMATS = {
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class PublishedReport:
    """Where one coverage report went."""

    report: CoverageReport
    """The figures."""

    keys: dict[str, str]
    """Archive key per format (html, xlsx, csv)."""


def report_prefix(plan_id: str, as_of: date, produced_at: datetime) -> str:
    """``reports/coverage/<plan>/<as-of date>/<cut-off, UTC>/``: a new folder per run, never overwritten."""
    plan = re.sub(r"[^A-Za-z0-9._-]+", "-", plan_id).strip("-.") or "plan"
    return f"reports/coverage/{plan}/{as_of.isoformat()}/{produced_at:%Y%m%dT%H%M%S%fZ}/"


def publish_coverage(catalog: Catalog, archive: Archive, plan: Plan, as_of: date,
                     produced_at: datetime | None = None) -> PublishedReport:
    """Compute coverage as of ``as_of`` with the catalog as recorded at ``produced_at`` (the cut-off C; default
    now) and store it as HTML, XLSX and CSV under a fresh report prefix."""
    from digitize import coverage

    produced_at = (produced_at or utc_now()).astimezone(UTC)
    report = coverage.CoverageInputs.from_catalog(catalog, produced_at).report(plan, as_of)
    writers = {"html": coverage.write_html, "xlsx": coverage.write_xlsx, "csv": coverage.write_csv}
    prefix = report_prefix(plan.id, as_of, produced_at)
    keys: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="digitize-report-") as scratch:
        for fmt, write in writers.items():
            path = Path(scratch) / f"coverage.{fmt}"
            write(report, path)
            stored = archive.put(f"{prefix}coverage.{fmt}", path.read_bytes(), content_type=_FORMATS[fmt],
                                 metadata={"plan": plan.id, "as-of": as_of.isoformat(),
                                           "cutoff": produced_at.isoformat(), "inputs-sha256": report.inputs_sha256})
            keys[fmt] = stored.key
    return PublishedReport(report, keys)
