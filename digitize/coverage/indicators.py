"""Coverage of the digitization against a provincial plan's targets, per administrative level and agency.

The plan's targets are data (``schemas/plans/*.json``), and so are the levels and the agencies:
units are merged and abolished, other provinces have other plans. Everything here is vectorised
pandas so a register of a million results is counted in seconds.

Indicators (ids used in the plan files):

- ``stock``: still-valid results digitized / still-valid results in the register;
- ``flow``: results issued in the year (per the register) that were digitized, signed and archived;
- ``units``: one-stop units that ran the digitization (scanned documents) / one-stop units;
- ``not_asked_again``: new dossiers received from 1 January to ``as_of`` whose needed papers the one-stop
  system looked up through the reuse API (``digitize.api.app.needs_frame``): those where every paper reported
  was reused from a valid digitized copy / all those dossiers (one with any paper handed in again is not
  counted as "not asked again"), per level and agency of the receiving office. Dossiers never looked up
  are invisible to the catalog; with no lookup in the period the indicator is not computable, never 0 %.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema
import numpy as np
import pandas as pd

from digitize.config import REPO_ROOT
from digitize.errors import ConfigurationError

PLAN_SCHEMA_PATH = REPO_ROOT / "schemas" / "plan.schema.json"
SCOPE_ALL = "all"
EXCEL_MAX_ROWS = 1_048_576

AGENCY_COLUMNS = (
    "code",
    "name",
    "level",
    "parent_code",
    "remote",
    "one_stop",
    "valid_from",
    "valid_to",
    "successor_code",
)
REGISTER_COLUMNS = (
    "register_id",
    "agency_code",
    "procedure_code",
    "dossier_code",
    "title",
    "issued_date",
    "valid_until",
    "holder_id",
)
ARCHIVED_COLUMNS = (
    "code",
    "agency_code",
    "kind",
    "register_id",
    "dossier_code",
    "issued_date",
    "valid_until",
    "archived_at",
    "scanned_at",
    "version",
)

NEEDS_COLUMNS = ("new_dossier_code", "outcome", "holder_id", "holding_agency", "document", "at")
Part = Literal["numerator", "denominator", "missing"]


# --------------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Level:
    """An administrative level as the plan names it."""

    code: str
    """Value of ``agencies.level`` this level matches (e.g. ``province``)."""

    vi: str
    """Vietnamese name shown in reports (e.g. ``Cấp tỉnh``)."""

    en: str
    """English name shown in reports."""


@dataclass(frozen=True)
class Indicator:
    """One indicator of the plan with its yearly targets per level."""

    id: str
    """What is measured: ``stock``, ``flow``, ``units`` or ``not_asked_again``."""

    title_vi: str
    """Vietnamese title, as in the plan."""

    title_en: str
    """English title."""

    source: str
    """Sections of the plan the targets come from."""

    rule: str
    """The rule as the plan states it (yearly numbers may be derived from it)."""

    note: str
    """How the numbers were transcribed or derived."""

    excludes_remote: bool
    """Units flagged remote are left out (the plan's "trừ các xã vùng sâu, vùng xa")."""

    targets: Mapping[str, Mapping[int, float]]
    """Scope (level code or ``all``) → year → target percentage (0–100)."""

    def target(self, scope: str, year: int) -> float | None:
        """Target for ``year``: the latest year defined at or before it (clamped), None before the first."""
        years = self.targets.get(scope)
        if not years:
            return None
        eligible = [y for y in years if y <= year]
        return float(years[max(eligible)]) if eligible else None


@dataclass(frozen=True)
class Plan:
    """A provincial plan's digitization targets, loaded from ``schemas/plans/*.json``."""

    id: str
    """Number and notation of the plan (e.g. ``155/KH-UBND``)."""

    title_vi: str
    """Vietnamese title."""

    title_en: str
    """English title."""

    province: str
    """Province the plan applies to."""

    issuer: str
    """Authority that issued the plan."""

    issued: date
    """Date of issue."""

    source_reference: str
    """Citation of the plan text the targets were transcribed from."""

    levels: tuple[Level, ...]
    """Administrative levels, in report order."""

    indicators: tuple[Indicator, ...]
    """Indicators with their targets."""

    def indicator(self, indicator_id: str) -> Indicator | None:
        """The indicator with this id, or None when the plan sets no such target."""
        return next((i for i in self.indicators if i.id == indicator_id), None)

    def level_names(self, code: str) -> tuple[str, str]:
        """(Vietnamese, English) names of a level; the raw code for levels the plan does not name."""
        if code == SCOPE_ALL:
            return ("Toàn tỉnh", "All levels")
        level = next((lv for lv in self.levels if lv.code == code), None)
        return (level.vi, level.en) if level else (code, code)


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file; any problem is a ConfigurationError naming the file and the field."""
    path = Path(path)
    hint = f"Correct {path} so it matches schemas/plan.schema.json (see schemas/plans/tien-giang-155-2021.json)."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"plan file {path} does not exist", hint="Set DIGITIZE_PLAN to a file in schemas/plans/."
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"plan file {path} is not valid UTF-8 JSON: {exc}", hint=hint) from exc
    schema = json.loads(PLAN_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_json_path(e.absolute_path)}: {e.message}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ConfigurationError(f"plan file {path} is invalid: " + "; ".join(lines) + more, hint=hint)
    levels = tuple(Level(code=lv["code"], vi=lv["vi"], en=lv["en"]) for lv in data["levels"])
    codes = [lv.code for lv in levels]
    problems = [f"level {c!r} declared twice" for c in sorted(set(codes)) if codes.count(c) > 1]
    problems += [f"level code {SCOPE_ALL!r} is reserved" for c in codes if c == SCOPE_ALL]
    ids = [i["id"] for i in data["indicators"]]
    problems += [f"indicator {i!r} declared twice" for i in sorted(set(ids)) if ids.count(i) > 1]
    for ind in data["indicators"]:
        problems += [
            f"indicators[{ind['id']}].targets: scope {s!r} is not a declared level"
            for s in ind["targets"]
            if s != SCOPE_ALL and s not in codes
        ]
    if problems:
        raise ConfigurationError(f"plan file {path} is inconsistent: " + "; ".join(problems), hint=hint)
    indicators = tuple(
        Indicator(
            id=ind["id"],
            title_vi=ind["title"]["vi"],
            title_en=ind["title"]["en"],
            source=ind["source"],
            rule=ind.get("rule", ""),
            note=ind.get("note", ""),
            excludes_remote=bool(ind.get("excludes_remote")),
            targets=MappingProxyType(
                {
                    scope: MappingProxyType({int(y): float(v) for y, v in years.items()})
                    for scope, years in ind["targets"].items()
                }
            ),
        )
        for ind in data["indicators"]
    )
    return Plan(
        id=data["id"],
        title_vi=data["title"]["vi"],
        title_en=data["title"]["en"],
        province=data["province"],
        issuer=data["issuer"],
        issued=date.fromisoformat(data["issued"]),
        source_reference=data["source"]["reference"],
        levels=levels,
        indicators=indicators,
    )


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


# --------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class CoverageOptions:
    """How the catalog's records are counted; defaults follow the plan's wording."""

    result_kinds: tuple[str, ...] = ("KQ",)
    """Archived document kinds that digitize a register result (``TP`` dossier parts do not)."""

    min_scanned_documents: int = 1
    """A one-stop unit runs the digitization when it scanned at least this many archived documents."""

    units_window_days: int | None = 365
    """Units count as running if they scanned within this many days up to ``as_of``; None = ever."""

    timezone: str = "Asia/Ho_Chi_Minh"
    """Time-zone-aware ``archived_at`` values are converted to this zone before comparing with the day."""


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

    @property
    def plan_id(self) -> str:
        return self.plan.id

    def status(self, indicator_id: str) -> IndicatorStatus | None:
        """Status of one indicator, None when the plan does not set it."""
        return next((s for s in self.indicators if s.id == indicator_id), None)


# ------------------------------------------------------------------------------------------ normalising


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"{what} frame lacks columns {missing}",
            hint="Build the frames with Catalog.agencies_frame/register_frame/archived_frame.",
        )


def _day(values: pd.Series) -> pd.Series:
    """Dates (date objects, strings or timestamps) as naive midnight timestamps; None/NaN → NaT."""
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out.dt.normalize()


def _instant(values: pd.Series, tz: str) -> pd.Series:
    """Datetimes as naive local timestamps in ``tz`` (aware values converted, naive ones taken as local)."""
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert(tz).dt.tz_localize(None)
    return out


def _flag(values: pd.Series) -> pd.Series:
    """Booleans from bools, 0/1 or 'true'/'false' text; missing → False."""
    if values.dtype == bool:
        return values
    text = values.astype("object").where(values.notna(), "false").astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "yes", "x", "t", "y"])


def _valid_agencies(agencies: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Agencies valid at ``as_of``: code, name, level, remote, one_stop (one row per code)."""
    _require(agencies, ("code", "name", "level", "remote", "one_stop", "valid_from", "valid_to"), "agencies")
    agencies = agencies.reset_index(drop=True)
    day = pd.Timestamp(as_of)
    start, end = _day(agencies["valid_from"]), _day(agencies["valid_to"])
    mask = (start.isna() | (start <= day)) & (end.isna() | (end >= day))
    out = pd.DataFrame(
        {
            "code": agencies["code"].astype(str),
            "name": agencies["name"].astype(str),
            "level": agencies["level"].astype(str),
            "remote": _flag(agencies["remote"]),
            "one_stop": _flag(agencies["one_stop"]),
            "_start": start,
        }
    )[mask.to_numpy()]
    out = out.sort_values("_start", kind="stable").drop_duplicates("code", keep="last")
    return out.drop(columns="_start").reset_index(drop=True)


def _linked(register: pd.DataFrame, archived: pd.DataFrame, end: pd.Timestamp, options: CoverageOptions) -> np.ndarray:
    """Code of the latest archived result linked to each register row (register_id first, else dossier_code).

    Returns an object array aligned with ``register``: the document code, or None when none is linked.
    Each side is hashed once (``pd.factorize`` over the archived keys and the register's together).
    """
    _require(archived, ("code", "kind", "register_id", "dossier_code", "archived_at", "version"), "archived")
    when = _instant(archived["archived_at"], options.timezone).to_numpy()
    keep = archived["kind"].isin(options.result_kinds).to_numpy() & (when < end.to_datetime64())
    version = pd.to_numeric(archived["version"], errors="coerce").fillna(1).to_numpy()[keep]
    order = np.lexsort((when[keep], version))  # ascending version, then time: the last one wins
    codes = archived["code"].to_numpy(dtype=object)[keep][order]
    ids = archived["register_id"].to_numpy(dtype=object)[keep][order]
    dossiers = archived["dossier_code"].to_numpy(dtype=object)[keep][order]
    has_id = ~pd.isna(ids)
    loose = ~has_id & ~pd.isna(dossiers)
    out = np.full(len(register), None, dtype=object)
    for keys, docs, column in (
        (dossiers[loose], codes[loose], "dossier_code"),  # first, so register_id links take precedence
        (ids[has_id], codes[has_id], "register_id"),
    ):
        if not len(keys):
            continue
        wanted = register[column].to_numpy(dtype=object)
        # one hash pass over both sides, then integer work: latest document per key, looked up per row
        labels, uniques = pd.factorize(np.concatenate([keys, wanted]), use_na_sentinel=True)
        latest = np.full(len(uniques), -1, dtype=np.int64)
        np.maximum.at(latest, labels[: len(keys)], np.arange(len(keys)))
        mine = labels[len(keys) :]
        position = np.where(mine >= 0, latest[mine], -1)
        found = position >= 0
        out[found] = docs[position[found]]
    return out


def _all_rows(
    agencies: pd.DataFrame, register: pd.DataFrame, archived: pd.DataFrame, as_of: date, options: CoverageOptions
) -> pd.DataFrame:
    """Register rows of agencies valid at ``as_of``, dates parsed, with agency name/level and their links."""
    _require(register, REGISTER_COLUMNS, "register")
    valid = _valid_agencies(agencies, as_of)
    holder = pd.Index(valid["code"].to_numpy(dtype=object)).get_indexer(register["agency_code"].to_numpy(dtype=object))
    keep = holder >= 0
    at = holder[keep]
    rows = register.loc[keep, list(REGISTER_COLUMNS)].reset_index(drop=True)
    rows = rows.assign(
        issued_date=_day(rows["issued_date"]),
        valid_until=_day(rows["valid_until"]),
        agency_name=_objects(valid["name"].to_numpy(dtype=object)[at], rows.index),
        level=_objects(valid["level"].to_numpy(dtype=object)[at], rows.index),
    )
    code = _linked(rows, archived, pd.Timestamp(as_of) + pd.Timedelta(days=1), options)
    return rows.assign(digitized=~pd.isna(code), document_code=_objects(code, rows.index))


def _objects(values: np.ndarray, index: pd.Index) -> pd.Series:
    """An object Series as is: skips pandas' scan of a million values to infer a string dtype."""
    return pd.Series(values, index=index, dtype=object, copy=False)


def _select(rows: pd.DataFrame, as_of: date, indicator: Literal["stock", "flow"]) -> pd.DataFrame:
    """stock: still valid at ``as_of`` (issued on or before it, not expired); flow: issued 1 January–``as_of``."""
    day = pd.Timestamp(as_of)
    issued, until = rows["issued_date"], rows["valid_until"]
    if indicator == "stock":
        mask = (issued <= day) & (until.isna() | (until >= day))
    else:
        mask = (issued >= pd.Timestamp(as_of.year, 1, 1)) & (issued <= day)
    return rows[mask.to_numpy()].reset_index(drop=True)


def _register_rows(
    agencies: pd.DataFrame,
    register: pd.DataFrame,
    archived: pd.DataFrame,
    as_of: date,
    options: CoverageOptions,
    indicator: Literal["stock", "flow"],
) -> pd.DataFrame:
    """Register rows counted by an indicator, with agency name/level, ``digitized`` and ``document_code``."""
    return _select(_all_rows(agencies, register, archived, as_of, options), as_of, indicator)


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
    valid: pd.DataFrame, archived: pd.DataFrame, plan: Plan, as_of: date, options: CoverageOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    _require(archived, ("scanned_at", "archived_at"), "archived")
    indicator = plan.indicator("units")
    units = valid[valid["one_stop"]]
    if indicator is None or indicator.excludes_remote:
        units = units[~units["remote"]]
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    when = _instant(archived["archived_at"], options.timezone)
    mask = archived["scanned_at"].notna() & (when < end)
    if options.units_window_days is not None:
        mask &= when >= end - pd.Timedelta(days=options.units_window_days)
    counts = archived.loc[mask.to_numpy(), "scanned_at"].astype(str).value_counts()
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
            "start": _day(agencies["valid_from"]).to_numpy(),
            "end": _day(agencies["valid_to"]).to_numpy(),
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


def _asked_dossiers(needs: pd.DataFrame, agencies: pd.DataFrame, as_of: date, options: CoverageOptions
                    ) -> pd.DataFrame:
    """Dossiers with a paper looked up from 1 January to the end of ``as_of`` (local), and where they count.

    A dossier counts for the receiving office (the agency part of its Circular 01/2018 code) as it was on the
    dossier's first lookup; when that office is not in the agencies table, for the agency holding the first
    paper reused. A dossier is "not asked again" when none of its papers had to be handed in again.
    """
    _require(needs, NEEDS_COLUMNS, "needs")
    day = _instant(needs["at"], options.timezone).dt.normalize()
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
    options: CoverageOptions | None = None,
) -> CoverageReport:
    """Count every indicator of ``plan`` at the end of day ``as_of`` against its target for that year.

    A register row counts once however many documents or versions link to it; an archived document
    counts only if archived by the end of ``as_of``; agencies count only while valid. ``needs`` are the
    reuse API's records (``digitize.api.app.needs_frame``); without them "not asked again" is not computable.
    """
    options = options or CoverageOptions()
    _require(agencies, AGENCY_COLUMNS, "agencies")
    _require(archived, ARCHIVED_COLUMNS, "archived")
    valid = _valid_agencies(agencies, as_of)
    rows = _all_rows(agencies, register, archived, as_of, options)
    stock = _select(rows, as_of, "stock")
    by_level = _per_level(stock, plan, "stock", as_of.year, "valid", "docs_to_target")
    by_agency = _per_agency(stock, valid, plan, as_of.year)
    units_by_level, units = _units(valid, archived, plan, as_of, options)
    flow_rows = _select(rows, as_of, "flow")
    del rows
    flow_by_level = (
        _per_level(flow_rows, plan, "flow", as_of.year, "resolved", "docs_to_target") if len(flow_rows) else None
    )
    asked_detail = _asked_dossiers(needs, agencies, as_of, options) if needs is not None else None
    asked_by_level, asked_by_agency = (
        _asked_figures(asked_detail, plan, as_of.year)
        if asked_detail is not None and len(asked_detail)
        else (None, None)
    )
    statuses = []
    for ind in plan.indicators:
        counts = (len(stock), len(flow_rows), len(units), None if asked_detail is None else len(asked_detail))
        statuses.append(_status(ind, as_of, options, *counts))
    return CoverageReport(
        plan=plan,
        as_of=as_of,
        by_level=by_level,
        by_agency=by_agency,
        units_by_level=units_by_level,
        units=units,
        flow_by_level=flow_by_level,
        indicators=tuple(statuses),
        detail=stock,
        asked_by_level=asked_by_level,
        asked_by_agency=asked_by_agency,
        asked_detail=asked_detail,
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
) -> pd.DataFrame:
    """The register rows behind a figure: the whole denominator, the digitized ones, or those still missing."""
    if part not in ("numerator", "denominator", "missing"):
        raise ConfigurationError(
            f"drill-down part must be numerator, denominator or missing, not {part!r}",
            hint="Ask for the digitized rows (numerator), all counted rows (denominator) or those still missing.",
        )
    rows = _register_rows(agencies, register, archived, as_of, options or CoverageOptions(), indicator)
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
            f"drill-down part must be numerator, denominator or missing, not {part!r}",
            hint="Ask for the dossiers not asked again (numerator), all counted (denominator) or those asked again.",
        )
    rows = _asked_dossiers(needs, agencies, as_of, options or CoverageOptions())
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


