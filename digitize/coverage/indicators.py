"""Coverage of the digitization against a provincial plan's targets, per administrative level and agency.

The plan's targets are data (``schemas/plans/*.json``, read by :mod:`digitize.coverage.plan`), and so are
the levels and the agencies: units are merged and abolished, other provinces have other plans. Everything
here is vectorised pandas so a register of a million results is counted in seconds. This module holds
the report (:class:`CoverageReport`) and the indicators' computations; the input frames are read by
:mod:`digitize.coverage.frames`, drill-downs live in :mod:`digitize.coverage.drilldown` and each output
format in its ``render_*`` module.

Indicators (ids used in the plan files):

- ``stock``: still-valid results digitized / still-valid results in the register;
- ``flow``: results issued in the year (per the register) that were digitized, signed and archived;
- ``units``: one-stop units that ran the digitization (scanned documents) / one-stop units;
- ``not_asked_again``: new dossiers received from 1 January to ``as_of`` whose needed papers the one-stop
  system looked up through the reuse API (the catalog's ``needs_frame()``): those where every paper reported
  was reused from a valid digitized copy / all those dossiers (one with any paper handed in again is not
  counted as "not asked again"), per level and agency of the receiving office. Dossiers never looked up
  are invisible to the catalog; with no lookup in the period the indicator is not computable, never 0 %.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from digitize.clock import end_of_business_day
from digitize.coverage.accounting import accounting_by_level, uncounted_documents
from digitize.coverage.frames import (
    AGENCY_COLUMNS,
    ARCHIVED_COLUMNS,
    NEEDS_COLUMNS,
    REGISTER_COLUMNS,
    SCAN_COLUMNS,
    CoverageOptions,
    require_columns,
    to_day,
    to_local_time,
    valid_agencies,
)
from digitize.coverage.plan import SCOPE_ALL, Indicator, Plan
from digitize.coverage.provenance import code_version, inputs_sha256, latest_recorded
from digitize.coverage.rows import all_register_rows, register_placements, select_rows
from digitize.coverage.succession import SUCCESSOR_COLUMNS

# ---------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class IndicatorStatus:
    """Whether an indicator of the plan could be computed from the imported data, and on what basis."""

    id: str
    """Indicator id (``stock``, ``flow``, ``units``, ``not_asked_again``)."""

    title_vi: str
    """Vietnamese title."""

    title_en: str
    """English title."""

    computable: bool
    """False when the data cannot measure it: then no figure is given at all."""

    basis_vi: str
    """What was counted (or why nothing could be), in Vietnamese."""

    basis_en: str
    """The same in English."""


@dataclass(frozen=True, eq=False)
class CoverageReport:
    """Coverage figures at one date against one plan; the frames are what renderers and the UI show."""

    plan: Plan
    """The plan the targets come from."""

    as_of: date
    """Day the figures describe (inclusive)."""

    by_level: pd.DataFrame
    """Stock per level: level, digitized, valid, coverage_pct, target_pct, met, gap_points, docs_to_target."""

    by_agency: pd.DataFrame
    """Stock per agency valid at ``as_of``, laggards first."""

    units_by_level: pd.DataFrame
    """One-stop units running the digitization per level: level, running, units, coverage_pct, target_pct,
    met, gap_points, units_to_target."""

    units: pd.DataFrame
    """Each one-stop unit counted: code, name, level, documents_scanned, running."""

    flow_by_level: pd.DataFrame | None
    """Results issued this year digitized, per level (level, digitized, resolved, …); None if not computable."""

    indicators: tuple[IndicatorStatus, ...]
    """Status of every indicator the plan sets, in the plan's order."""

    detail: pd.DataFrame = field(repr=False)
    """The register rows behind the stock figures (denominator), with ``digitized`` and ``document_code``."""

    asked_by_level: pd.DataFrame | None = None
    """Not asked again per level of the receiving office, then ``all``: level, not_asked, dossiers,
    reused_docs, supplied_again_docs, coverage_pct, target_pct, met, gap_points, dossiers_to_target;
    None if not computable."""

    asked_by_agency: pd.DataFrame | None = None
    """The same per receiving agency with at least one dossier in the period, laggards first."""

    asked_detail: pd.DataFrame | None = field(default=None, repr=False)
    """One row per dossier counted: new_dossier_code, agency_code, agency_name, level, first_at (local),
    reused_docs, supplied_again_docs, not_asked."""

    documents: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    """Every document archived by the end of ``as_of`` with its level and, when not counted, its ``reason``
    (:mod:`digitize.coverage.accounting`)."""

    accounting: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per level: archived, counted, not_counted documents (archived = counted + not counted)."""

    succession: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    """The still-valid register rows counted through succession: register_id, registered_agency, agency_code,
    agency_name, level, via, digitized, document_code."""

    cutoff: datetime | None = None
    """The data cut-off: facts as recorded up to this instant (aware UTC); None for frames given by hand."""

    latest_recorded_at: datetime | None = None
    """The newest recorded time of any fact read (None when the frames do not say)."""

    inputs_sha256: str = ""
    """SHA-256 of the canonical form of every frame read (:func:`~digitize.coverage.provenance.inputs_sha256`)."""

    code_version: str = ""
    """The code that computed the figures (package version and git commit)."""

    @property
    def plan_id(self) -> str:
        return self.plan.id

    @property
    def uncounted(self) -> pd.DataFrame:
        """The archived documents not counted, each with its reason."""
        if not len(self.documents):
            return self.documents
        return self.documents[self.documents["reason"].notna()].reset_index(drop=True)

    @property
    def includes_data_recorded_after(self) -> datetime | None:
        """The end of ``as_of`` when facts recorded after it were read (a report (D, now)), else None."""
        end = end_of_business_day(self.as_of)
        return end if self.latest_recorded_at is not None and self.latest_recorded_at > end else None

    def provenance(self) -> dict[str, str]:
        """The fields every format records, as text (see :mod:`digitize.coverage.provenance`)."""
        late = self.includes_data_recorded_after
        return {
            "as_of": self.as_of.isoformat(),
            "cutoff": self.cutoff.isoformat() if self.cutoff else "",
            "plan_id": self.plan.id,
            "plan_sha256": self.plan.sha256,
            "code_version": self.code_version,
            "inputs_sha256": self.inputs_sha256,
            "latest_recorded_at": self.latest_recorded_at.isoformat() if self.latest_recorded_at else "",
            "includes_data_recorded_after": late.isoformat() if late else "",
        }

    def status(self, indicator_id: str) -> IndicatorStatus | None:
        """Status of one indicator, None when the plan does not set it."""
        return next((s for s in self.indicators if s.id == indicator_id), None)


# ------------------------------------------------------------------------------------------- computing


def _score(frame: pd.DataFrame, num: str, den: str, targets: pd.Series, to_target: str) -> pd.DataFrame:
    """Add coverage_pct, target_pct, met, gap_points and ``to_target`` (items still needed) to ``frame``."""
    n = frame[num].to_numpy(dtype=float)
    d = frame[den].to_numpy(dtype=float)
    t = targets.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.where(d > 0, n * 100.0 / d, np.nan)
    # round before ceil so that 30 % of 10 is 3, not 4 (0.3 * 10 = 3.0000000000000004)
    needed = np.ceil(np.round(t * d / 100.0, 9))
    have_target = ~np.isnan(t)
    measurable = have_target & (d > 0)
    met = pd.array(np.where(measurable, n >= needed, False), dtype="boolean")
    met[~measurable] = pd.NA
    gap = np.where(measurable, np.clip(t - cov, 0.0, None), np.nan)
    still = pd.array(np.where(have_target, np.maximum(needed - n, 0), 0), dtype="Int64")
    still[~have_target] = pd.NA
    return frame.assign(coverage_pct=cov, target_pct=t, met=met, gap_points=gap, **{to_target: still})


def _level_order(plan: Plan, present: Iterable[str]) -> list[str]:
    """The plan's levels in its order, then any other level found in the data, alphabetically."""
    ordered = [lv.code for lv in plan.levels]
    return ordered + sorted(set(present) - set(ordered))


