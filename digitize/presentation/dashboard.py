"""Coverage figures as JSON-ready values and the dashboard page, for the Airflow UI plugin.

The plugin (``plugins/coverage_dashboard.py``) only wires HTTP and authentication; everything it
shows is computed here from a :class:`~digitize.coverage.indicators.CoverageReport`, so the dashboard shows the
very numbers of the published reports: the page *is* ``coverage.write_html``'s page with a toolbar,
and the JSON carries ``coverage.report_rows``' figures. No Airflow import here.
"""

from __future__ import annotations

import html
import math
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from digitize.clock import business_today, utc_now
from digitize.config import REPO_ROOT
from digitize.errors import ConfigurationError

if TYPE_CHECKING:
    from digitize.catalog import Catalog
    from digitize.coverage import CoverageInputs, CoverageReport, Part

PLANS_DIR = REPO_ROOT / "schemas" / "plans"
TIMEZONE = "Asia/Ho_Chi_Minh"
DRILL_DOWN_MAX = 1000
"""Most register rows one drill-down request returns (page through with ``offset``)."""

DRILL_DOWN_COLUMNS = (
    "register_id",
    "agency_code",
    "agency_name",
    "level",
    "procedure_code",
    "dossier_code",
    "title",
    "issued_date",
    "valid_until",
    "digitized",
    "document_code",
)
"""Columns of a drill-down row; the holder's ID number (personal data) is deliberately left out."""


def today() -> date:
    """The current day in Vietnam: a report "as of today" must not switch day at 17:00 local time (UTC midnight)."""
    return business_today()


def plan_files(configured: Path) -> dict[str, Path]:
    """Plans the dashboard offers, by file stem: each file of ``schemas/plans`` and the configured plan."""
    plans = {p.stem: p for p in sorted(PLANS_DIR.glob("*.json"))}
    plans.setdefault(configured.stem, configured)
    return plans


def resolve_plan(name: str | None, configured: Path) -> Path:
    """The plan file for a ``plan`` query value (a file stem, never a path: no file outside the list is read)."""
    if not name:
        return configured
    plans = plan_files(configured)
    if name not in plans:
        raise ConfigurationError(
            f"unknown plan {name!r}", hint=f"Choose one of: {', '.join(plans)} (files in schemas/plans)."
        )
    return plans[name]


@lru_cache(maxsize=8)
def _catalog(url: str) -> Catalog:
    """One catalog (one connection pool) per URL for the life of the API server process."""
    from digitize.catalog import Catalog

    return Catalog(url)


def inputs(catalog_url: str) -> CoverageInputs:
    """The catalog's frames as recorded now (the dashboard shows the live figures; a report records its C)."""
    from digitize.coverage import CoverageInputs

    return CoverageInputs.from_catalog(_catalog(catalog_url), utc_now())


def compute_report(catalog_url: str, plan_path: Path, as_of: date) -> CoverageReport:
    """Coverage of the catalog at ``as_of`` against the plan, exactly as the published reports compute it."""
    from digitize import coverage

    return inputs(catalog_url).report(coverage.load_plan(plan_path), as_of)


# ----------------------------------------------------------------------------------------------- JSON


