"""Where a register row counts on day D: its own agency, or the successors of an abolished one.

The 2025 reform merged, split and abolished units: a result issued by a district that no longer exists is
still valid, and counts — from the succession's effective date — at the agency (and level) that took the
district's work over, as that agency is on D. Successions are one-to-many and chain (A → B → C, D). When
the successors reached on D have different levels, the register row must name its successor
(``successor_code``): the row is counted at that one. Without it the row cannot be placed and is reported
as such, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from digitize.coverage.frames import require_columns, to_day

SUCCESSOR_COLUMNS = ("predecessor_code", "successor_code", "effective_date")

AGENCY_NOT_VALID = "AGENCY_NOT_VALID"
"""The row's agency is not valid on D and no successor valid on D took its results over."""

SUCCESSOR_AMBIGUOUS = "SUCCESSOR_AMBIGUOUS"
"""The successors valid on D have different levels and the register row names none of them."""


@dataclass(frozen=True)
class Placement:
    """Where one (agency, named successor) pair counts on D."""

    agency_code: str | None
    """The agency valid on D the row counts for (None: not counted)."""

    via: str | None
    """The chain followed, e.g. ``D2 → C7`` (None when the agency itself is valid)."""

    reason: str | None
    """Why the row is not counted (:data:`AGENCY_NOT_VALID`, :data:`SUCCESSOR_AMBIGUOUS`), else None."""


def _edges(successors: pd.DataFrame | None, as_of: date) -> dict[str, list[str]]:
    """Successions in force on ``as_of``: predecessor → its successors, in code order."""
    if successors is None or not len(successors):
        return {}
    require_columns(successors, SUCCESSOR_COLUMNS, "successors")
    effective = to_day(successors["effective_date"])
    mask = (effective.isna() | (effective <= pd.Timestamp(as_of))).to_numpy()
    edges: dict[str, list[str]] = {}
    for pred, succ in zip(successors.loc[mask, "predecessor_code"], successors.loc[mask, "successor_code"],
                          strict=True):
        edges.setdefault(str(pred), []).append(str(succ))
    return {k: sorted(set(v)) for k, v in edges.items()}


def _terminals(start: str, edges: dict[str, list[str]], levels: dict[str, str]) -> dict[str, str]:
    """Agencies valid on D reached from ``start`` through successions (code → the chain to it)."""
    found: dict[str, str] = {}
    seen = {start}
    frontier = [(start, start)]
    while frontier:
        code, path = frontier.pop(0)
        for nxt in edges.get(code, ()):
            if nxt in seen:
                continue  # a cycle in the data: each agency is visited once
            seen.add(nxt)
            chain = f"{path} → {nxt}"
            if nxt in levels:
                found.setdefault(nxt, chain)
            else:
                frontier.append((nxt, chain))
    return found


def place(agency_code: str, named: str | None, edges: dict[str, list[str]], levels: dict[str, str]) -> Placement:
    """Where a row of ``agency_code`` (naming successor ``named``, if any) counts on D."""
    if agency_code in levels:
        return Placement(agency_code, None, None)
    reached = _terminals(agency_code, edges, levels)
    if not reached:
        return Placement(None, None, AGENCY_NOT_VALID)
    if named:
        if named in reached:
            return Placement(named, reached[named], None)
        via_named = {code: chain for code, chain in reached.items() if named in chain.split(" → ")}
        if len({levels[c] for c in via_named}) == 1:
            code = min(via_named)
            return Placement(code, via_named[code], None)
    if len({levels[c] for c in reached}) == 1:
        code = min(reached)  # same level: the level is what the indicator counts; the first code by order
        return Placement(code, reached[code], None)
    return Placement(None, None, SUCCESSOR_AMBIGUOUS)


def _named(value: object) -> str | None:
    """A register row's named successor as text, None when it names none."""
    return None if value is None or pd.isna(value) or str(value) == "" else str(value)


def placements(
    agency_codes: pd.Series, named: pd.Series, valid: pd.DataFrame, successors: pd.DataFrame | None, as_of: date
) -> pd.DataFrame:
    """For each register row: ``counted_agency`` (valid on D, or None), ``via`` and ``not_counted_reason``.

    Computed once per distinct (agency, named successor) pair: a register has millions of rows but a
    province a few hundred agencies.
    """
    levels = dict(zip(valid["code"].astype(str), valid["level"].astype(str), strict=True))
    edges = _edges(successors, as_of)
    # factorize each column, then the pairs as integers: hashing a million strings once, not as tuples
    agency_at, agency_uniques = pd.factorize(agency_codes.to_numpy(dtype=object), use_na_sentinel=False)
    named_at, named_uniques = pd.factorize(named.to_numpy(dtype=object), use_na_sentinel=True)
    width = len(named_uniques) + 1
    pick, pairs = pd.factorize(agency_at.astype(np.int64) * width + (named_at.astype(np.int64) + 1))
    names = np.array([*named_uniques, None], dtype=object)  # -1 (names none) takes the last
    table = [place(str(agency_uniques[p // width]), _named(names[p % width - 1]), edges, levels) for p in pairs]
    return pd.DataFrame(
        {
            "counted_agency": np.array([p.agency_code for p in table] or [None], dtype=object)[pick],
            "via": np.array([p.via for p in table] or [None], dtype=object)[pick],
            "not_counted_reason": np.array([p.reason for p in table] or [None], dtype=object)[pick],
        },
        index=agency_codes.index,
    )
