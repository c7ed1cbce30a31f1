"""Every archived document accounted for: counted in the stock figure, or listed with the reason it is not.

For each level, archived = counted + not counted. A document is "archived" on D when its first version
was archived by the end of D (Vietnam time); it is counted when it is the document a still-valid register
row of the stock figure links to. Any other one gets exactly one reason, tested in this order:

- ``DOSSIER_COMPONENT``: a dossier component (``TP``), not a result;
- ``NO_REGISTER_LINK``: neither a register ID nor a dossier code;
- ``REGISTER_ROW_UNKNOWN``: its link names no row of the register as recorded by the cut-off;
- ``AGENCY_NOT_VALID``: the row's agency is not valid on D and no successor valid on D took it over;
- ``SUCCESSOR_AMBIGUOUS``: the successors on D have different levels and the row names none;
- ``REGISTER_ROW_NOT_VALID``: the row was not yet issued, or had expired, on D;
- ``ROW_ALREADY_COUNTED``: another document already counts for the same register row.

A document's level is the level its register row counts at; for one whose row does not count, its own
agency's level on D (through successions); ``unknown`` when neither is valid that day.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from digitize.coverage.frames import CoverageOptions, to_local_time
from digitize.coverage.succession import AGENCY_NOT_VALID, SUCCESSOR_AMBIGUOUS, placements

UNKNOWN_LEVEL = "unknown"
"""Level of a document whose row and agency are both unknown or not valid on D."""

REASONS: dict[str, tuple[str, str]] = {
    "DOSSIER_COMPONENT": ("Thành phần hồ sơ (TP), không phải kết quả", "Dossier component (TP), not a result"),
    "NO_REGISTER_LINK": ("Không có mã sổ đăng ký hay mã hồ sơ", "No register ID or dossier code"),
    "REGISTER_ROW_UNKNOWN": ("Liên kết không khớp dòng nào của sổ đăng ký", "The link matches no register row"),
    AGENCY_NOT_VALID: ("Cơ quan không còn hiệu lực ngày báo cáo, không có cơ quan kế thừa",
                       "Agency not valid on the day, no successor took it over"),
    SUCCESSOR_AMBIGUOUS: ("Cơ quan kế thừa khác cấp, dòng sổ không chỉ định cơ quan kế thừa",
                          "Successors of different levels, the register row names none"),
    "REGISTER_ROW_NOT_VALID": ("Dòng sổ chưa cấp hoặc đã hết hiệu lực ngày báo cáo",
                               "Register row not yet issued or expired on the day"),
    "ROW_ALREADY_COUNTED": ("Tài liệu khác đã được tính cho cùng dòng sổ",
                            "Another document already counts for the same register row"),
}
"""Stable reason codes with their Vietnamese and English wording, in the order they are tested."""

UNCOUNTED_COLUMNS = (
    "document_code", "version", "kind", "agency_code", "level", "register_id", "dossier_code", "digitized_on",
    "reason",
)


def _first_positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of the first ``keys`` entry equal to each ``wanted`` value, -1 where there is none."""
    first = ~pd.Index(keys).duplicated() & ~pd.isna(keys)
    positions = np.append(np.flatnonzero(first), -1)
    return np.asarray(positions[pd.Index(keys[first]).get_indexer(wanted)], dtype=np.int64)


def _row_of(docs: pd.DataFrame, register: pd.DataFrame) -> np.ndarray:
    """Position in ``register`` of each document's row (by register ID, else by dossier code), -1 for none."""
    by_id = _first_positions(register["register_id"].to_numpy(dtype=object), docs["register_id"].to_numpy(dtype=object))
    by_dossier = _first_positions(register["dossier_code"].to_numpy(dtype=object),
                                  docs["dossier_code"].to_numpy(dtype=object))
    return np.where(pd.isna(docs["register_id"]).to_numpy(), by_dossier, by_id)


def _take(values: pd.Series, pos: np.ndarray) -> np.ndarray:
    """``values`` at positions ``pos`` as objects, None where ``pos`` is -1."""
    out = np.full(len(pos), None, dtype=object)
    hit = pos >= 0
    out[hit] = values.to_numpy(dtype=object)[pos[hit]]
    return out


