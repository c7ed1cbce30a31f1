"""The frames one report reads, taken from the catalog as recorded up to one cut-off.

Every caller (CLI, dashboard, published reports, ``coverage check``) reads them here, so a report (D, C)
always reads the same facts: the catalog's frames at C, never a mix of "now" and C.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

import pandas as pd

from digitize.coverage.drilldown import Part, drill_down
from digitize.coverage.frames import CoverageOptions
from digitize.coverage.indicators import CoverageReport, compute_coverage
from digitize.coverage.plan import Plan

if TYPE_CHECKING:
    from digitize.catalog import Catalog


@dataclass(frozen=True, eq=False)
class CoverageInputs:
    """The catalog's frames as recorded up to ``cutoff``."""

    cutoff: datetime
    """The data cut-off (aware UTC)."""

    agencies: pd.DataFrame
    register: pd.DataFrame
    archived: pd.DataFrame
    scans: pd.DataFrame
    successors: pd.DataFrame
    needs: pd.DataFrame

    @classmethod
    def from_catalog(cls, catalog: Catalog, cutoff: datetime) -> CoverageInputs:
        """Read every frame coverage needs, as recorded up to ``cutoff``."""
        return cls(
            cutoff=cutoff,
            agencies=catalog.agencies_frame(cutoff),
            register=catalog.register_frame(cutoff),
            archived=catalog.archived_frame(cutoff),
            scans=catalog.scans_frame(cutoff),
            successors=catalog.successors_frame(cutoff),
            needs=catalog.needs_frame(cutoff),
        )

    def report(self, plan: Plan, as_of: date, options: CoverageOptions | None = None) -> CoverageReport:
        """Coverage at the end of ``as_of`` from these frames."""
        return compute_coverage(self.agencies, self.register, self.archived, plan, as_of, needs=self.needs,
                                scans=self.scans, successors=self.successors, cutoff=self.cutoff, options=options)

    def drill_down(self, as_of: date, *, level: str | None = None, agency: str | None = None,
                   part: Part = "denominator", indicator: Literal["stock", "flow"] = "stock") -> pd.DataFrame:
        """The register rows (or, for ``uncounted``, the documents) behind one figure."""
        return drill_down(self.agencies, self.register, self.archived, as_of, level=level, agency=agency, part=part,
                          indicator=indicator, successors=self.successors)
