"""Agencies and the register: the Catalog methods that import and look them up, and the CSV/XLSX parsing.

Officers keep these lists in spreadsheets, so the parsing forgives what Excel does (a BOM, ``;`` as the
delimiter, numbers for codes, DD/MM/YYYY dates, "có"/"không") and reports each refused row with its
spreadsheet row number instead of refusing the file.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.records import Agency, ImportSummary, RowError
from digitize.catalog.schema import LEVELS, agencies, register
from digitize.codes import parse_agency_code, parse_dossier_code, parse_procedure_code
from digitize.errors import CodeError, ImportFileError


class ReferenceData(CatalogBase):
    """Catalog methods on the agencies and the register (the denominator of coverage)."""

    def get_agency(self, code: str, *, as_of: date | None = None) -> Agency | None:
        """The agency with ``code`` (``None`` if unknown, or if it did not exist on ``as_of``)."""
        parse_agency_code(code)
        with self.read() as conn:
            row = conn.execute(sa.select(agencies).where(agencies.c.code == code)).mappings().first()
        if row is None:
            return None
        agency = Agency(**dict(row))
        if as_of is not None and not agency.valid_on(as_of):
            return None
        return agency

    def import_agencies(self, path: Path) -> ImportSummary:
        """Upsert agencies by code from CSV (UTF-8, BOM accepted) or XLSX; bad rows are reported, not imported.

        Columns: code, name, level, valid_from (required); parent_code, remote, one_stop, valid_to,
        successor_code (optional). Parents and successors must be in the file or already in the catalog.
        """
        header, rows = _read_table(path)
        _require_columns(path, header, ("code", "name", "level", "valid_from"))
        rejected: list[RowError] = []
        parsed: dict[str, tuple[int, dict[str, Any]]] = {}
        for number, raw in rows:
            try:
                values = _agency_values(raw)
            except ValueError as exc:
                rejected.append(RowError(number, _message(exc)))
                continue
            if values["code"] in parsed:
                rejected.append(RowError(number, f"code {values['code']} repeats row {parsed[values['code']][0]}"))
                continue
            parsed[values["code"]] = (number, values)
        with self.write() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
            while True:  # a refused parent takes its children with it
                available = known | set(parsed)
                dropped = []
                for code, (number, values) in parsed.items():
                    for column in ("parent_code", "successor_code"):
                        ref = values[column]
                        if ref is not None and ref not in available:
                            dropped.append(code)
                            rejected.append(RowError(
                                number, f"column {column}: agency {ref} is neither in the file nor in the catalog"))
                            break
                if not dropped:
                    break
                for code in dropped:
                    del parsed[code]
            summary = self._upsert(conn, agencies, "code", [v for _, v in parsed.values()])
        rejected.sort(key=lambda e: e.row_number)
        return ImportSummary(*summary, rejected=rejected)

    def import_register(self, path: Path) -> ImportSummary:
        """Upsert register rows by register_id from CSV or XLSX; bad rows are reported, not imported.

        Columns: register_id, agency_code, title, issued_date (required); procedure_code, dossier_code,
        valid_until, holder_id (optional). Agencies must be imported first.
        """
        header, rows = _read_table(path)
        _require_columns(path, header, ("register_id", "agency_code", "title", "issued_date"))
        with self.read() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
        rejected: list[RowError] = []
        parsed: dict[str, tuple[int, dict[str, Any]]] = {}
        for number, raw in rows:
            try:
                values = _register_values(raw)
            except ValueError as exc:
                rejected.append(RowError(number, _message(exc)))
                continue
            if values["agency_code"] not in known:
                rejected.append(RowError(
                    number, f"column agency_code: agency {values['agency_code']} is not in the catalog; "
                            "import it with the agencies first"))
                continue
            if values["register_id"] in parsed:
                rejected.append(RowError(
                    number, f"register_id {values['register_id']} repeats row {parsed[values['register_id']][0]}"))
                continue
            parsed[values["register_id"]] = (number, values)
        with self.write() as conn:
            summary = self._upsert(conn, register, "register_id", [v for _, v in parsed.values()])
        return ImportSummary(*summary, rejected=rejected)

    @staticmethod
    def _upsert(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> tuple[int, int, int]:
        """Insert new rows, update changed ones; returns (added, changed, unchanged)."""
        existing: dict[str, dict[str, Any]] = {}
        keys = [r[key] for r in rows]
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for row in conn.execute(sa.select(table).where(table.c[key].in_(chunk))).mappings():
                existing[row[key]] = dict(row)
        new = [r for r in rows if r[key] not in existing]
        changed = [r for r in rows if r[key] in existing and existing[r[key]] != r]
        if new:
            conn.execute(sa.insert(table), new)
        if changed:
            columns: dict[str, Any] = {c.name: sa.bindparam(f"v_{c.name}") for c in table.c if c.name != key}
            statement = sa.update(table).where(table.c[key] == sa.bindparam("v_key")).values(columns)
            conn.execute(statement, [{"v_key": r[key], **{f"v_{c}": r[c] for c in columns}} for r in changed])
        return len(new), len(changed), len(rows) - len(new) - len(changed)


# ------------------------------------------------------------------------------------------- parsing


def _message(exc: ValueError) -> str:
    return exc.message if isinstance(exc, CodeError) else str(exc)


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Header (lower-cased) and non-empty rows with their spreadsheet row numbers (header = row 1)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        matrix = _xlsx_rows(path)
    elif suffix == ".csv":
        matrix = _csv_rows(path)
    else:
        raise ImportFileError(f"{path.name}: expected a .csv or .xlsx file, got {suffix or 'no extension'!r}")
    if not matrix:
        raise ImportFileError(f"{path.name} is empty: expected a header row")
    header = [_text(v).lower() for v in matrix[0][1]]
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:  # each row would keep only the last of them: a citizen ID or a name in the first would vanish
        raise ImportFileError(f"{path.name}: header names column(s) {', '.join(repr(n) for n in twice)} more than "
                              "once (headers are compared without case)",
                              hint="Keep each column once: move the values of the extra column into the first, "
                                   "delete it, and import again.")
    rows = []
    for number, values in matrix[1:]:
        if all(_text(v) == "" for v in values):
            continue
        rows.append((number, {name: values[i] if i < len(values) else None for i, name in enumerate(header) if name}))
    return header, rows


def _csv_rows(path: Path) -> list[tuple[int, list[Any]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path.name} is not UTF-8 (invalid byte at position {exc.start}); it looks like a legacy encoding",
            hint="In Excel use File > Save As > 'CSV UTF-8 (Comma delimited)', then import again.",
        ) from None
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)  # Excel in comma-decimal locales writes ';'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [(number, row) for number, row in enumerate(reader, start=1)]


def _xlsx_rows(path: Path) -> list[tuple[int, list[Any]]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged or fake workbook
        raise ImportFileError(f"{path.name} is not a readable .xlsx workbook: {type(exc).__name__}") from None
    try:
        sheet = workbook.worksheets[0]
        return [(number, list(row)) for number, row in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        workbook.close()


def _require_columns(path: Path, header: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFileError(f"{Path(path).name}: header lacks column(s) {', '.join(missing)}; it has {list(header)}")


def _text(value: Any) -> str:
    """A cell as clean text: NFC, stripped; Excel integers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _optional(raw: Mapping[str, Any], column: str) -> str | None:
    return _text(raw.get(column)) or None


