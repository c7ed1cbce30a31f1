"""The catalog's frames as coverage reads them: required columns, counting options, agencies valid on a day.

Frames come from the catalog (``agencies_frame``, ``register_frame``, ``archived_frame``, ``scans_frame``,
``successors_frame`` and ``needs_frame``, each as recorded up to a cut-off) or from CSV imports, so dates
may be text, timestamps or date objects, and flags bools, 0/1 or words: they are normalised here once.
Register rows and their links to documents are in :mod:`digitize.coverage.rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

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
    "digitized_at",
    "scanned_at",
    "version",
)
"""``digitized_at``: the first version's archiving time (a document counts as digitized from it); the other
attributes are those of the version current at the cut-off."""

SCAN_COLUMNS = ("code", "version", "agency_code", "scanned_at", "archived_at")
"""One row per archived version made from a new scan (the catalog's ``scans_frame``): indicator 3 counts these."""

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
    """Agencies valid at ``as_of``: code, name, level, remote, one_stop (one row per code).

    An agency may have several rows (its level, one-stop or remote flag changed in valid time): the row
    whose validity holds ``as_of`` gives that day's attributes; of overlapping ones, the latest starting,
    then the latest recorded.
    """
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
            "_recorded": pd.to_datetime(agencies["recorded_at"], utc=True) if "recorded_at" in agencies else pd.NaT,
        }
    )[mask.to_numpy()]
    out = out.sort_values(["_start", "_recorded"], kind="stable").drop_duplicates("code", keep="last")
    return out.drop(columns=["_start", "_recorded"]).reset_index(drop=True)