# ------------------------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Figures:
    """One indicator's per-level frame and what its columns mean, so every renderer treats them alike."""

    status: IndicatorStatus
    frame: pd.DataFrame | None
    num: str
    den: str
    to_target: str
    unit_vi: str
    unit_en: str


def _figures(report: CoverageReport) -> list[_Figures]:
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
        out.append(_Figures(status, frame if status.computable else None, num, den, still, uvi, uen))
    return out


def _pct(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.1f}"


def _verdict(row: Mapping[str, Any], fig: _Figures) -> tuple[str, str]:
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


def render_table(report: CoverageReport) -> str:
    """Plain-text report for the terminal: every indicator per level, Vietnamese and English side by side."""
    plan = report.plan
    day = report.as_of.isoformat()
    lines = [
        f"Kế hoạch {plan.id} ({plan.province}) — số liệu đến hết ngày {day}",
        f"Plan {plan.id} ({plan.province}) — figures as of the end of {day}",
    ]
    for number, fig in enumerate(_figures(report), start=1):
        lines += ["", f"{number}. {fig.status.title_vi}", f"   {fig.status.title_en}"]
        if fig.frame is None:
            lines += [f"   {fig.status.basis_vi}", f"   {fig.status.basis_en}"]
            continue
        table = [("Cấp / Level", "Đạt được/Tổng", "Tỷ lệ %", "Chỉ tiêu %", "Đánh giá / Assessment")]
        for row in fig.frame.to_dict("records"):
            vi, en = plan.level_names(str(row["level"]))
            v_vi, v_en = _verdict(row, fig)
            table.append(
                (
                    f"{vi} / {en}",
                    f"{int(row[fig.num])}/{int(row[fig.den])}",
                    _pct(row["coverage_pct"]),
                    _pct(row["target_pct"]),
                    f"{v_vi} / {v_en}",
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for i, r in enumerate(table):
            lines.append(
                "   "
                + "  ".join(
                    [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3].rjust(widths[3]), r[4]]
                ).rstrip()
            )
            if i == 0:
                lines.append("   " + "-" * (sum(widths) + 8 + len(r[4])))
        lines += [f"   ({fig.status.basis_vi})", f"   ({fig.status.basis_en})"]
    return "\n".join(lines) + "\n"


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
)


