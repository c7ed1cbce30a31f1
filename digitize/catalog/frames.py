"""The pandas frames coverage reads: agencies, the register, and the archived documents (one row per code).

Coverage computes its indicators over whole tables at once, so the catalog hands them over as frames with
dates as ``datetime64`` instead of records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import sqlalchemy as sa

from digitize.catalog.engine import CatalogBase
from digitize.catalog.schema import agencies, documents, register


class FrameQueries(CatalogBase):
    """Catalog methods returning whole tables as pandas frames."""

    def agencies_frame(self) -> pd.DataFrame:
        """Columns: code, name, level, parent_code, remote (bool), one_stop (bool), valid_from, valid_to
        (datetime64, NaT when open), successor_code."""
        frame = self._frame(sa.select(agencies).order_by(agencies.c.code), list(agencies.c.keys()))
        return _dates(frame, ("valid_from", "valid_to"))

    def register_frame(self) -> pd.DataFrame:
        """Columns: register_id, agency_code, procedure_code, dossier_code, title, issued_date, valid_until
        (datetime64, NaT when indefinite), holder_id."""
        frame = self._frame(sa.select(register).order_by(register.c.register_id), list(register.c.keys()))
        return _dates(frame, ("issued_date", "valid_until"))

    ARCHIVED_COLUMNS = (
        "id", "code", "version", "supersedes_id", "agency_code", "kind", "title", "issued_date", "valid_until",
        "register_id", "dossier_code", "procedure_code", "holder_id", "scanned_at", "batch_id", "pages",
        "mean_confidence", "needs_review", "pdf_key", "pdf_sha256", "received_at", "archived_at",
    )

    def archived_frame(self) -> pd.DataFrame:
        """Archived documents, one row per code (its latest archived version, so coverage counts it once).

        Columns: see ``ARCHIVED_COLUMNS``; issued_date/valid_until datetime64 (NaT when indefinite),
        received_at/archived_at datetime64 UTC, needs_review bool.
        """
        newer = documents.alias("newer")
        later_exists = (
            sa.select(newer.c.id)
            .where((newer.c.code == documents.c.code) & (newer.c.status == "ARCHIVED")
                   & (newer.c.version > documents.c.version))
            .exists()
        )
        query = (
            sa.select(*(documents.c[c] for c in self.ARCHIVED_COLUMNS))
            .where((documents.c.status == "ARCHIVED") & ~later_exists)
            .order_by(documents.c.id)
        )
        frame = self._frame(query, list(self.ARCHIVED_COLUMNS))
        frame = _dates(frame, ("issued_date", "valid_until"))
        for column in ("received_at", "archived_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def _frame(self, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
        with self.read() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        return pd.DataFrame.from_records(rows, columns=columns)


def _dates(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column])
    return frame