def _required(raw: Mapping[str, Any], column: str) -> str:
    value = _text(raw.get(column))
    if not value:
        raise ValueError(f"column {column} is empty")
    return value


def _code(raw: Mapping[str, Any], column: str, parse: Callable[[str], object], required: bool = False) -> str | None:
    value = raw.get(column)
    if isinstance(value, float):
        raise ValueError(f"column {column}: {value!r} was stored as a number by Excel; format the column as Text")
    text = _text(value)
    if not text:
        if required:
            raise ValueError(f"column {column} is empty")
        return None
    try:
        parse(text)
    except CodeError as exc:
        raise ValueError(f"column {column}: {exc.message}") from None
    return text


_DMY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


def _date(raw: Mapping[str, Any], column: str, required: bool = False) -> date | None:
    value = raw.get(column)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        if required:
            raise ValueError(f"column {column} is empty; expected a date YYYY-MM-DD")
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text)
        match = _DMY.fullmatch(text)
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        raise ValueError(f"column {column}: {text!r} is not a real date") from None
    raise ValueError(f"column {column}: {text!r} is not a date; expected YYYY-MM-DD (or DD/MM/YYYY)")


_TRUE = {"true", "1", "yes", "y", "x", "có", "co"}
_FALSE = {"", "false", "0", "no", "n", "không", "khong"}


def _flag(raw: Mapping[str, Any], column: str) -> bool:
    text = _text(raw.get(column)).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"column {column}: {text!r} is not a yes/no value; expected true/false (or 1/0)")


def _agency_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    code = _code(raw, "code", parse_agency_code, required=True)
    level = _required(raw, "level").lower()
    if level not in LEVELS:
        raise ValueError(f"column level: {level!r} must be one of {', '.join(LEVELS)}")
    parent, successor = _code(raw, "parent_code", parse_agency_code), _code(raw, "successor_code", parse_agency_code)
    if code in (parent, successor):
        raise ValueError(f"agency {code} cannot be its own parent or successor")
    valid_from, valid_to = _date(raw, "valid_from", required=True), _date(raw, "valid_to")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise ValueError(f"column valid_to: {valid_to} is before valid_from {valid_from}")
    return {
        "code": code, "name": _required(raw, "name"), "level": level, "parent_code": parent,
        "remote": _flag(raw, "remote"), "one_stop": _flag(raw, "one_stop"), "valid_from": valid_from,
        "valid_to": valid_to, "successor_code": successor,
    }


def _register_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    issued, until = _date(raw, "issued_date", required=True), _date(raw, "valid_until")
    if issued is not None and until is not None and until < issued:
        raise ValueError(f"column valid_until: {until} is before issued_date {issued}")
    return {
        "register_id": _required(raw, "register_id"),
        "agency_code": _code(raw, "agency_code", parse_agency_code, required=True),
        "procedure_code": _code(raw, "procedure_code", parse_procedure_code),
        "dossier_code": _code(raw, "dossier_code", parse_dossier_code),
        "title": _required(raw, "title"),
        "issued_date": issued,
        "valid_until": until,
        "holder_id": _optional(raw, "holder_id"),
    }