def report_rows(report: CoverageReport) -> pd.DataFrame:
    """Every figure of the report as one tidy frame (the CSV's rows): per level, per agency, per unit."""
    parts = []
    for fig in _figures(report):
        if fig.frame is None:
            parts.append(
                pd.DataFrame(
                    [{"indicator": fig.status.id, "scope": "level", "computable": False, "basis": fig.status.basis_en}]
                )
            )
            continue
        f = fig.frame
        parts.append(
            pd.DataFrame(
                {
                    "indicator": fig.status.id,
                    "scope": "level",
                    "level": f["level"],
                    "numerator": f[fig.num],
                    "denominator": f[fig.den],
                    "coverage_pct": f["coverage_pct"],
                    "target_pct": f["target_pct"],
                    "met": f["met"],
                    "gap_points": f["gap_points"],
                    "to_target": f[fig.to_target],
                    "computable": True,
                    "basis": fig.status.basis_en,
                }
            )
        )
        if fig.status.id == "stock":
            a = report.by_agency
            parts.append(
                pd.DataFrame(
                    {
                        "indicator": "stock",
                        "scope": "agency",
                        "level": a["level"],
                        "agency_code": a["agency_code"],
                        "agency_name": a["name"],
                        "numerator": a["digitized"],
                        "denominator": a["valid"],
                        "coverage_pct": a["coverage_pct"],
                        "target_pct": a["target_pct"],
                        "met": a["met"],
                        "gap_points": a["gap_points"],
                        "to_target": a["docs_to_target"],
                        "computable": True,
                        "basis": fig.status.basis_en,
                    }
                )
            )
        if fig.status.id == "not_asked_again" and report.asked_by_agency is not None:
            a = report.asked_by_agency
            parts.append(
                pd.DataFrame(
                    {
                        "indicator": "not_asked_again",
                        "scope": "agency",
                        "level": a["level"],
                        "agency_code": a["agency_code"],
                        "agency_name": a["agency_name"],
                        "numerator": a["not_asked"],
                        "denominator": a["dossiers"],
                        "coverage_pct": a["coverage_pct"],
                        "target_pct": a["target_pct"],
                        "met": a["met"],
                        "gap_points": a["gap_points"],
                        "to_target": a["dossiers_to_target"],
                        "computable": True,
                        "basis": fig.status.basis_en,
                    }
                )
            )
        if fig.status.id == "units":
            u = report.units
            parts.append(
                pd.DataFrame(
                    {
                        "indicator": "units",
                        "scope": "unit",
                        "level": u["level"],
                        "agency_code": u["code"],
                        "agency_name": u["name"],
                        "numerator": u["documents_scanned"],
                        "met": u["running"].astype("boolean"),
                        "computable": True,
                        "basis": fig.status.basis_en,
                    }
                )
            )
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
    """Write every figure as a UTF-8 CSV (tidy: one row per indicator × level/agency/unit)."""
    report_rows(report).to_csv(Path(path), index=False, encoding="utf-8", lineterminator="\n")


