"""The catalog's frames as coverage reads them: required columns, counting options, and register rows.

Frames come from the catalog (``agencies_frame``, ``register_frame``, ``archived_frame`` and
``needs_frame()``) or from CSV imports, so dates may be text, timestamps or date objects, and flags
bools, 0/1 or words: they are normalised here once. Each register row is linked here to the latest
archived result that digitizes it, which is what every register-based indicator and drill-down counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from digitize.errors import ConfigurationError

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


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Fail early, naming the missing columns, when a frame was not built the catalog's way."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"{what} frame lacks columns {missing}",
            hint="Build the frames with Catalog.agencies_frame/register_frame/archived_frame.",
        )


def to_day(values: pd.Series) -> pd.Series:
    """Dates (date objects, strings or timestamps) as naive midnight timestamps; None/NaN → NaT."""
    out = pd.to_datetime(values)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return out.dt.normalize()


def to_local_time(values: pd.Series, tz: str) -> pd.Series:
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


def valid_agencies(agencies: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Agencies valid at ``as_of``: code, name, level, remote, one_stop (one row per code)."""
    require_columns(agencies, ("code", "name", "level", "remote", "one_stop", "valid_from", "valid_to"), "agencies")
    agencies = agencies.reset_index(drop=True)
    day = pd.Timestamp(as_of)
    start, end = to_day(agencies["valid_from"]), to_day(agencies["valid_to"])
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
    require_columns(archived, ("code", "kind", "register_id", "dossier_code", "archived_at", "version"), "archived")
    when = to_local_time(archived["archived_at"], options.timezone).to_numpy()
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


def all_register_rows(
    agencies: pd.DataFrame, register: pd.DataFrame, archived: pd.DataFrame, as_of: date, options: CoverageOptions
) -> pd.DataFrame:
    """Register rows of agencies valid at ``as_of``, dates parsed, with agency name/level and their links."""
    require_columns(register, REGISTER_COLUMNS, "register")
    valid = valid_agencies(agencies, as_of)
    holder = pd.Index(valid["code"].to_numpy(dtype=object)).get_indexer(register["agency_code"].to_numpy(dtype=object))
    keep = holder >= 0
    at = holder[keep]
    rows = register.loc[keep, list(REGISTER_COLUMNS)].reset_index(drop=True)
    rows = rows.assign(
        issued_date=to_day(rows["issued_date"]),
        valid_until=to_day(rows["valid_until"]),
        agency_name=_objects(valid["name"].to_numpy(dtype=object)[at], rows.index),
        level=_objects(valid["level"].to_numpy(dtype=object)[at], rows.index),
    )
    code = _linked(rows, archived, pd.Timestamp(as_of) + pd.Timedelta(days=1), options)
    return rows.assign(digitized=~pd.isna(code), document_code=_objects(code, rows.index))


def _objects(values: np.ndarray, index: pd.Index) -> pd.Series:
    """An object Series as is: skips pandas' scan of a million values to infer a string dtype."""
    return pd.Series(values, index=index, dtype=object, copy=False)


def select_rows(rows: pd.DataFrame, as_of: date, indicator: Literal["stock", "flow"]) -> pd.DataFrame:
    """stock: still valid at ``as_of`` (issued on or before it, not expired); flow: issued 1 January–``as_of``."""
    day = pd.Timestamp(as_of)
    issued, until = rows["issued_date"], rows["valid_until"]
    if indicator == "stock":
        mask = (issued <= day) & (until.isna() | (until >= day))
    else:
        mask = (issued >= pd.Timestamp(as_of.year, 1, 1)) & (issued <= day)
    return rows[mask.to_numpy()].reset_index(drop=True)


def register_rows(
    agencies: pd.DataFrame,
    register: pd.DataFrame,
    archived: pd.DataFrame,
    as_of: date,
    options: CoverageOptions,
    indicator: Literal["stock", "flow"],
) -> pd.DataFrame:
    """Register rows counted by an indicator, with agency name/level, ``digitized`` and ``document_code``."""
    return select_rows(all_register_rows(agencies, register, archived, as_of, options), as_of, indicator)