def _targets(plan: Plan, indicator_id: str, scopes: pd.Series, year: int) -> pd.Series:
    """Each scope's target; a level the plan sets none for takes the plan's ``all`` target (not split by level)."""
    indicator = plan.indicator(indicator_id)

    def target(scope: str) -> float | None:
        if indicator is None:
            return None
        own = indicator.target(scope, year)
        return own if own is not None else indicator.target(SCOPE_ALL, year)

    table = {s: target(s) for s in scopes.unique()}
    return scopes.map(lambda s: np.nan if table[s] is None else table[s]).astype(float)


def _per_level(
    rows: pd.DataFrame, plan: Plan, indicator_id: str, year: int, den_name: str, to_target: str
) -> pd.DataFrame:
    """Register rows counted per level (every level of the plan, even with none) and scored."""
    grouped = rows.groupby("level", sort=False)["digitized"].agg(["sum", "size"])
    levels = _level_order(plan, grouped.index)
    grouped = grouped.reindex(levels, fill_value=0)
    frame = pd.DataFrame(
        {
            "level": pd.Series(levels, dtype=object),
            "digitized": grouped["sum"].to_numpy(dtype=np.int64),
            den_name: grouped["size"].to_numpy(dtype=np.int64),
        }
    )
    return _score(frame, "digitized", den_name, _targets(plan, indicator_id, frame["level"], year), to_target)


