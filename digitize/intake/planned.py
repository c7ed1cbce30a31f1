"""Planned rows: documents described in the manifest's format before they are scanned, to print cover sheets for.

Dossier components (``TP``) and results missing from the register have no register row a sheet could name, so
an officer lists them in a CSV or XLSX file with the manifest's columns but no ``file`` (the scan does not exist
yet). Each row is checked as a manifest row is (``schemas/manifest.schema.json``, the same messages, a cell
holding a citizen ID never quoted); a bad row is refused with its spreadsheet row number and the others go on.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from digitize.errors import ManifestError
from digitize.intake.encodings import decode_manifest
from digitize.intake.manifest import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_ROWS,
    PlannedDocument,
    RowError,
    _not_text_problem,
    _planned_document,
    _schema_problems,
    _shortened,
)

__all__ = ["read_planned"]


def read_planned(path: Path) -> tuple[list[PlannedDocument], list[RowError]]:
    """The valid rows of a planned-rows file (one document each, ``files`` empty) and the refused ones.

    Raises :class:`ManifestError` when the file cannot be read at all (not CSV/XLSX, too big, a bad header).
    """
    header, rows = _table(Path(path))
    if "file" in header:
        raise ManifestError(f"{Path(path).name} has a 'file' column: planned rows describe documents not yet scanned",
                            hint="Delete the 'file' column (the scans are matched by their cover sheets) and print "
                                 "again.")
    documents: list[PlannedDocument] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row_no, raw in rows:
        values = {k: v for k, v in raw.items() if v != ""}
        key = values.get("document_id", f"row-{row_no}")
        problem = _not_text_problem(values)
        problems = [problem] if problem else _schema_problems({**values, "file": "planned"})
        if not problems and key in seen:
            problems = [f"document_id {key!r} is already used on row {seen[key]}"]
        if problems:
            errors.append(RowError(row_no, "", "MANIFEST_INVALID", "; ".join(problems)))
            continue
        seen[key] = row_no
        documents.append(replace(_planned_document(key, (row_no,), [{**values, "file": ""}]), files=()))
    return documents, errors


def _table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and non-empty rows (spreadsheet row numbers, header = 1) of a CSV or XLSX file, cells as text."""
    if not path.is_file():
        raise ManifestError(f"{path} does not exist or is not a file", hint="Give the path of the planned rows file.")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path.name} is too big for a list of planned rows",
                            hint="Split it into several files of fewer rows.")
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        matrix = _xlsx(path)
    elif suffix == ".csv":
        text, _encoding = decode_manifest(path.read_bytes())
        matrix = list(csv.reader(io.StringIO(unicodedata.normalize("NFC", text), newline="")))
    else:
        raise ManifestError(f"{path.name}: expected a .csv or .xlsx file", hint="Save the rows as CSV UTF-8 or XLSX.")
    if not matrix:
        raise ManifestError(f"{path.name} is empty", hint="Add a header row with the manifest's columns, then rows.")
    header = [h.strip() for h in matrix[0]]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise ManifestError(f"{path.name}: column(s) {[_shortened(h, 40) for h in twice]} appear more than once",
                            hint="Keep each column once and print again.")
    if len(matrix) - 1 > MAX_MANIFEST_ROWS:
        raise ManifestError(f"{path.name} has more than {MAX_MANIFEST_ROWS:,} rows", hint="Split it into several.")
    rows = []
    for number, cells in enumerate(matrix[1:], start=2):
        values = {name: (cells[i] if i < len(cells) else "").strip() for i, name in enumerate(header) if name}
        if any(values.values()):
            rows.append((number, values))
    return header, rows


def _xlsx(path: Path) -> list[list[str]]:
    """The first sheet's cells as text: dates as YYYY-MM-DD, whole numbers without ``.0``."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged or fake workbook
        raise ManifestError(f"{path.name} is not a readable .xlsx workbook ({type(exc).__name__})",
                            hint="Open it in Excel, save it again as .xlsx and print again.") from None
    try:
        return [[_cell(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a citizen ID typed as a number has lost its leading 0: the schema refuses it
    return str(value)