def uncounted_documents(
    archived: pd.DataFrame,
    register: pd.DataFrame,
    rows: pd.DataFrame,
    stock: pd.DataFrame,
    valid: pd.DataFrame,
    placed: pd.DataFrame,
    successors: pd.DataFrame | None,
    as_of: date,
    options: CoverageOptions,
) -> pd.DataFrame:
    """Documents archived by D with their level and, when not counted, their reason (None when counted).

    ``rows`` are all register rows counted on D (any validity), ``stock`` those of the stock figure,
    ``valid`` the agencies valid on D and ``placed`` where each register row counts
    (:func:`~digitize.coverage.rows.register_placements`): the report computes each once.
    """
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    when = to_local_time(archived["digitized_at"], options.timezone)
    by_end = (when < end).to_numpy()
    docs = archived[by_end].reset_index(drop=True)
    code = docs["code"].astype(str)
    counted_level = stock.dropna(subset=["document_code"]).drop_duplicates("document_code")
    counted = code.isin(counted_level["document_code"].astype(str)).to_numpy()
    pos = _row_of(docs, register)
    row_ids = _take(register["register_id"], pos)
    rows_by_id = rows.drop_duplicates("register_id").set_index("register_id")
    in_rows = np.asarray(pd.Index(rows_by_id.index).get_indexer(row_ids) >= 0, dtype=bool)
    in_stock = pd.Series(row_ids, dtype=object).isin(stock["register_id"]).to_numpy()
    why_agency = _take(placed["not_counted_reason"], pos)
    has_link = (~pd.isna(docs["register_id"]) | ~pd.isna(docs["dossier_code"])).to_numpy()
    reason = np.full(len(docs), "ROW_ALREADY_COUNTED", dtype=object)
    for failed, why in (  # the last that applies wins: tested here from the least to the most basic
        (~in_stock, "REGISTER_ROW_NOT_VALID"),
        (~in_rows, why_agency),
        (pos < 0, "REGISTER_ROW_UNKNOWN"),
        (~has_link, "NO_REGISTER_LINK"),
        (~docs["kind"].isin(options.result_kinds).to_numpy(), "DOSSIER_COMPONENT"),
        (counted, None),
    ):
        reason[failed] = why[failed] if isinstance(why, np.ndarray) else why
    level = _levels(docs, code, counted_level, rows_by_id, row_ids, valid, successors, as_of)
    out = pd.DataFrame(
        {
            "document_code": code,
            "version": docs["version"],
            "kind": docs["kind"],
            "agency_code": docs["agency_code"],
            "level": level,
            "register_id": docs["register_id"],
            "dossier_code": docs["dossier_code"],
            "digitized_on": when[by_end].dt.normalize().reset_index(drop=True),
            "reason": pd.Series(reason, dtype=object),
        }
    )
    return out.sort_values("document_code", kind="stable").reset_index(drop=True)


def _level_of(codes: np.ndarray, keys: pd.Index, levels: np.ndarray) -> np.ndarray:
    """The level of each code in ``keys`` (aligned with ``levels``), None where the code is not there."""
    at = keys.get_indexer(codes)
    out = np.full(len(codes), None, dtype=object)
    out[at >= 0] = levels[at[at >= 0]]
    return out


def _levels(docs: pd.DataFrame, code: pd.Series, counted_level: pd.DataFrame, rows_by_id: pd.DataFrame,
            row_ids: np.ndarray, valid: pd.DataFrame, successors: pd.DataFrame | None,
            as_of: date) -> np.ndarray:
    """Each document's level: where it counts, else its row's level, else its own agency's on D."""
    own = placements(docs["agency_code"], pd.Series(None, index=docs.index, dtype=object), valid, successors, as_of)
    own_level = _level_of(own["counted_agency"].to_numpy(dtype=object), pd.Index(valid["code"]),
                          valid["level"].to_numpy(dtype=object))
    row_level = _level_of(row_ids, pd.Index(rows_by_id.index), rows_by_id["level"].to_numpy(dtype=object))
    counted = _level_of(code.to_numpy(dtype=object), pd.Index(counted_level["document_code"]),
                        counted_level["level"].to_numpy(dtype=object))
    level = np.where(pd.notna(counted), counted, np.where(pd.notna(row_level), row_level, own_level))
    level[pd.isna(level)] = UNKNOWN_LEVEL
    return np.asarray(level, dtype=object)


def accounting_by_level(documents: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Per level: archived, counted and not counted documents (archived = counted + not counted)."""
    counted = documents["reason"].isna()
    grouped = pd.DataFrame({"level": documents["level"], "counted": counted, "not_counted": ~counted}).groupby(
        "level", sort=False).agg(archived=("counted", "size"), counted=("counted", "sum"),
                                  not_counted=("not_counted", "sum"))
    order = levels + sorted(set(grouped.index) - set(levels))
    grouped = grouped.reindex(order, fill_value=0)
    return pd.DataFrame(
        {
            "level": pd.Series(order, dtype=object),
            "archived": grouped["archived"].to_numpy(dtype=np.int64),
            "counted": grouped["counted"].to_numpy(dtype=np.int64),
            "not_counted": grouped["not_counted"].to_numpy(dtype=np.int64),
        }
    )
