"""Cover sheets: the rows behind printed sheet ids, so a scanned stack can be split and described without typing.

A register row's sheet stands for that row: resolving it gives the register's current fields (the register is
the source of truth; the stored copy is what was printed). A planned row (manifest fields without ``file``:
dossier components, results not in the register) is stored when its sheet is printed, and resolves to
exactly those fields. Ids come from :func:`digitize.codes.sheet_id_for`, so printing a row again gives the
same id and only updates who printed it, when.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from digitize.catalog.engine import CatalogBase
from digitize.catalog.schema import cover_sheets, register
from digitize.codes import DOCUMENT_KINDS, parse_agency_code, parse_sheet_id, sheet_id_for
from digitize.errors import CatalogConflict, CodeError

REGISTER_KIND = "KQ"
"""The register lists results of procedures: a register row's document is a ``KQ``."""

_FIELDS = ("agency_code", "kind", "title", "issued_date", "register_id", "valid_until", "dossier_code",
           "procedure_code", "holder_id", "document_id")


@dataclass(frozen=True)
class SheetRow:
    """What a cover sheet stands for: the fields a manifest row gives a document (all but ``file``)."""

    agency_code: str
    """Issuer of the document (QCVN 102 code)."""
    kind: str
    """``KQ`` or ``TP``."""
    title: str
    """Name of the document."""
    issued_date: date
    """Issue date."""
    register_id: str | None = None
    """Register row the document digitizes."""
    valid_until: date | None = None
    """End of validity, ``None`` when indefinite."""
    dossier_code: str | None = None
    """Circular 01/2018 dossier code."""
    procedure_code: str | None = None
    """TTHC procedure code."""
    holder_id: str | None = None
    """Citizen ID or tax code of the holder (personal data)."""
    document_id: str | None = None
    """A planned row's ``document_id`` (the manifest key), if it had one."""
    planned: bool = False
    """A planned row (its fields are its own), not a register row (its fields are the register's)."""
    sheet_id: str | None = None
    """The sheet's id, once registered (see :meth:`SheetRecords.register_sheets`)."""
    printed_at: datetime | None = None
    """When its sheet was last printed (UTC)."""
    printed_by: str | None = None
    """Who printed it last."""

    @property
    def key(self) -> str:
        """What the sheet id is derived from: the register id, or every field of a planned row."""
        if not self.planned:
            if not self.register_id:
                raise ValueError("a register row's sheet needs its register_id")
            return f"register:{self.register_id}"
        values = {name: getattr(self, name) for name in _FIELDS}
        return "planned:" + json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)

    @classmethod
    def from_register(cls, row: dict[str, Any]) -> SheetRow:
        """The sheet row of a register row (the register's columns; dates as ``date``)."""
        return cls(agency_code=row["agency_code"], kind=REGISTER_KIND, title=row["title"],
                   issued_date=row["issued_date"], register_id=row["register_id"], valid_until=row["valid_until"],
                   dossier_code=row["dossier_code"], procedure_code=row["procedure_code"],
                   holder_id=row["holder_id"])


class SheetRecords(CatalogBase):
    """Catalog methods on cover sheets."""

    def register_sheets(self, rows: Sequence[SheetRow], *, printed_by: str | None = None) -> list[str]:
        """Store the rows whose sheets are being printed; their sheet ids, in order. Idempotent: a row printed
        again keeps its id (its printing time and printer are updated, a register row's copy refreshed).

        Raises :class:`CatalogConflict` in the (one in 10^12 per pair) case of two rows with one id.
        """
        now = datetime.now(UTC)
        ids = []
        with self.write() as conn:
            for row in rows:
                _validate(row)
                sheet_id = sheet_id_for(row.key)
                stored = conn.execute(sa.select(cover_sheets).where(cover_sheets.c.sheet_id == sheet_id)
                                      ).mappings().first()
                values = {name: getattr(row, name) for name in _FIELDS}
                values.update(planned=row.planned, printed_at=now, printed_by=printed_by)
                if stored is None:
                    conn.execute(sa.insert(cover_sheets).values(sheet_id=sheet_id, **values))
                elif _sheet_row(stored).key != row.key:
                    raise CatalogConflict(f"sheet id {sheet_id} already stands for another row",
                                          hint="Change the row slightly (e.g. its document_id) and print again.")
                else:
                    conn.execute(sa.update(cover_sheets).where(cover_sheets.c.sheet_id == sheet_id).values(**values))
                ids.append(sheet_id)
        return ids

    def resolve_sheet(self, sheet_id: str) -> SheetRow | None:
        """The row a sheet id stands for (a register row with the register's current fields), or None when the
        id is not a valid sheet id or no sheet with it was printed here."""
        canonical = parse_sheet_id(sheet_id)
        if canonical is None:
            return None
        with self.read() as conn:
            stored = conn.execute(sa.select(cover_sheets).where(cover_sheets.c.sheet_id == canonical)
                                  ).mappings().first()
            if stored is None:
                return None
            row = _sheet_row(stored)
            if row.planned:
                return row
            current = conn.execute(sa.select(register).where(register.c.register_id == row.register_id)
                                   ).mappings().first()
        if current is None:
            return row
        fresh = SheetRow.from_register(dict(current))
        return replace(fresh, sheet_id=row.sheet_id, printed_at=row.printed_at, printed_by=row.printed_by)


def _sheet_row(stored: Any) -> SheetRow:
    return SheetRow(**{name: stored[name] for name in _FIELDS}, planned=bool(stored["planned"]),
                    sheet_id=stored["sheet_id"], printed_at=stored["printed_at"], printed_by=stored["printed_by"])


def _validate(row: SheetRow) -> None:
    """Refuse a row the pipeline could not turn into a document (bad codes raise :class:`CodeError`)."""
    parse_agency_code(row.agency_code)
    if row.kind not in DOCUMENT_KINDS:
        raise CodeError(f"document kind {row.kind!r} must be one of {', '.join(DOCUMENT_KINDS)}")
    if not row.title.strip():
        raise ValueError("title is empty")
    if row.valid_until is not None and row.valid_until < row.issued_date:
        raise ValueError(f"valid_until {row.valid_until} is before issued_date {row.issued_date}")