def _per_agency(rows: pd.DataFrame, valid: pd.DataFrame, plan: Plan, year: int) -> pd.DataFrame:
    """Stock per agency valid at the day (those with no result too), laggards first."""
    grouped = rows.groupby("agency_code", sort=False)["digitized"].agg(["sum", "size"])
    frame = pd.DataFrame({"agency_code": valid["code"], "name": valid["name"], "level": valid["level"]})
    frame["digitized"] = frame["agency_code"].map(grouped["sum"]).fillna(0).astype(np.int64)
    frame["valid"] = frame["agency_code"].map(grouped["size"]).fillna(0).astype(np.int64)
    frame = _score(frame, "digitized", "valid", _targets(plan, "stock", frame["level"], year), "docs_to_target")
    frame = frame.sort_values(
        ["gap_points", "coverage_pct", "agency_code"], ascending=[False, True, True], na_position="last", kind="stable"
    )
    return frame.reset_index(drop=True)


def _units(
    valid: pd.DataFrame, scans: pd.DataFrame, plan: Plan, as_of: date, options: CoverageOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per level, per unit) of the one-stop units valid on ``as_of`` that scanned enough archived versions
    in the window (an abolished unit has left the denominator after its end date)."""
    require_columns(scans, ("scanned_at", "archived_at"), "scans")
    indicator = plan.indicator("units")
    units = valid[valid["one_stop"]]
    if indicator is None or indicator.excludes_remote:
        units = units[~units["remote"]]
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    when = to_local_time(scans["archived_at"], options.timezone)
    mask = scans["scanned_at"].notna() & (when < end)
    if options.units_window_days is not None:
        mask &= when >= end - pd.Timedelta(days=options.units_window_days)
    counts = scans.loc[mask.to_numpy(), "scanned_at"].astype(str).value_counts()
    scanned = units["code"].map(counts).fillna(0).astype(np.int64)
    detail = pd.DataFrame(
        {
            "code": units["code"],
            "name": units["name"],
            "level": units["level"],
            "documents_scanned": scanned,
            "running": scanned >= options.min_scanned_documents,
        }
    ).reset_index(drop=True)
    grouped = detail.groupby("level", sort=False)["running"].agg(["sum", "size"])
    levels = _level_order(plan, grouped.index)
    grouped = grouped.reindex(levels, fill_value=0)
    frame = pd.DataFrame(
        {
            "level": pd.Series(levels, dtype=object),
            "running": grouped["sum"].to_numpy(dtype=np.int64),
            "units": grouped["size"].to_numpy(dtype=np.int64),
        }
    )
    by_level = _score(frame, "running", "units", _targets(plan, "units", frame["level"], as_of.year), "units_to_target")
    return by_level, detail


def _agency_at(agencies: pd.DataFrame, codes: pd.Series, days: pd.Series) -> pd.DataFrame:
    """For each (code, day): the agency's code, name and level valid that day (all None when there is none)."""
    table = pd.DataFrame(
        {
            "code": agencies["code"].astype(str).to_numpy(),
            "name": agencies["name"].astype(str).to_numpy(),
            "level": agencies["level"].astype(str).to_numpy(),
            "start": to_day(agencies["valid_from"]).to_numpy(),
            "end": to_day(agencies["valid_to"]).to_numpy(),
        }
    )
    asked = pd.DataFrame({"row": np.arange(len(codes)), "code": codes.to_numpy(dtype=object), "day": days.to_numpy()})
    both = asked.merge(table, on="code", how="inner")
    ok = (both["start"].isna() | (both["start"] <= both["day"])) & (both["end"].isna() | (both["end"] >= both["day"]))
    both = both[ok.to_numpy()].sort_values(["row", "start"], kind="stable").drop_duplicates("row", keep="last")
    out = pd.DataFrame({"code": None, "name": None, "level": None}, index=np.arange(len(codes)), dtype=object)
    rows = both["row"].to_numpy()
    for column in ("code", "name", "level"):
        out.loc[rows, column] = both[column].to_numpy(dtype=object)
    return out


