"""Reuse events from the one-stop system's log: ``python -m digitize reuse import FILE.csv|xlsx``.

Indicator 4 ("citizens not asked again") counts the papers new dossiers needed: reused from the archive, or
supplied again by the holder. The reuse API records them as they happen; offices whose one-stop system does
not call it export its log instead, and this import records the same two outcomes (``reuse_events`` and
``supplied_again_events``) with the time they happened (``at``) and the time the catalog learned them
(``recorded_at``). Rows already recorded (same dossier and document, or same dossier, holder and paper) are
left as they are, so importing a log again changes nothing.

Validation is the manifest's: each refused row is reported with its spreadsheet row number and a message
naming the column (never a holder ID), the other rows are imported; a column named twice, a cell holding a
control character (or a formula, in a workbook) are refused.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.history import ReferenceFile, import_time, previewed, record_file
from digitize.catalog.imports import _code, _date, _read_table, _require_columns, _text
from digitize.catalog.records import ImportSummary, RowError
from digitize.catalog.reuse import reuse_events, supplied_again_events
from digitize.catalog.schema import documents
from digitize.codes import parse_dossier_code, parse_procedure_code
from digitize.errors import CodeError
from digitize.spreadsheet import csv_original

REUSE_REQUIRED = ("new_dossier_code", "outcome", "document", "at")
"""Columns every reuse-events file has; optional: holder_id (required for supplied_again), reason
(supplied_again: not_found, expired or unusable), procedure_code, caller_system."""
OUTCOMES = ("reused", "supplied_again")
REASONS = ("not_found", "expired", "unusable")
IMPORT_CLIENT = "reuse-import"
"""The ``client`` the imported rows carry (the API's rows carry the API client's name)."""
BUSINESS_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOT_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""The manifest's refused characters (``digitize.intake.manifest.NOT_TEXT``): controls, line breaks, bidi."""
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9:]{2,5})?")


class ReuseImports(CatalogBase):
    """The Catalog method importing the one-stop system's log of reuses and papers supplied again."""

    def import_reuse_events(self, path: Path, *, data: bytes | None = None, recorded_at: datetime | None = None,
                            source: ReferenceFile | None = None, dry_run: bool = False) -> ImportSummary:
        """Record reuse events from CSV or XLSX; bad rows are reported, not imported.

        Counts: added (new events), changed (always 0: a recorded event is kept as it is), unchanged (already
        recorded).
        """
        path = Path(path)
        data = path.read_bytes() if data is None and path.is_file() else data
        header, rows = _read_table(path, data)
        _require_columns(path, header, REUSE_REQUIRED)
        formulas = _formula_rows(path, data) if path.suffix.lower() in (".xlsx", ".xlsm") else set()
        at = import_time(recorded_at)
        rejected: list[RowError] = []
        with previewed(dry_run) as outcome, self.write() as conn:
            added = unchanged = 0
            seen: dict[tuple[str, ...], int] = {}
            for number, raw in rows:
                try:
                    if number in formulas:
                        raise ValueError("a cell holds a spreadsheet formula; paste values only and import again")
                    values = _event_values(raw)
                    key = (values["outcome"], values["new_dossier_code"], values["document"],
                           values.get("holder_id") or "")
                    if key in seen:
                        raise ValueError(f"the same event is on row {seen[key]}")
                    seen[key] = number
                    new = _record_event(conn, values, at, source)
                except ValueError as exc:
                    rejected.append(RowError(number, exc.message if isinstance(exc, CodeError) else str(exc)))
                    continue
                added, unchanged = added + new, unchanged + (not new)
            if added:
                record_file(conn, source, at, added + unchanged)
            outcome.done(ImportSummary(added, 0, unchanged, rejected=rejected))
        return outcome.summary


