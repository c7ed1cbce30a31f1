"""Drill-downs: the register rows or dossiers behind one figure of the report, for the dashboard and the CLI."""

from __future__ import annotations

from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from digitize.coverage.accounting import uncounted_documents
from digitize.coverage.frames import CoverageOptions, valid_agencies
from digitize.coverage.indicators import asked_dossiers
from digitize.coverage.plan import SCOPE_ALL
from digitize.coverage.rows import all_register_rows, register_placements, select_rows
from digitize.errors import ConfigurationError

Part = Literal["numerator", "denominator", "missing", "uncounted", "succession"]
"""Which rows behind a figure: those counted in the numerator, all of the denominator, those missing; or
the documents archived but not counted (with their reason), or the register rows counted through succession."""

_PARTS = ("numerator", "denominator", "missing", "uncounted", "succession")


def drill_down(
    agencies: pd.DataFrame,
    register: pd.DataFrame,
    archived: pd.DataFrame,
    as_of: date,
    *,
    level: str | None = None,
    agency: str | None = None,
    part: Part = "denominator",
    indicator: Literal["stock", "flow"] = "stock",
    options: CoverageOptions | None = None,
    successors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The register rows behind a figure: the whole denominator, the digitized ones, those still missing, or
    those counted through succession; with ``uncounted``, the archived documents not counted and why."""
    if part not in _PARTS:
        raise ConfigurationError(
            f"drill-down part must be one of {', '.join(_PARTS)}, not {part!r}",
            hint="Ask for the digitized rows (numerator), all counted rows (denominator), those still missing, "
            "the documents archived but not counted (uncounted) or the rows counted through succession.",
        )
    options = options or CoverageOptions()
    valid = valid_agencies(agencies, as_of)
    placed = register_placements(register, valid, successors, as_of)
    rows = all_register_rows(agencies, register, archived, as_of, options, successors, valid=valid, placed=placed)
    if part == "uncounted":
        stock = select_rows(rows, as_of, "stock")
        docs = uncounted_documents(archived, register, rows, stock, valid, placed, successors, as_of, options)
        docs = docs[docs["reason"].notna().to_numpy()]
        return _filter_rows(docs, level=level, agency=agency, part="denominator")
    rows = select_rows(rows, as_of, indicator)
    if part == "succession":
        return _filter_rows(rows[rows["via"].notna().to_numpy()], level=level, agency=agency, part="denominator")
    return _filter_rows(rows, level=level, agency=agency, part=part)


def drill_down_dossiers(
    agencies: pd.DataFrame,
    needs: pd.DataFrame,
    as_of: date,
    *,
    level: str | None = None,
    agency: str | None = None,
    part: Part = "denominator",
    options: CoverageOptions | None = None,
) -> pd.DataFrame:
    """The dossiers behind a "not asked again" figure: all counted, those not asked again, or those asked again.

    Columns: new_dossier_code, agency_code, agency_name, level, first_at, reused_docs, supplied_again_docs,
    not_asked (no holder ID). ``level="all"`` (or none) keeps every dossier.
    """
    if part not in ("numerator", "denominator", "missing"):
        raise ConfigurationError(
            f"drill-down part for not_asked_again must be numerator, denominator or missing, not {part!r}",
            hint="Ask for the dossiers not asked again (numerator), all counted (denominator) or those asked again.",
        )
    rows = asked_dossiers(needs, agencies, as_of, options or CoverageOptions())
    mask = np.ones(len(rows), dtype=bool)
    if level is not None and level != SCOPE_ALL:
        mask &= (rows["level"] == level).to_numpy()
    if agency is not None:
        mask &= (rows["agency_code"] == agency).to_numpy()
    if part == "numerator":
        mask &= rows["not_asked"].to_numpy()
    elif part == "missing":
        mask &= ~rows["not_asked"].to_numpy()
    return rows[mask].reset_index(drop=True)


def _filter_rows(rows: pd.DataFrame, *, level: str | None, agency: str | None, part: Part) -> pd.DataFrame:
    """Register rows of one level and/or agency, narrowed to the digitized or the missing ones."""
    mask = np.ones(len(rows), dtype=bool)
    if level is not None:
        mask &= (rows["level"] == level).to_numpy()
    if agency is not None:
        mask &= (rows["agency_code"] == agency).to_numpy()
    if part == "numerator":
        mask &= rows["digitized"].to_numpy()
    elif part == "missing":
        mask &= ~rows["digitized"].to_numpy()
    return rows[mask].reset_index(drop=True)