def asked_dossiers(needs: pd.DataFrame, agencies: pd.DataFrame, as_of: date, options: CoverageOptions
                    ) -> pd.DataFrame:
    """Dossiers with a paper looked up from 1 January to the end of ``as_of`` (local), and where they count.

    A dossier counts for the receiving office (the agency part of its Circular 01/2018 code) as it was on the
    dossier's first lookup; when that office is not in the agencies table, for the agency holding the first
    paper reused. A dossier is "not asked again" when none of its papers had to be handed in again.
    """
    require_columns(needs, NEEDS_COLUMNS, "needs")
    day = to_local_time(needs["at"], options.timezone).dt.normalize()
    mask = (day >= pd.Timestamp(as_of.year, 1, 1)) & (day <= pd.Timestamp(as_of))
    rows = needs[mask.to_numpy()].assign(day=day[mask.to_numpy()])
    rows = rows.sort_values("at", kind="stable")
    again = rows["outcome"] == "supplied_again"
    grouped = rows.assign(again=again, reused=~again).groupby("new_dossier_code", sort=True)
    dossiers = pd.DataFrame(
        {
            "first_at": grouped["day"].min(),
            "reused_docs": grouped["reused"].sum().astype(np.int64),
            "supplied_again_docs": grouped["again"].sum().astype(np.int64),
            "holding_agency": grouped["holding_agency"].first(),
        }
    ).reset_index()
    receiving = dossiers["new_dossier_code"].astype(str).str.split("-").str[0]
    office = _agency_at(agencies, receiving, dossiers["first_at"])
    holder = _agency_at(agencies, dossiers["holding_agency"].astype(object), dossiers["first_at"])
    office = office.where(office["code"].notna(), holder)
    return pd.DataFrame(
        {
            "new_dossier_code": dossiers["new_dossier_code"].astype(object),
            "agency_code": office["code"],
            "agency_name": office["name"],
            "level": office["level"],
            "first_at": dossiers["first_at"],
            "reused_docs": dossiers["reused_docs"],
            "supplied_again_docs": dossiers["supplied_again_docs"],
            "not_asked": dossiers["supplied_again_docs"].to_numpy() == 0,
        }
    )