_XLSX_HEADER_FILL = "1F4E79"
_XLSX_MET_FILL = "C6EFCE"
_XLSX_BEHIND_FILL = "FFC7CE"
_LEVEL_HEADERS = (
    "Cấp",
    "Đạt được",
    "Tổng số",
    "Tỷ lệ (%)",
    "Chỉ tiêu (%)",
    "Đánh giá",
    "Còn thiếu (điểm)",
    "Còn thiếu (số lượng)",
)
_AGENCY_HEADERS = (
    "Mã cơ quan",
    "Tên cơ quan",
    "Cấp",
    "Đã số hóa",
    "Còn hiệu lực",
    "Tỷ lệ (%)",
    "Chỉ tiêu (%)",
    "Đánh giá",
    "Còn thiếu (điểm)",
    "Còn thiếu (kết quả)",
)
_ASKED_HEADERS = (
    "Mã cơ quan tiếp nhận",
    "Tên cơ quan",
    "Cấp",
    "Hồ sơ không phải nộp lại",
    "Hồ sơ đã tra cứu",
    "Giấy tờ tái sử dụng",
    "Giấy tờ phải nộp lại",
    "Tỷ lệ (%)",
    "Chỉ tiêu (%)",
    "Đánh giá",
    "Còn thiếu (điểm)",
    "Còn thiếu (hồ sơ)",
)
_UNIT_HEADERS = ("Mã đơn vị", "Tên đơn vị", "Cấp", "Tài liệu đã quét", "Đang triển khai số hóa")
_DETAIL_HEADERS = (
    "Mã sổ",
    "Mã cơ quan",
    "Tên cơ quan",
    "Cấp",
    "Mã TTHC",
    "Mã hồ sơ",
    "Tên kết quả",
    "Ngày cấp",
    "Hiệu lực đến",
    "Chủ thể",
    "Đã số hóa",
    "Mã tài liệu số hóa",
)