def _formula_rows(path: Path, data: bytes | None) -> set[int]:
    """Rows of the first sheet with a formula cell (read as written, not as last computed)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data if data is not None else path.read_bytes()), read_only=True)
    except Exception:  # _read_table already said what is wrong with the workbook
        return set()
    try:
        return {number for number, row in enumerate(book.worksheets[0].iter_rows(values_only=True), start=1)
                if any(isinstance(v, str) and v.startswith("=") for v in row)}
    finally:
        book.close()


def _cell(raw: Mapping[str, Any], column: str, *, limit: int, required: bool = False) -> str | None:
    value = csv_original(_text(raw.get(column)))
    if NOT_TEXT.search(value):
        raise ValueError(f"column {column} holds a control character or line break, which is not text; retype the "
                         "cell without it")
    if not value:
        if required:
            raise ValueError(f"column {column} is empty")
        return None
    if len(value) > limit:
        raise ValueError(f"column {column} is longer than {limit} characters")
    return value


def _moment(raw: Mapping[str, Any]) -> datetime:
    """Column ``at``: a timestamp (with its zone, else Vietnam's) or a date (its start in Vietnam), as UTC."""
    value = raw.get("at")
    if isinstance(value, datetime):
        local = value if value.tzinfo else value.replace(tzinfo=BUSINESS_TZ)
        return local.astimezone(UTC)
    text = _text(value)
    if _TIMESTAMP.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"column at: {text!r} is not a real time") from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=BUSINESS_TZ)).astimezone(UTC)
    day = _date(raw, "at", required=True)
    assert day is not None
    return datetime.combine(day, time(0), tzinfo=BUSINESS_TZ).astimezone(UTC)


def _event_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    for column, value in raw.items():
        if isinstance(value, str) and NOT_TEXT.search(value):
            raise ValueError(f"column {column} holds a control character or line break, which is not text; retype "
                             "the cell without it")
    kind = (_cell(raw, "outcome", limit=20, required=True) or "").lower()
    if kind not in OUTCOMES:
        raise ValueError(f"column outcome: {kind!r} must be one of {', '.join(OUTCOMES)}")
    values: dict[str, Any] = {
        "outcome": kind,
        "new_dossier_code": _code(raw, "new_dossier_code", parse_dossier_code, required=True),
        "document": _cell(raw, "document", limit=200, required=True),
        "holder_id": _cell(raw, "holder_id", limit=100),
        "caller_system": _cell(raw, "caller_system", limit=200) or "one-stop system log",
        "at": _moment(raw),
    }
    if kind == "supplied_again":
        if values["holder_id"] is None:
            raise ValueError("column holder_id is empty; a paper supplied again needs its holder")
        reason = (_cell(raw, "reason", limit=20, required=True) or "").lower()
        if reason not in REASONS:
            raise ValueError(f"column reason: {reason!r} must be one of {', '.join(REASONS)}")
        values["reason"] = reason
        values["procedure_code"] = _code(raw, "procedure_code", parse_procedure_code)
    values["document"] = unicodedata.normalize("NFC", values["document"])
    return values


def _record_event(conn: Connection, values: dict[str, Any], at: datetime, source: ReferenceFile | None) -> bool:
    """Insert one event unless already recorded; True if inserted."""
    purpose = f"imported from {source.name} (sha256 {source.sha256[:12]}…)" if source else "imported from a log"
    common = {"client": IMPORT_CLIENT, "caller_system": values["caller_system"],
              "new_dossier_code": values["new_dossier_code"], "purpose": purpose, "recorded_at": at}
    if values["outcome"] == "reused":
        document = conn.execute(  # as archived at the import's time: a rebuild replaying it finds the same
            sa.select(documents.c.id, documents.c.holder_id).where(
                (documents.c.code == values["document"]) & (documents.c.status == "ARCHIVED")
                & (documents.c.archived_at <= at))
            .order_by(documents.c.version.desc()).limit(1)).first()
        if document is None:
            raise ValueError(f"column document: no archived document has code {values['document']}; a reused "
                             "document must be one archived here")
        if values["holder_id"] is not None and values["holder_id"] != document.holder_id:
            raise ValueError("column holder_id: it is not the holder of that document")
        if conn.execute(sa.select(reuse_events.c.id).where(  # by code: the API may have recorded another version
                (reuse_events.c.code == values["document"])
                & (reuse_events.c.new_dossier_code == values["new_dossier_code"]))).first() is not None:
            return False
        conn.execute(sa.insert(reuse_events).values(document_id=document.id, code=values["document"],
                                                    reused_at=values["at"], **common))
        return True
    if conn.execute(sa.select(supplied_again_events.c.id).where(
            (supplied_again_events.c.new_dossier_code == values["new_dossier_code"])
            & (supplied_again_events.c.holder_id == values["holder_id"])
            & (supplied_again_events.c.document == values["document"]))).first() is not None:
        return False
    conn.execute(sa.insert(supplied_again_events).values(
        holder_id=values["holder_id"], document=values["document"], procedure_code=values["procedure_code"],
        reason=values["reason"], occurred_at=values["at"], **common))
    return True