def json_value(value: Any) -> Any:
    """A pandas/numpy scalar as plain JSON: NaN, NaT and NA become null, midnight timestamps ISO dates."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        midnight = value.tzinfo is None and value.time() == datetime.min.time()
        return value.date().isoformat() if midnight else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: json_value(row[c]) for c in columns} for row in frame[list(columns)].to_dict("records")]


def plan_summary(report: CoverageReport, plan_name: str) -> dict[str, Any]:
    """What the figures are measured against: the plan, its file and the day."""
    plan = report.plan
    return {
        "plan": {
            "name": plan_name,
            "id": plan.id,
            "title_vi": plan.title_vi,
            "title_en": plan.title_en,
            "province": plan.province,
            "source_reference": plan.source_reference,
            "levels": [{"code": lv.code, "vi": lv.vi, "en": lv.en} for lv in plan.levels],
        },
        "as_of": report.as_of.isoformat(),
    }


def level_figures(report: CoverageReport) -> list[dict[str, Any]]:
    """Every indicator of the plan with its per-level figures (the HTML report's numbered tables)."""
    from digitize.coverage import report_rows

    rows = report_rows(report)
    rows = rows[rows["scope"] == "level"]
    out = []
    for status in report.indicators:
        mine = rows[(rows["indicator"] == status.id) & rows["computable"].astype(bool)]
        levels = []
        for row in mine.to_dict("records"):
            vi, en = report.plan.level_names(str(row["level"]))
            levels.append(
                {
                    "level": row["level"],
                    "name_vi": vi,
                    "name_en": en,
                    **{
                        k: json_value(row[k])
                        for k in ("numerator", "denominator", "coverage_pct", "target_pct", "met", "gap_points",
                                  "to_target")
                    },
                }
            )
        out.append(
            {
                "id": status.id,
                "title_vi": status.title_vi,
                "title_en": status.title_en,
                "computable": status.computable,
                "basis_vi": status.basis_vi,
                "basis_en": status.basis_en,
                "levels": levels,
            }
        )
    return out


AGENCY_COLUMNS = (
    "agency_code", "name", "level", "digitized", "valid", "coverage_pct", "target_pct", "met", "gap_points",
    "docs_to_target",
)
UNIT_COLUMNS = ("code", "name", "level", "documents_scanned", "running")
ASKED_AGENCY_COLUMNS = (
    "agency_code", "agency_name", "level", "not_asked", "dossiers", "reused_docs", "supplied_again_docs",
    "coverage_pct", "target_pct", "met", "gap_points", "dossiers_to_target",
)
DOSSIER_COLUMNS = (
    "new_dossier_code", "agency_code", "agency_name", "level", "first_at", "reused_docs", "supplied_again_docs",
    "not_asked",
)
"""Columns of a "not asked again" drill-down row (no holder ID)."""


def agency_figures(report: CoverageReport) -> list[dict[str, Any]]:
    """Still-valid results per agency valid at the day, laggards first (the report's order)."""
    return _records(report.by_agency, AGENCY_COLUMNS)


def unit_figures(report: CoverageReport) -> list[dict[str, Any]]:
    """Each one-stop unit counted by the ``units`` indicator and whether it runs the digitization."""
    return _records(report.units, UNIT_COLUMNS)


def asked_agency_figures(report: CoverageReport) -> list[dict[str, Any]]:
    """"Not asked again" per receiving office with dossiers in the period, laggards first ([] if not computable)."""
    return [] if report.asked_by_agency is None else _records(report.asked_by_agency, ASKED_AGENCY_COLUMNS)


def all_figures(report: CoverageReport, plan_name: str) -> dict[str, Any]:
    """Everything the dashboard shows, as one JSON document."""
    return {
        **plan_summary(report, plan_name),
        "indicators": level_figures(report),
        "agencies": agency_figures(report),
        "units": unit_figures(report),
        "not_asked_again_agencies": asked_agency_figures(report),
    }


Indicator = Literal["stock", "flow", "not_asked_again"]


def _drill_frame(catalog_url: str, as_of: date, *, level: str | None, agency: str | None, part: Part,
                 indicator: Indicator) -> tuple[pd.DataFrame, Sequence[str]]:
    """Every register row (dossier, for not_asked_again) behind a figure, and the columns shown of it."""
    from digitize.coverage import UNCOUNTED_COLUMNS, drill_down_dossiers

    if indicator not in ("stock", "flow", "not_asked_again"):
        raise ConfigurationError(
            f"drill-down indicator must be stock, flow or not_asked_again, not {indicator!r}",
            hint="Only these indicators count rows one can list.",
        )
    if indicator == "not_asked_again":
        read = inputs(catalog_url)
        rows = drill_down_dossiers(read.agencies, read.needs, as_of, level=level, agency=agency, part=part)
        return rows, DOSSIER_COLUMNS
    rows = inputs(catalog_url).drill_down(as_of, level=level, agency=agency, part=part, indicator=indicator)
    return rows, (UNCOUNTED_COLUMNS if part == "uncounted" else DRILL_DOWN_COLUMNS)


def drill_down_rows(
    catalog_url: str,
    as_of: date,
    *,
    level: str | None = None,
    agency: str | None = None,
    part: Part = "denominator",
    indicator: Indicator = "stock",
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """One page of the register rows (dossiers, for not_asked_again) behind a level's or an agency's figure."""
    if offset < 0 or not 1 <= limit <= DRILL_DOWN_MAX:
        raise ConfigurationError(
            f"drill-down page offset={offset} limit={limit} is out of range",
            hint=f"Use offset >= 0 and 1 <= limit <= {DRILL_DOWN_MAX}.",
        )
    rows, columns = _drill_frame(catalog_url, as_of, level=level, agency=agency, part=part, indicator=indicator)
    return {
        "as_of": as_of.isoformat(),
        "indicator": indicator,
        "part": part,
        "level": level,
        "agency": agency,
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "columns": list(columns),
        "rows": _records(rows.iloc[offset : offset + limit], columns),
    }


def drill_down_all(
    catalog_url: str, as_of: date, *, level: str | None = None, agency: str | None = None,
    part: Part = "denominator", indicator: Indicator = "stock",
) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, every row) behind a figure, for the CSV download (no paging: the file is the whole list)."""
    rows, columns = _drill_frame(catalog_url, as_of, level=level, agency=agency, part=part, indicator=indicator)
    return list(columns), _records(rows, columns)


def plan_levels(plan_path: Path) -> list[tuple[str, str, str]]:
    """(code, Vietnamese name, English name) of each administrative level of the plan."""
    from digitize import coverage

    return [(lv.code, lv.vi, lv.en) for lv in coverage.load_plan(plan_path).levels]


# ----------------------------------------------------------------------------------------------- page


_TOOLBAR_CSS = """
.dash{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:end;padding:.6rem .8rem;margin:0 0 1rem;
background:#f4f6f8;border:1px solid #dde3e8;border-radius:6px;font-size:.9rem}
.dash label{display:flex;flex-direction:column;gap:.15rem;color:#444}
.dash input,.dash select{font:inherit;padding:.2rem .3rem}
.dash a{color:#1f4e79}
"""


def _asked_links(report: CoverageReport, query: Mapping[str, str]) -> str:
    """Toolbar links to the dossiers whose holders were asked again, per level (none when not computable)."""
    if report.asked_by_level is None:
        return ""
    links = " · ".join(
        '<a href="missing?'
        + html.escape(urlencode({**query, "indicator": "not_asked_again", "level": lv.code, "part": "missing"}))
        + f'"><span class="vi">{html.escape(lv.vi)}</span><span class="en">{html.escape(lv.en)}</span></a>'
        for lv in report.plan.levels
    )
    return (
        '<span><span class="vi">Hồ sơ phải nộp lại giấy tờ:</span>'
        f'<span class="en">Dossiers asked again for papers:</span> {links}</span>'
    )


def dashboard_html(report: CoverageReport, *, plan_name: str, plans: Mapping[str, Path]) -> str:
    """``coverage.write_html``'s page (the same figures, byte for byte) with a toolbar to pick day and plan.

    Links are relative to the page, so they work wherever the plugin is mounted.
    """
    from digitize.coverage import write_html

    with tempfile.TemporaryDirectory(prefix="digitize-dashboard-") as scratch:
        path = Path(scratch) / "coverage.html"
        write_html(report, path)
        page = path.read_text(encoding="utf-8")
    day = report.as_of.isoformat()
    query = {"as_of": day, "plan": plan_name}
    options = "".join(
        f'<option value="{html.escape(name)}"{" selected" if name == plan_name else ""}>{html.escape(name)}</option>'
        for name in plans
    )
    drill = " · ".join(
        f'<a href="missing?{html.escape(urlencode({**query, "level": lv.code, "part": "missing"}))}">'
        f'<span class="vi">{html.escape(lv.vi)}</span><span class="en">{html.escape(lv.en)}</span></a>'
        for lv in report.plan.levels
    )
    toolbar = (
        '<form class="dash" id="dashboard-form" method="get" action="">'
        '<label><span class="vi">Số liệu đến ngày</span><span class="en">Figures as of</span>'
        f'<input type="date" name="as_of" value="{day}" required></label>'
        '<label><span class="vi">Kế hoạch</span><span class="en">Plan</span>'
        f'<select name="plan">{options}</select></label>'
        '<button type="submit"><span class="vi">Xem</span><span class="en">Show</span></button>'
        f'<a href="api/figures?{html.escape(urlencode(query))}">JSON</a>'
        '<span><span class="vi">Kết quả chưa số hóa:</span><span class="en">Results not yet digitized:</span> '
        f"{drill}</span>{_asked_links(report, query)}</form>"
    )
    head, sep, body = page.partition("<body>")
    if not sep:
        raise ConfigurationError("coverage.write_html produced no <body>", hint="Report this to IT staff.")
    head = head.replace("</style>", _TOOLBAR_CSS + "</style>", 1)
    return head + sep + toolbar + body