def write_xlsx(report: CoverageReport, path: Path, *, detail: bool = True) -> None:
    """Write an Excel workbook: summary, per agency, one-stop units and (if ``detail``) the register rows.

    The workbook is written in openpyxl's write-only mode so the detail sheets stream: a million rows
    never sit in memory as cells. Sheets beyond Excel's row limit continue on "Chi tiết (2)", etc.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook(write_only=True)
    head_font, bold = Font(bold=True, color="FFFFFF"), Font(bold=True)
    head_fill = PatternFill("solid", fgColor=_XLSX_HEADER_FILL)
    fills = {True: PatternFill("solid", fgColor=_XLSX_MET_FILL), False: PatternFill("solid", fgColor=_XLSX_BEHIND_FILL)}
    wrap = Alignment(wrap_text=True, vertical="top")

    def cell(ws: Any, value: Any, *, font: Any = None, fill: Any = None, fmt: str | None = None) -> Any:
        c = WriteOnlyCell(ws, value=None if value is None or (not isinstance(value, str) and pd.isna(value)) else value)
        if font is not None:
            c.font = font
        if fill is not None:
            c.fill = fill
        if fmt is not None:
            c.number_format = fmt
        return c

    def header(ws: Any, names: Sequence[str]) -> list[Any]:
        out = [cell(ws, n, font=head_font, fill=head_fill) for n in names]
        for c in out:
            c.alignment = wrap
        return out

    def widths(ws: Any, values: Sequence[float]) -> None:
        for i, w in enumerate(values):
            ws.column_dimensions[chr(ord("A") + i)].width = w

    def level_name(code: Any) -> str:
        return report.plan.level_names(str(code))[0]

    plan, day = report.plan, report.as_of.isoformat()
    ws = wb.create_sheet("Tổng hợp")
    widths(ws, (22, 12, 12, 11, 12, 40, 16, 18))
    ws.append([cell(ws, f"Tiến độ số hóa theo Kế hoạch {plan.id} ({plan.province})", font=Font(bold=True, size=14))])
    ws.append([f"Số liệu đến hết ngày {day}; chỉ tiêu năm {report.as_of.year}."])
    ws.append([plan.source_reference])
    for number, fig in enumerate(_figures(report), start=1):
        ws.append([])
        ws.append([cell(ws, f"{number}. {fig.status.title_vi}", font=bold)])
        if fig.frame is None:
            ws.append([fig.status.basis_vi])
            continue
        ws.append(header(ws, _LEVEL_HEADERS))
        for row in fig.frame.to_dict("records"):
            verdict = _verdict(row, fig)[0]
            met = None if pd.isna(row["met"]) else bool(row["met"])
            ws.append(
                [
                    level_name(row["level"]),
                    int(row[fig.num]),
                    int(row[fig.den]),
                    cell(ws, row["coverage_pct"], fmt="0.0"),
                    cell(ws, row["target_pct"], fmt="0.0"),
                    cell(ws, verdict, fill=fills.get(met) if met is not None else None),
                    cell(ws, row["gap_points"], fmt="0.0"),
                    cell(ws, row[fig.to_target]),
                ]
            )
        ws.append([fig.status.basis_vi])

    ws = wb.create_sheet("Theo cơ quan")
    widths(ws, (16, 44, 12, 11, 12, 10, 12, 10, 16, 18))
    ws.freeze_panes = "C2"
    ws.append(header(ws, _AGENCY_HEADERS))
    for row in report.by_agency.to_dict("records"):
        met = None if pd.isna(row["met"]) else bool(row["met"])
        verdict = (
            ("đạt" if met else "chưa đạt")
            if met is not None
            else ("không có dữ liệu" if row["valid"] == 0 else "chưa có chỉ tiêu")
        )
        ws.append(
            [
                row["agency_code"],
                row["name"],
                level_name(row["level"]),
                int(row["digitized"]),
                int(row["valid"]),
                cell(ws, row["coverage_pct"], fmt="0.0"),
                cell(ws, row["target_pct"], fmt="0.0"),
                cell(ws, verdict, fill=fills.get(met) if met is not None else None),
                cell(ws, row["gap_points"], fmt="0.0"),
                cell(ws, row["docs_to_target"]),
            ]
        )
    if len(report.by_agency):
        ws.auto_filter.ref = f"A1:J{len(report.by_agency) + 1}"

    ws = wb.create_sheet("Bộ phận Một cửa")
    widths(ws, (16, 44, 12, 16, 22))
    ws.freeze_panes = "A2"
    ws.append(header(ws, _UNIT_HEADERS))
    for row in report.units.to_dict("records"):
        running = bool(row["running"])
        ws.append(
            [
                row["code"],
                row["name"],
                level_name(row["level"]),
                int(row["documents_scanned"]),
                cell(ws, "có" if running else "chưa", fill=fills[running]),
            ]
        )

    if report.asked_by_agency is not None:
        ws = wb.create_sheet("Không phải nộp lại")
        widths(ws, (16, 44, 12, 14, 12, 14, 14, 11, 12, 10, 16, 18))
        ws.freeze_panes = "C2"
        ws.append(header(ws, _ASKED_HEADERS))
        for row in report.asked_by_agency.to_dict("records"):
            met = None if pd.isna(row["met"]) else bool(row["met"])
            ws.append(
                [
                    row["agency_code"],
                    row["agency_name"],
                    level_name(row["level"]),
                    int(row["not_asked"]),
                    int(row["dossiers"]),
                    int(row["reused_docs"]),
                    int(row["supplied_again_docs"]),
                    cell(ws, row["coverage_pct"], fmt="0.0"),
                    cell(ws, row["target_pct"], fmt="0.0"),
                    cell(ws, ("đạt" if met else "chưa đạt") if met is not None else "chưa có chỉ tiêu",
                         fill=fills.get(met) if met is not None else None),
                    cell(ws, row["gap_points"], fmt="0.0"),
                    cell(ws, row["dossiers_to_target"]),
                ]
            )

    if detail:
        _write_detail_sheets(wb, report, header, widths)
    wb.save(Path(path))


def _write_detail_sheets(wb: Any, report: CoverageReport, header: Any, widths: Any) -> None:
    """Stream the register rows behind the stock figures, splitting at Excel's row limit."""
    rows = report.detail
    names = {lv.code: lv.vi for lv in report.plan.levels}
    issued = pd.Series(rows["issued_date"].dt.date, dtype=object)
    until = rows["valid_until"].dt.date.astype(object).where(rows["valid_until"].notna(), None)
    columns = [
        rows["register_id"].astype(object).tolist(),
        rows["agency_code"].astype(object).tolist(),
        rows["agency_name"].astype(object).tolist(),
        rows["level"].map(lambda c: names.get(c, c)).tolist(),
        rows["procedure_code"].astype(object).tolist(),
        _texts(rows["dossier_code"]),
        _texts(rows["title"]),
        issued.tolist(),
        until.tolist(),
        _texts(rows["holder_id"]),
        np.where(rows["digitized"].to_numpy(), "có", "chưa").tolist(),
        _texts(rows["document_code"]),
    ]
    per_sheet = EXCEL_MAX_ROWS - 1
    total = len(rows)
    sheets = max(1, math.ceil(total / per_sheet))
    for n in range(sheets):
        ws = wb.create_sheet("Chi tiết" if n == 0 else f"Chi tiết ({n + 1})")
        widths(ws, (12, 16, 36, 11, 11, 28, 44, 12, 12, 14, 10, 30))
        ws.freeze_panes = "B2"
        ws.append(header(ws, _DETAIL_HEADERS))
        lo, hi = n * per_sheet, min(total, (n + 1) * per_sheet)
        for values in zip(*(c[lo:hi] for c in columns), strict=True):
            ws.append(values)