def _asked_figures(detail: pd.DataFrame, plan: Plan, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per level then ``all``, per agency laggards first) of the dossiers counted by "not asked again"."""
    sums = {"not_asked": ("not_asked", "sum"), "dossiers": ("not_asked", "size"),
            "reused_docs": ("reused_docs", "sum"), "supplied_again_docs": ("supplied_again_docs", "sum")}
    attributed = detail[detail["level"].notna().to_numpy()]
    grouped = attributed.groupby("level", sort=False).agg(**sums)
    levels = _level_order(plan, grouped.index)
    grouped = grouped.reindex(levels, fill_value=0)
    total = detail.agg({"not_asked": ["sum", "size"], "reused_docs": ["sum"], "supplied_again_docs": ["sum"]})
    frame = pd.DataFrame(
        {
            "level": pd.Series([*levels, SCOPE_ALL], dtype=object),
            "not_asked": np.append(grouped["not_asked"].to_numpy(dtype=np.int64), int(total.loc["sum", "not_asked"])),
            "dossiers": np.append(grouped["dossiers"].to_numpy(dtype=np.int64), len(detail)),
            "reused_docs": np.append(grouped["reused_docs"].to_numpy(dtype=np.int64),
                                     int(total.loc["sum", "reused_docs"])),
            "supplied_again_docs": np.append(grouped["supplied_again_docs"].to_numpy(dtype=np.int64),
                                             int(total.loc["sum", "supplied_again_docs"])),
        }
    )
    by_level = _score(frame, "not_asked", "dossiers", _targets(plan, "not_asked_again", frame["level"], year),
                      "dossiers_to_target")
    per = attributed.groupby(["agency_code", "agency_name", "level"], sort=True).agg(**sums).reset_index()
    by_agency = _score(per.astype({c: np.int64 for c in sums}), "not_asked", "dossiers",
                       _targets(plan, "not_asked_again", per["level"], year), "dossiers_to_target")
    by_agency = by_agency.sort_values(
        ["gap_points", "coverage_pct", "agency_code"], ascending=[False, True, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    return by_level, by_agency


def compute_coverage(
    agencies: pd.DataFrame,
    register: pd.DataFrame,
    archived: pd.DataFrame,
    plan: Plan,
    as_of: date,
    *,
    needs: pd.DataFrame | None = None,
    scans: pd.DataFrame | None = None,
    successors: pd.DataFrame | None = None,
    cutoff: datetime | None = None,
    options: CoverageOptions | None = None,
) -> CoverageReport:
    """Count every indicator of ``plan`` at the end of day ``as_of`` against its target for that year.

    The frames are the catalog's as recorded up to ``cutoff`` (the catalog cuts them; ``cutoff`` is
    recorded in the report). A register row counts once however many documents or versions link to it; a
    document counts from its first version's archiving (``digitized_at``) by the end of ``as_of``;
    agencies count only while valid, an abolished one's rows at its successors' (``successors``).
    ``scans`` are the versions made from a new scan (indicator 3); without them each archived row is taken
    as its own scan. ``needs`` are the recorded reuse events; without them "not asked again" is not
    computable.
    """
    options = options or CoverageOptions()
    require_columns(agencies, AGENCY_COLUMNS, "agencies")
    require_columns(archived, ARCHIVED_COLUMNS, "archived")
    scans = archived[list(SCAN_COLUMNS)] if scans is None else scans
    read = _facts({"agencies": (agencies, AGENCY_COLUMNS), "register": (register, REGISTER_COLUMNS),
                   "archived": (archived, ARCHIVED_COLUMNS), "scans": (scans, SCAN_COLUMNS),
                   "successors": (successors, SUCCESSOR_COLUMNS), "needs": (needs, NEEDS_COLUMNS)})
    valid = valid_agencies(agencies, as_of)  # once per report, like where each register row counts
    placed = register_placements(register, valid, successors, as_of)
    rows = all_register_rows(agencies, register, archived, as_of, options, successors, valid=valid, placed=placed)
    stock = select_rows(rows, as_of, "stock")
    documents = uncounted_documents(archived, register, rows, stock, valid, placed, successors, as_of, options)
    by_level = _per_level(stock, plan, "stock", as_of.year, "valid", "docs_to_target")
    flow_rows = select_rows(rows, as_of, "flow")
    del rows
    asked_detail = asked_dossiers(needs, agencies, as_of, options) if needs is not None else None
    asked_by_level, asked_by_agency = (
        _asked_figures(asked_detail, plan, as_of.year)
        if asked_detail is not None and len(asked_detail)
        else (None, None)
    )
    units_by_level, units = _units(valid, scans, plan, as_of, options)
    counts = (len(stock), len(flow_rows), len(units), None if asked_detail is None else len(asked_detail))
    return CoverageReport(
        plan=plan,
        as_of=as_of,
        by_level=by_level,
        by_agency=_per_agency(stock, valid, plan, as_of.year),
        units_by_level=units_by_level,
        units=units,
        flow_by_level=(
            _per_level(flow_rows, plan, "flow", as_of.year, "resolved", "docs_to_target") if len(flow_rows) else None
        ),
        indicators=tuple(_status(ind, as_of, options, *counts) for ind in plan.indicators),
        detail=stock,
        asked_by_level=asked_by_level,
        asked_by_agency=asked_by_agency,
        asked_detail=asked_detail,
        documents=documents,
        accounting=accounting_by_level(documents, _level_order(plan, ())),
        succession=stock[stock["via"].notna().to_numpy()][list(SUCCESSION_COLUMNS)].reset_index(drop=True),
        cutoff=cutoff,
        latest_recorded_at=latest_recorded(read),
        inputs_sha256=inputs_sha256(read),
        code_version=code_version(),
    )


def _facts(frames: dict[str, tuple[pd.DataFrame | None, tuple[str, ...]]]) -> dict[str, pd.DataFrame | None]:
    """The columns of each frame coverage reads (with ``recorded_at`` and a register row's ``successor_code``):
    what the inputs' hash covers, so database ids, which a catalog rebuild renumbers, do not change it."""
    out: dict[str, pd.DataFrame | None] = {}
    for name, (frame, columns) in frames.items():
        wanted = (*columns, "successor_code", "recorded_at")
        out[name] = None if frame is None else frame[[c for c in dict.fromkeys(wanted) if c in frame.columns]]
    return out


SUCCESSION_COLUMNS = (
    "register_id", "registered_agency", "agency_code", "agency_name", "level", "via", "digitized", "document_code",
)


def _status(
    ind: Indicator, as_of: date, options: CoverageOptions, n_stock: int, n_flow: int, n_units: int,
    n_dossiers: int | None,
) -> IndicatorStatus:
    """Say what was counted, or why an indicator has no figure (no denominator, or no data for it at all)."""
    day = as_of.isoformat()
    kinds = "/".join(options.result_kinds)
    if ind.id == "stock":
        ok = n_stock > 0
        vi = (
            f"Kết quả ({kinds}) còn hiệu lực ngày {day} trong sổ đăng ký, đã lưu trữ đến hết ngày {day}."
            if ok
            else "Sổ đăng ký không có kết quả nào còn hiệu lực: chưa nhập sổ đăng ký."
        )
        en = (
            f"Results ({kinds}) in the register still valid on {day}, archived by the end of {day}."
            if ok
            else "The register holds no still-valid result: import the register first."
        )
    elif ind.id == "flow":
        ok = n_flow > 0
        vi = (
            f"Kết quả cấp từ 01/01/{as_of.year} đến {day} theo sổ đăng ký (ước tính hồ sơ giải quyết trong năm)."
            if ok
            else f"Sổ đăng ký không có kết quả nào cấp trong năm {as_of.year}: không tính được."
        )
        en = (
            f"Results issued 1 Jan–{day} per the register (a proxy for dossiers resolved in the year)."
            if ok
            else f"The register lists no result issued in {as_of.year}: not computable from the imported data."
        )
    elif ind.id == "units":
        ok = n_units > 0
        window = f"{options.units_window_days} ngày" if options.units_window_days else "toàn bộ thời gian"
        window_en = f"{options.units_window_days} days" if options.units_window_days else "all time"
        vi = (
            f"Bộ phận Một cửa đã quét ≥ {options.min_scanned_documents} tài liệu được lưu trữ trong {window} "
            "đến ngày báo cáo" + (", trừ xã vùng sâu, vùng xa." if ind.excludes_remote else ".")
            if ok
            else "Danh sách cơ quan không có Bộ phận Một cửa nào: không tính được."
        )
        en = (
            f"One-stop units that scanned ≥ {options.min_scanned_documents} archived document(s) in the "
            f"{window_en} up to the day" + (", remote communes excluded." if ind.excludes_remote else ".")
            if ok
            else "No one-stop unit in the agencies table: not computable from the imported data."
        )
    elif n_dossiers is None:
        ok = False
        vi = "Không tính được: báo cáo này không đọc các lượt tái sử dụng ghi nhận qua API."
        en = "Not computable: this report was computed without the reuse records of the API."
    else:
        ok = n_dossiers > 0
        vi = (
            f"Hồ sơ tiếp nhận có giấy tờ được tra cứu qua API tái sử dụng từ 01/01/{as_of.year} đến hết ngày {day} "
            "(theo cơ quan tiếp nhận trong mã hồ sơ): tử số = hồ sơ mà mọi giấy tờ cần đều được tái sử dụng từ bản "
            "số hóa còn hiệu lực; mẫu số = hồ sơ có ít nhất một giấy tờ được ghi nhận (tái sử dụng hoặc phải nộp "
            "lại). Hồ sơ không tra cứu qua API không được tính. Chỉ tiêu của Kế hoạch không chia theo cấp nên áp "
            "dụng cho mọi cấp; \"Toàn tỉnh\" gồm cả hồ sơ của cơ quan không có trong danh sách cơ quan."
            if ok
            else f"Không có lượt tái sử dụng hay nộp lại giấy tờ nào được ghi nhận từ 01/01/{as_of.year} đến {day}: "
            "không tính được."
        )
        en = (
            f"New dossiers whose papers were looked up through the reuse API, 1 Jan–{day} (by the receiving office "
            "in the dossier code): numerator = dossiers where every paper reported was reused from a valid "
            "digitized copy; denominator = dossiers with at least one paper reported (reused or handed in again). "
            "Dossiers never looked up are not counted. The plan's target is not split by level: it applies to every "
            "level; \"All levels\" also counts dossiers whose office is not in the agencies table."
            if ok
            else f"No reuse or paper handed in again was recorded 1 Jan–{day}: not computable from the recorded data."
        )
    return IndicatorStatus(
        id=ind.id, title_vi=ind.title_vi, title_en=ind.title_en, computable=ok, basis_vi=vi, basis_en=en
    )
