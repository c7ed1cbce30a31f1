"""Register rows as the indicators count them: the agency each counts for on day D, and the document linking it.

Each register row is linked to the latest archived result that digitizes it (by ``register_id``, else by
``dossier_code``) and was digitized by the end of D — digitized from its first version's archiving date,
so a later correction or renewal never moves it — which is what every register-based indicator and
drill-down counts.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from digitize.coverage.frames import (
    REGISTER_COLUMNS,
    CoverageOptions,
    require_columns,
    to_day,
    to_local_time,
    valid_agencies,
)
from digitize.coverage.succession import placements


def _linked(register: pd.DataFrame, archived: pd.DataFrame, end: pd.Timestamp, options: CoverageOptions) -> np.ndarray:
    """Code of the latest archived result digitized before ``end`` linked to each register row (register_id
    first, else dossier_code).

    Returns an object array aligned with ``register``: the document code, or None when none is linked.
    Each side is hashed once (``pd.factorize`` over the archived keys and the register's together).
    """
    require_columns(archived, ("code", "kind", "register_id", "dossier_code", "digitized_at", "version"), "archived")
    when = to_local_time(archived["digitized_at"], options.timezone).to_numpy()
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


def register_placements(register: pd.DataFrame, valid: pd.DataFrame, successors: pd.DataFrame | None,
                        as_of: date) -> pd.DataFrame:
    """Where each register row counts on ``as_of`` (:func:`~digitize.coverage.succession.placements`), computed
    once per report and shared by the indicators and the accounting of archived documents."""
    require_columns(register, REGISTER_COLUMNS, "register")
    named = register["successor_code"] if "successor_code" in register.columns else pd.Series(
        None, index=register.index, dtype=object)
    return placements(register["agency_code"], named, valid, successors, as_of)


def all_register_rows(
    agencies: pd.DataFrame,
    register: pd.DataFrame,
    archived: pd.DataFrame,
    as_of: date,
    options: CoverageOptions,
    successors: pd.DataFrame | None = None,
    *,
    valid: pd.DataFrame | None = None,
    placed: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Register rows counted on ``as_of``, dates parsed, with the agency they count for and their links.

    A row counts for its own agency when that agency is valid on ``as_of``, else for the successor valid
    that day (:mod:`digitize.coverage.succession`): ``agency_code`` is the agency counted, ``registered_agency``
    the one in the register, ``via`` the chain of successions followed (None for the agency itself).
    ``valid`` (agencies valid on ``as_of``) and ``placed`` (:func:`register_placements`) are computed here
    unless the caller already has them.
    """
    require_columns(register, REGISTER_COLUMNS, "register")
    valid = valid_agencies(agencies, as_of) if valid is None else valid
    placed = register_placements(register, valid, successors, as_of) if placed is None else placed
    counted = placed["counted_agency"].to_numpy(dtype=object)
    holder = pd.Index(valid["code"].to_numpy(dtype=object)).get_indexer(counted)
    keep = holder >= 0
    at = holder[keep]
    rows = register.loc[keep, list(REGISTER_COLUMNS)].reset_index(drop=True)
    rows = rows.assign(
        registered_agency=rows["agency_code"],
        agency_code=_objects(counted[keep], rows.index),
        via=_objects(placed["via"].to_numpy(dtype=object)[keep], rows.index),
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
    successors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Register rows counted by an indicator, with agency name/level, ``digitized`` and ``document_code``."""
    return select_rows(all_register_rows(agencies, register, archived, as_of, options, successors), as_of, indicator)