def _texts(values: pd.Series) -> list[Any]:
    """Column values as Python objects with missing values as None (what openpyxl writes as empty)."""
    return values.astype(object).where(values.notna(), None).tolist()


_HTML_CSS = """
body{font-family:"Liberation Sans",Arial,sans-serif;margin:1.5rem auto;max-width:72rem;color:#1b1b1b;padding:0 1rem}
body:not(.en) .en,body.en .vi{display:none}
header{display:flex;justify-content:space-between;align-items:flex-start;gap:1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
.meta{color:#555;margin:.1rem 0}
button{font:inherit;padding:.3rem .8rem;border:1px solid #1f4e79;background:#fff;color:#1f4e79;
border-radius:4px;cursor:pointer}
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}
th{background:#1f4e79;color:#fff;position:sticky;top:0}
th.sort{cursor:pointer;user-select:none}th.sort:after{content:" \\2195";opacity:.6}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.met{background:#c6efce}.behind{background:#ffc7ce}.none{color:#777}
.basis{color:#555;font-size:.88rem;margin:.2rem 0 0}
.nc{border-left:4px solid #999;padding:.4rem .8rem;background:#f4f4f4}
svg text{font-size:12px;fill:#1b1b1b}
"""

_HTML_JS = """
document.getElementById('lang').addEventListener('click',function(){
 var en=document.body.classList.toggle('en');document.documentElement.lang=en?'en':'vi';});
document.querySelectorAll('table.sortable th.sort').forEach(function(th){
 th.addEventListener('click',function(){
  var table=th.closest('table'),body=table.tBodies[0],i=th.cellIndex,num=th.dataset.type==='num';
  var dir=th.dataset.dir==='asc'?'desc':'asc';
  table.querySelectorAll('th').forEach(function(h){delete h.dataset.dir;});th.dataset.dir=dir;
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){
   var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v,r;
   if(num){x=parseFloat(x);y=parseFloat(y);if(isNaN(x))return 1;if(isNaN(y))return -1;r=x-y;}
   else{r=x.localeCompare(y,'vi');}
   return dir==='asc'?r:-r;});
  rows.forEach(function(r){body.appendChild(r);});});});
"""


