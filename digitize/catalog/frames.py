"""The pandas frames coverage reads: agencies, the register, successors, archived documents and scans.

Coverage computes its indicators over whole tables at once, so the catalog hands them over as frames with
dates as ``datetime64``. Every frame takes a data cut-off ``cutoff`` (aware UTC; ``None`` = now) and gives the
facts **as recorded up to it**: a reference row counts from its ``recorded_at`` until a later import replaced
it (``superseded_at``), a document version from its ``archived_at``. A report (D, C) regenerated later therefore
reads the same rows. Valid time (an agency's periods, a register row's dates) is left to coverage, which picks
the rows valid on D.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from digitize.catalog.engine import CatalogBase
from digitize.catalog.reuse import reuse_events, supplied_again_events
from digitize.catalog.schema import agency_successors, agency_versions, documents, register_versions

if TYPE_CHECKING:  # pandas (~35 MB, 0.2 s) is imported by the reports that read frames, not by every worker
    import pandas as pd

AGENCY_COLUMNS = ("code", "name", "level", "parent_code", "remote", "one_stop", "valid_from", "valid_to",
                  "successor_code", "recorded_at")
REGISTER_COLUMNS = ("register_id", "agency_code", "procedure_code", "dossier_code", "title", "issued_date",
                    "valid_until", "holder_id", "successor_code", "recorded_at")
SUCCESSOR_COLUMNS = ("predecessor_code", "successor_code", "effective_date", "recorded_at")
SCAN_COLUMNS = ("code", "version", "agency_code", "scanned_at", "archived_at")


def _cutoff(cutoff: datetime | None) -> datetime:
    if cutoff is None:
        return datetime.now(UTC)
    if cutoff.tzinfo is None:
        raise ValueError("a data cut-off must be timezone-aware")
    return cutoff.astimezone(UTC)


def recorded_by(table: sa.Table, cutoff: datetime) -> sa.ColumnElement[bool]:
    """Rows of a history table as recorded at ``cutoff``: recorded by then and not yet replaced."""
    return (table.c.recorded_at <= cutoff) & (table.c.superseded_at.is_(None) | (table.c.superseded_at > cutoff))


def _counted(table: sa.FromClause, cutoff: datetime) -> sa.ColumnElement[bool]:
    """Document versions archived by ``cutoff`` and not withdrawn by then."""
    withdrawn = table.c.withdrawn & (table.c.withdrawn_at.is_(None) | (table.c.withdrawn_at <= cutoff))
    return (table.c.status == "ARCHIVED") & (table.c.archived_at <= cutoff) & ~withdrawn


class FrameQueries(CatalogBase):
    """Catalog methods returning whole tables as pandas frames, as recorded up to a cut-off."""

    def agencies_frame(self, cutoff: datetime | None = None) -> pd.DataFrame:
        """Every valid-time row of every agency as recorded at ``cutoff``.

        Columns: :data:`AGENCY_COLUMNS`; remote/one_stop bool, valid_from/valid_to datetime64 (NaT when open),
        recorded_at datetime64 UTC. A code may have several rows, with non-overlapping valid periods.
        """
        query = (sa.select(*(agency_versions.c[c] for c in AGENCY_COLUMNS))
                 .where(recorded_by(agency_versions, _cutoff(cutoff)))
                 .order_by(agency_versions.c.code, agency_versions.c.valid_from))
        frame = self._frame(query, list(AGENCY_COLUMNS))
        frame["remote"], frame["one_stop"] = frame["remote"].astype(bool), frame["one_stop"].astype(bool)
        return _utc(_dates(frame, ("valid_from", "valid_to")), ("recorded_at",))

    def register_frame(self, cutoff: datetime | None = None) -> pd.DataFrame:
        """One row per register_id: its state as recorded at ``cutoff``.

        Columns: :data:`REGISTER_COLUMNS`; issued_date/valid_until datetime64 (NaT when indefinite),
        successor_code the successor the row names (None unless the successors' levels differ), recorded_at UTC.
        """
        query = (sa.select(*(register_versions.c[c] for c in REGISTER_COLUMNS))
                 .where(recorded_by(register_versions, _cutoff(cutoff)))
                 .order_by(register_versions.c.register_id))
        frame = self._frame(query, list(REGISTER_COLUMNS))
        return _utc(_dates(frame, ("issued_date", "valid_until")), ("recorded_at",))

    def successors_frame(self, cutoff: datetime | None = None) -> pd.DataFrame:
        """Who took over which agency from which day, as recorded at ``cutoff`` (one to many, chains allowed).

        Columns: :data:`SUCCESSOR_COLUMNS`; effective_date datetime64, recorded_at UTC.
        """
        query = (sa.select(*(agency_successors.c[c] for c in SUCCESSOR_COLUMNS))
                 .where(recorded_by(agency_successors, _cutoff(cutoff)))
                 .order_by(agency_successors.c.predecessor_code, agency_successors.c.effective_date,
                           agency_successors.c.successor_code))
        frame = self._frame(query, list(SUCCESSOR_COLUMNS))
        return _utc(_dates(frame, ("effective_date",)), ("recorded_at",))

    ARCHIVED_COLUMNS = (
        "id", "code", "version", "supersedes_id", "agency_code", "kind", "title", "issued_date", "valid_until",
        "register_id", "dossier_code", "procedure_code", "holder_id", "scanned_at", "batch_id", "pages",
        "mean_confidence", "needs_review", "pdf_key", "pdf_sha256", "received_at", "archived_at", "digitized_at",
        "recorded_at",
    )

    def archived_frame(self, cutoff: datetime | None = None) -> pd.DataFrame:
        """Archived documents, one row per code: its newest version archived by ``cutoff`` and not withdrawn by then.

        Columns: see ``ARCHIVED_COLUMNS``; issued_date/valid_until datetime64 (NaT when indefinite),
        received_at/archived_at datetime64 UTC, needs_review bool. ``digitized_at`` is the stored first
        archiving of the code (from then it counts as digitized); ``recorded_at`` equals ``archived_at``.
        """
        at = _cutoff(cutoff)
        newer = documents.alias("newer")
        later_exists = (sa.select(newer.c.id)
                        .where((newer.c.code == documents.c.code) & _counted(newer, at)
                               & (newer.c.version > documents.c.version))
                        .exists())
        columns = [documents.c[c] for c in self.ARCHIVED_COLUMNS[:-1]]
        query = (sa.select(*columns, documents.c.archived_at.label("recorded_at"))
                 .where(_counted(documents, at) & ~later_exists)
                 .order_by(documents.c.id))
        frame = self._frame(query, list(self.ARCHIVED_COLUMNS))
        frame["needs_review"] = frame["needs_review"].astype(bool)
        frame = _dates(frame, ("issued_date", "valid_until"))
        return _utc(frame, ("received_at", "archived_at", "digitized_at", "recorded_at"))

    def scans_frame(self, cutoff: datetime | None = None) -> pd.DataFrame:
        """One row per archived version made from a new scan (a first version, or a correction bringing new
        scanned files) archived by ``cutoff``: not LTA renewals, metadata-only corrections nor re-links.

        Indicator 3 (units running the digitization process) reads it. Columns: :data:`SCAN_COLUMNS`;
        scanned_at is the scanning unit's agency code, archived_at datetime64 UTC. A version withdrawn later
        stays: the scan was made.
        """
        query = (sa.select(*(documents.c[c] for c in SCAN_COLUMNS))
                 .where((documents.c.status == "ARCHIVED") & (documents.c.origin == "scan")
                        & (documents.c.archived_at <= _cutoff(cutoff)))
                 .order_by(documents.c.archived_at, documents.c.code, documents.c.version))
        return _utc(self._frame(query, list(SCAN_COLUMNS)), ("archived_at",))

    def latest_recorded_at(self) -> datetime | None:
        """The newest recorded time of any fact the frames read (None for an empty catalog), for a report to say
        that it includes data recorded after an earlier cut-off."""
        moments = [
            *(sa.func.max(t.c[c]) for t in (agency_versions, register_versions, agency_successors)
              for c in ("recorded_at", "superseded_at")),
            sa.func.max(documents.c.archived_at), sa.func.max(documents.c.withdrawn_at),
            sa.func.max(reuse_events.c.recorded_at), sa.func.max(supplied_again_events.c.recorded_at),
        ]
        with self.read() as conn:
            found = [conn.execute(sa.select(m)).scalar() for m in moments]
        present = [m for m in found if m is not None]
        return max(present) if present else None

    def _frame(self, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
        with self.read() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=columns)


def _dates(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    import pandas as pd

    for column in columns:
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _utc(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    import pandas as pd

    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
