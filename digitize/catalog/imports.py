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
from itertools import pairwise
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digitize.catalog.engine import CatalogBase
from digitize.catalog.history import (
    ReferenceFile,
    current_rows,
    descendants,
    finds_cycle,
    import_time,
    previewed,
    record_file,
    record_history,
    reference_imports,
    split_levels,
    successors_of,
)
from digitize.catalog.records import Agency, ImportSummary, RowError
from digitize.catalog.schema import (
    LEVELS,
    agencies,
    agency_successors,
    agency_versions,
    register,
    register_versions,
)
from digitize.codes import parse_agency_code, parse_dossier_code, parse_procedure_code
from digitize.errors import CodeError, ImportFileError


class ReferenceData(CatalogBase):
    """Catalog methods on the agencies, the register and agency successors (the denominator of coverage).

    Each import records history (see :mod:`digitize.catalog.history`): ``agencies`` and ``register`` hold the
    current state, ``agency_versions``/``register_versions``/``agency_successors`` every recorded state.
    ``recorded_at`` (default now) is the time the import's rows carry; ``source`` names the archived file, noted
    in ``reference_files`` when the import changed something (see :mod:`digitize.preservation.reference`).
    """

    def get_agency(self, code: str, *, as_of: date | None = None) -> Agency | None:
        """The agency with ``code`` (``None`` if unknown): its latest period over its whole life, or, with
        ``as_of``, its period of that day as now recorded (``None`` if it did not exist that day)."""
        parse_agency_code(code)
        with self.read() as conn:
            if as_of is None:
                row = conn.execute(sa.select(agencies).where(agencies.c.code == code)).mappings().first()
                return None if row is None else Agency(**dict(row))
            periods = current_rows(conn, agency_versions, "code", [code]).get(code, [])
        found = [Agency(**period) for period in periods]
        return next((agency for agency in found if agency.valid_on(as_of)), None)

    def import_agencies(self, path: Path, *, data: bytes | None = None, recorded_at: datetime | None = None,
                        source: ReferenceFile | None = None, dry_run: bool = False) -> ImportSummary:
        """Record agencies from CSV (UTF-8, BOM accepted) or XLSX; bad rows are reported, not imported.

        Columns: code, name, level, valid_from (required); parent_code, remote, one_stop, valid_to,
        successor_code (optional). A code may have several rows, one per period (different valid_from, periods
        not overlapping) when its level, flags, name or parent changed: the file gives all of a code's periods,
        which replace those recorded before. Parents and successors must be in the file or already in the
        catalog. Counts are of agency codes.
        """
        header, rows = _read_table(path, data)
        _require_columns(path, header, ("code", "name", "level", "valid_from"))
        rejected: list[RowError] = []
        parsed: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for number, raw in rows:
            try:
                values = _agency_values(raw)
            except ValueError as exc:
                rejected.append(RowError(number, _message(exc)))
                continue
            members = parsed.setdefault(values["code"], [])
            twice = next((n for n, v in members if v["valid_from"] == values["valid_from"]), None)
            if twice is not None:
                rejected.append(RowError(number, f"code {values['code']} from {values['valid_from']} repeats row "
                                                 f"{twice}"))
                continue
            members.append((number, values))
        for code in list(parsed):
            problem = _period_problem(parsed[code])
            if problem is not None:
                rejected.extend(RowError(n, problem) for n, _ in parsed.pop(code))
        at = import_time(recorded_at)
        with previewed(dry_run) as outcome, self.write() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
            _drop_unknown_references(parsed, known, rejected)
            groups = {code: [v for _, v in members] for code, members in parsed.items()}
            summary = record_history(conn, agency_versions, "code", groups, at)
            self._upsert(conn, agencies, "code", [_span(members) for members in groups.values()])
            if summary[0] or summary[1]:
                record_file(conn, source, at, sum(len(m) for m in groups.values()))
            rejected.sort(key=lambda e: e.row_number)
            outcome.done(ImportSummary(*summary, rejected=rejected))
        return outcome.summary

    def import_register(self, path: Path, *, data: bytes | None = None, recorded_at: datetime | None = None,
                        source: ReferenceFile | None = None, dry_run: bool = False) -> ImportSummary:
        """Record register rows by register_id from CSV or XLSX; bad rows are reported, not imported.

        Columns: register_id, agency_code, title, issued_date (required); procedure_code, dossier_code,
        valid_until, holder_id, successor_code (optional). Agencies must be imported first. ``successor_code``
        names the agency that took the result over; it is required when the row's agency was split among
        successors of different levels (import the successors first), and refused when the agency has none.
        """
        header, rows = _read_table(path, data)
        _require_columns(path, header, ("register_id", "agency_code", "title", "issued_date"))
        at = import_time(recorded_at)
        with previewed(dry_run) as outcome, self.write() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
            successors = successors_of(conn)
            splits: dict[str, dict[str, str] | None] = {}  # per agency: a register may hold a million rows
            rejected: list[RowError] = []
            parsed: dict[str, tuple[int, dict[str, Any]]] = {}
            for number, raw in rows:
                try:
                    values = _register_values(raw)
                    _check_register_agency(conn, values, known, successors, splits)
                except ValueError as exc:
                    rejected.append(RowError(number, _message(exc)))
                    continue
                if values["register_id"] in parsed:
                    rejected.append(RowError(number, f"register_id {values['register_id']} repeats row "
                                                     f"{parsed[values['register_id']][0]}"))
                    continue
                parsed[values["register_id"]] = (number, values)
            groups = {key: [values] for key, (_, values) in parsed.items()}
            summary = record_history(conn, register_versions, "register_id", groups, at)
            self._upsert(conn, register, "register_id", [v for _, v in parsed.values()])
            if summary[0] or summary[1]:
                record_file(conn, source, at, len(groups))
            outcome.done(ImportSummary(*summary, rejected=rejected))
        return outcome.summary

    def import_successors(self, path: Path, *, data: bytes | None = None, recorded_at: datetime | None = None,
                          source: ReferenceFile | None = None, dry_run: bool = False) -> ImportSummary:
        """Record who took over abolished agencies, from CSV or XLSX; bad rows are reported, not imported.

        Columns: predecessor_code, successor_code, effective_date (all required). One row per successor: a
        split is several rows of one predecessor; a chain is a successor that is itself a predecessor. The rows
        of a predecessor replace those recorded before. Both agencies must be in the catalog. Counts are of
        predecessors; ``warnings`` name register rows that must now name their successor.
        """
        header, rows = _read_table(path, data)
        _require_columns(path, header, ("predecessor_code", "successor_code", "effective_date"))
        at = import_time(recorded_at)
        with previewed(dry_run) as outcome, self.write() as conn:
            known = set(conn.execute(sa.select(agencies.c.code)).scalars())
            rejected: list[RowError] = []
            parsed = _successor_rows(rows, known, rejected)
            graph = {**successors_of(conn), **{p: [(v["successor_code"], v["effective_date"]) for _, v in members]
                                               for p, members in parsed.items()}}
            looping = finds_cycle(graph)
            if looping is not None:
                raise ImportFileError(f"{Path(path).name}: agency {looping} would succeed itself down a chain of "
                                      "successors", hint="Correct the chain in the file and import it again.")
            groups = {p: [v for _, v in members] for p, members in parsed.items()}
            summary = record_history(conn, agency_successors, "predecessor_code", groups, at)
            if summary[0] or summary[1]:
                record_file(conn, source, at, sum(len(m) for m in groups.values()))
            rejected.sort(key=lambda e: e.row_number)
            outcome.done(ImportSummary(*summary, rejected=rejected,
                                       warnings=_unnamed_successors(conn, graph, list(groups))))
        return outcome.summary

    def reference_imports(self) -> list[dict[str, Any]]:
        """Every import that changed the reference data: kind, name, sha256, key, recorded_at, rows; oldest first."""
        with self.read() as conn:
            return reference_imports(conn)

    @staticmethod
    def _upsert(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> tuple[int, int, int]:
        """Insert new rows, update changed ones (the current state; history is kept apart)."""
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


def _period_problem(members: list[tuple[int, dict[str, Any]]]) -> str | None:
    """Why the periods of one agency cannot all hold (a repeated start, an overlap), or None."""
    ordered = sorted(members, key=lambda m: m[1]["valid_from"])
    for (n1, a), (n2, b) in pairwise(ordered):
        if a["valid_to"] is None or a["valid_to"] >= b["valid_from"]:
            return (f"agency {a['code']}: the period of row {n1} (from {a['valid_from']}) overlaps that of row {n2} "
                    f"(from {b['valid_from']}); each period must end (valid_to) before the next starts")
    return None


def _drop_unknown_references(parsed: dict[str, list[tuple[int, dict[str, Any]]]], known: set[str],
                             rejected: list[RowError]) -> None:
    """Refuse the agencies whose parent or successor is nowhere (a refused parent takes its children with it)."""
    while True:
        available = known | set(parsed)
        dropped = []
        for code, members in parsed.items():
            for number, values in members:
                bad = next((c for c in ("parent_code", "successor_code")
                            if values[c] is not None and values[c] not in available), None)
                if bad is not None:
                    dropped.append(code)
                    rejected.append(RowError(number, f"column {bad}: agency {values[bad]} is neither in the file "
                                                     "nor in the catalog"))
                    break
        if not dropped:
            return
        for code in dropped:
            rejected.extend(RowError(n, f"agency {code}: another of its rows was refused; fix that row")
                            for n, _ in parsed[code] if not any(e.row_number == n for e in rejected))
            del parsed[code]


def _span(periods: list[dict[str, Any]]) -> dict[str, Any]:
    """An agency's current row: its latest period's attributes over its whole life (first start, last end)."""
    ordered = sorted(periods, key=lambda p: p["valid_from"])
    return {**ordered[-1], "valid_from": ordered[0]["valid_from"]}


def _check_register_agency(conn: Connection, values: dict[str, Any], known: set[str],
                           successors: dict[str, list[tuple[str, date]]], splits: dict[str, dict[str, str] | None]
                           ) -> None:
    agency, named = values["agency_code"], values["successor_code"]
    if agency not in known:
        raise ValueError(f"column agency_code: agency {agency} is not in the catalog; import it with the agencies "
                         "first")
    if named is not None and named not in descendants(successors, agency):
        raise ValueError(f"column successor_code: {named} is not a successor of agency {agency} in the catalog; "
                         "import the successors file first, or leave successor_code empty")
    if agency not in splits:
        splits[agency] = split_levels(conn, successors, agency)
    levels = splits[agency] if named is None else None
    if levels:
        listed = ", ".join(f"{code} ({level})" for code, level in sorted(levels.items()))
        raise ValueError(f"agency {agency} was split among successors of different levels ({listed}): name the "
                         "one that took this result over in column successor_code")


def _successor_rows(rows: list[tuple[int, dict[str, Any]]], known: set[str], rejected: list[RowError]
                    ) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    parsed: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, raw in rows:
        try:
            predecessor = _code(raw, "predecessor_code", parse_agency_code, required=True)
            successor = _code(raw, "successor_code", parse_agency_code, required=True)
            effective = _date(raw, "effective_date", required=True)
            if predecessor == successor:
                raise ValueError(f"agency {predecessor} cannot be its own successor")
            missing = [c for c in (predecessor, successor) if c not in known]
            if missing:
                raise ValueError(f"agency {missing[0]} is not in the catalog; import it with the agencies first")
        except ValueError as exc:
            rejected.append(RowError(number, _message(exc)))
            continue
        assert predecessor is not None
        members = parsed.setdefault(predecessor, [])
        twice = next((n for n, v in members if v["successor_code"] == successor), None)
        if twice is not None:
            rejected.append(RowError(number, f"{predecessor} → {successor} repeats row {twice}"))
            continue
        members.append((number, {"predecessor_code": predecessor, "successor_code": successor,
                                 "effective_date": effective}))
    return parsed


def _unnamed_successors(conn: Connection, graph: dict[str, list[tuple[str, date]]], predecessors: list[str]
                        ) -> list[str]:
    """Register rows of split agencies (successors of different levels) that name no successor."""
    split = [p for p in predecessors if split_levels(conn, graph, p)]
    if not split:
        return []
    ids = conn.execute(sa.select(register.c.register_id, register.c.agency_code)
                       .where(register.c.agency_code.in_(split) & register.c.successor_code.is_(None))
                       .order_by(register.c.register_id)).all()
    return [f"register row {rid} of agency {agency} names no successor, and {agency}'s successors have different "
            "levels: re-import the register with successor_code on that row" for rid, agency in ids]


# ------------------------------------------------------------------------------------------- parsing


def _message(exc: ValueError) -> str:
    return exc.message if isinstance(exc, CodeError) else str(exc)


def _read_table(path: Path, data: bytes | None = None) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Header (lower-cased) and non-empty rows with their spreadsheet row numbers (header = row 1).

    ``data``: the file's bytes when the caller read them already (to archive exactly what is imported).
    """
    path = Path(path)
    if data is None:
        if not path.is_file():
            raise ImportFileError(f"{path} does not exist or is not a file")
        data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        matrix = _xlsx_rows(path, data)
    elif suffix == ".csv":
        matrix = _csv_rows(path, data)
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


def _csv_rows(path: Path, raw: bytes) -> list[tuple[int, list[Any]]]:
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


def _xlsx_rows(path: Path, data: bytes) -> list[tuple[int, list[Any]]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
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
        "successor_code": _code(raw, "successor_code", parse_agency_code),
    }