def _bi(vi: str, en: str) -> str:
    """Both languages of a label; CSS shows one (Vietnamese by default)."""
    return f'<span class="vi">{html.escape(vi)}</span><span class="en">{html.escape(en)}</span>'


def _bar_chart(report: CoverageReport, fig: _Figures) -> str:
    """Inline SVG: one bar per level with the year's target marked by a line."""
    assert fig.frame is not None
    left, scale, row_h = 170, 4.2, 30
    frame = fig.frame
    height = row_h * len(frame) + 24
    parts = [
        f'<svg role="img" width="{left + 100 * scale + 110:.0f}" height="{height}" '
        f'aria-label="{html.escape(fig.status.title_en)}">'
    ]
    for i, row in enumerate(frame.to_dict("records")):
        y = 8 + i * row_h
        vi, en = report.plan.level_names(str(row["level"]))
        pct = 0.0 if pd.isna(row["coverage_pct"]) else float(row["coverage_pct"])
        met = row["met"]
        color = "#9e9e9e" if pd.isna(met) else ("#2e7d32" if bool(met) else "#c62828")
        parts.append(
            f'<text class="vi" x="0" y="{y + 15}">{html.escape(vi)}</text>'
            f'<text class="en" x="0" y="{y + 15}">{html.escape(en)}</text>'
        )
        parts.append(f'<rect x="{left}" y="{y}" width="{100 * scale:.1f}" height="20" fill="#eceff1"/>')
        parts.append(f'<rect x="{left}" y="{y}" width="{pct * scale:.1f}" height="20" fill="{color}"/>')
        label = f"{_pct(row['coverage_pct'])} % ({int(row[fig.num])}/{int(row[fig.den])})"
        parts.append(f'<text x="{left + 100 * scale + 6}" y="{y + 15}">{html.escape(label)}</text>')
        if not pd.isna(row["target_pct"]):
            x = left + float(row["target_pct"]) * scale
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 3}" y2="{y + 23}" stroke="#111" '
                f'stroke-width="2" stroke-dasharray="4 2"><title>{_pct(row["target_pct"])} %</title></line>'
            )
    parts.append(
        f'<text x="{left}" y="{height - 2}" class="vi">Vạch đứt: chỉ tiêu năm {report.as_of.year}</text>'
        f'<text x="{left}" y="{height - 2}" class="en">Dashed line: {report.as_of.year} target</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _td(value: Any, *, num: bool = False, css: str = "", sort: Any = None) -> str:
    text = (
        _pct(value)
        if num and isinstance(value, float)
        else ("—" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value))
    )
    key = sort if sort is not None else ("" if text == "—" else text)
    classes = " ".join(c for c in ("n" if num else "", css) if c)
    attr = f' class="{classes}"' if classes else ""
    return f'<td{attr} data-v="{html.escape(str(key))}">{html.escape(text)}</td>'


def write_html(report: CoverageReport, path: Path) -> None:
    """Write one self-contained HTML page (inline CSS, SVG and JS; nothing fetched from the network)."""
    plan, day = report.plan, report.as_of.isoformat()
    out = [
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>Tiến độ số hóa — {html.escape(plan.id)} — {day}</title>",
        f"<style>{_HTML_CSS}</style></head><body>",
        "<header><div><h1>"
        + _bi(
            "Tiến độ số hóa hồ sơ, kết quả giải quyết TTHC", "Digitization coverage of administrative-procedure results"
        )
        + "</h1>",
        '<p class="meta">'
        + _bi(
            f"Kế hoạch {plan.id} — {plan.province} — số liệu đến hết ngày {day}",
            f"Plan {plan.id} — {plan.province} — figures as of the end of {day}",
        )
        + "</p>",
        f'<p class="meta">{html.escape(plan.source_reference)}</p></div>',
        '<button id="lang" type="button">' + _bi("English", "Tiếng Việt") + "</button></header>",
    ]
    for number, fig in enumerate(_figures(report), start=1):
        out.append(f"<section><h2>{number}. " + _bi(fig.status.title_vi, fig.status.title_en) + "</h2>")
        if fig.frame is None:
            out.append('<p class="nc">' + _bi(fig.status.basis_vi, fig.status.basis_en) + "</p></section>")
            continue
        out.append(_bar_chart(report, fig))
        out.append(
            "<table><thead><tr><th>"
            + _bi("Cấp", "Level")
            + '</th><th class="n">'
            + _bi("Đạt được/Tổng", "Done/Total")
            + '</th><th class="n">'
            + _bi("Tỷ lệ %", "Coverage %")
            + '</th><th class="n">'
            + _bi("Chỉ tiêu %", "Target %")
            + "</th><th>"
            + _bi("Đánh giá", "Assessment")
            + "</th></tr></thead><tbody>"
        )
        for row in fig.frame.to_dict("records"):
            vi, en = plan.level_names(str(row["level"]))
            v_vi, v_en = _verdict(row, fig)
            css = "none" if pd.isna(row["met"]) else ("met" if bool(row["met"]) else "behind")
            out.append(
                f"<tr><td>{_bi(vi, en)}</td>"
                f'<td class="n">{int(row[fig.num])}/{int(row[fig.den])}</td>'
                f'<td class="n">{_pct(row["coverage_pct"])}</td><td class="n">{_pct(row["target_pct"])}</td>'
                f'<td class="{css}">{_bi(v_vi, v_en)}</td></tr>'
            )
        out.append(
            '</tbody></table><p class="basis">' + _bi(fig.status.basis_vi, fig.status.basis_en) + "</p></section>"
        )
    out.append(_agency_table(report))
    if report.asked_by_agency is not None:
        out.append(_asked_agency_table(report))
    out.append(f"<script>{_HTML_JS}</script></body></html>\n")
    Path(path).write_text("".join(out), encoding="utf-8")


def _asked_agency_table(report: CoverageReport) -> str:
    """Sortable table of receiving offices for "not asked again", laggards first."""
    assert report.asked_by_agency is not None
    heads = [
        ("Cơ quan tiếp nhận", "Receiving office", False),
        ("Tên cơ quan", "Agency", False),
        ("Cấp", "Level", False),
        ("Không phải nộp lại", "Not asked again", True),
        ("Hồ sơ đã tra cứu", "Dossiers looked up", True),
        ("Giấy tờ tái sử dụng", "Papers reused", True),
        ("Giấy tờ phải nộp lại", "Papers handed in again", True),
        ("Tỷ lệ %", "Share %", True),
        ("Chỉ tiêu %", "Target %", True),
        ("Chậm (điểm)", "Behind (points)", True),
    ]
    out = _sortable_table_head(
        "not-asked-again",
        _bi("Không phải nộp lại giấy tờ, theo cơ quan tiếp nhận", "Not asked again, by receiving office"), heads)
    for row in report.asked_by_agency.to_dict("records"):
        vi, en = report.plan.level_names(str(row["level"]))
        css = "none" if pd.isna(row["met"]) else ("met" if bool(row["met"]) else "behind")
        out.append(
            "<tr>"
            + _td(row["agency_code"])
            + _td(row["agency_name"])
            + f'<td data-v="{html.escape(vi)}">{_bi(vi, en)}</td>'
            + _td(int(row["not_asked"]), num=True)
            + _td(int(row["dossiers"]), num=True)
            + _td(int(row["reused_docs"]), num=True)
            + _td(int(row["supplied_again_docs"]), num=True)
            + _td(float(row["coverage_pct"]), num=True, css=css)
            + _td(float(row["target_pct"]), num=True)
            + _td(float(row["gap_points"]), num=True)
            + "</tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)


def _sortable_table_head(table_id: str, title: str, heads: list[tuple[str, str, bool]]) -> list[str]:
    """The section title and bilingual header row of a table the report's script sorts (numeric when flagged)."""
    out = ["<section><h2>" + title + "</h2>", f'<table class="sortable" id="{table_id}"><thead><tr>']
    for vi, en, num in heads:
        out.append(f'<th class="sort{" n" if num else ""}" data-type="{"num" if num else "text"}">{_bi(vi, en)}</th>')
    out.append("</tr></thead><tbody>")
    return out


def _agency_table(report: CoverageReport) -> str:
    """Sortable table of agencies, laggards first (the report's order)."""
    heads = [
        ("Mã cơ quan", "Agency code", False),
        ("Tên cơ quan", "Agency", False),
        ("Cấp", "Level", False),
        ("Đã số hóa", "Digitized", True),
        ("Còn hiệu lực", "Valid", True),
        ("Tỷ lệ %", "Coverage %", True),
        ("Chỉ tiêu %", "Target %", True),
        ("Chậm (điểm)", "Behind (points)", True),
        ("Còn thiếu", "Still needed", True),
    ]
    out = _sortable_table_head("agencies", _bi("Theo cơ quan (chậm nhất trước)", "By agency (laggards first)"), heads)
    for row in report.by_agency.to_dict("records"):
        vi, en = report.plan.level_names(str(row["level"]))
        css = "none" if pd.isna(row["met"]) else ("met" if bool(row["met"]) else "behind")
        out.append(
            "<tr>"
            + _td(row["agency_code"])
            + _td(row["name"])
            + f'<td data-v="{html.escape(vi)}">{_bi(vi, en)}</td>'
            + _td(int(row["digitized"]), num=True)
            + _td(int(row["valid"]), num=True)
            + _td(float(row["coverage_pct"]), num=True, css=css)
            + _td(float(row["target_pct"]), num=True)
            + _td(float(row["gap_points"]), num=True)
            + _td(None if pd.isna(row["docs_to_target"]) else int(row["docs_to_target"]), num=True)
            + "</tr>"
        )
    out.append("</tbody></table></section>")
    return "".join(out)
