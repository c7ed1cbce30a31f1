"""Read and validate batch manifests (``manifest.csv``), and decide when a batch is complete.

Officers edit manifests in Excel, so a UTF-8 byte-order mark is accepted, legacy
Vietnamese encodings are recognised (:mod:`digitize.intake.encodings`) and text is
normalised to NFC. Each row is checked against
``schemas/manifest.schema.json``; a bad row yields a row-level error and the
other rows go on. File paths are confined to the batch folder: absolute
paths, ``..`` and symlinks that lead outside are refused.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from digitize.config import REPO_ROOT
from digitize.errors import ManifestError
from digitize.intake.encodings import decode_manifest
from digitize.intake.inbox import MANIFEST_NAME, READY_MARKER, BatchSource, LocalBatch

__all__ = ["MANIFEST_NAME", "READY_MARKER", "BatchPlan", "PlannedDocument", "RowError", "batch_is_ready",
           "discover_batches", "read_manifest"]
SCHEMA_PATH = REPO_ROOT / "schemas" / "manifest.schema.json"
DONE_FOLDER = "done"
"""Sub-folder of a batch where verified originals go when ``DIGITIZE_MOVE_DONE`` is on (see the pipeline)."""


@dataclass(frozen=True)
class RowError:
    """A manifest problem the officer must fix; ``row`` is the spreadsheet row number (header = 1)."""

    row: int
    """Spreadsheet row number (the header is row 1); 0 for problems of the whole manifest."""

    file: str
    """The ``file`` cell of the row, or the name of a file without a row."""

    reason: str
    """Stable reason code."""

    message: str
    """What is wrong and what to do."""


@dataclass(frozen=True)
class PlannedDocument:
    """One document of a batch as the manifest describes it, before anything is registered."""

    key: str
    """The manifest's ``document_id``, or the file name for single-file documents."""

    rows: tuple[int, ...]
    """Spreadsheet rows that describe it."""

    files: tuple[str, ...]
    """Paths relative to the batch folder, in manifest order."""

    agency_code: str
    """Agency with authority over the document (the issuer)."""

    kind: str
    """``KQ`` (procedure result) or ``TP`` (dossier component)."""

    title: str
    """Name of the document."""

    issued_date: date
    """Issue date."""

    procedure_code: str | None = None
    """National TTHC database code."""

    dossier_code: str | None = None
    """Circular 01/2018 dossier code."""

    register_id: str | None = None
    """Register row this document digitizes."""

    valid_until: date | None = None
    """Validity end of the result, ``None`` for indefinite."""

    holder_id: str | None = None
    """Citizen ID or tax code of the holder (personal data)."""

    scanned_at: str | None = None
    """Code of the one-stop unit that scanned it."""


@dataclass(frozen=True)
class BatchPlan:
    """What a manifest asks for: documents to process and rows that cannot be."""

    batch_id: str
    """Name of the batch folder."""

    root: Path
    """The batch folder (for a batch on S3, only its name: read its files through ``source``)."""

    documents: tuple[PlannedDocument, ...]
    """Valid documents, in manifest order."""

    errors: tuple[RowError, ...]
    """Rows (and files) that were refused, with what to do."""

    source: BatchSource | None = None
    """Where the files are read from (``None``: the local folder ``root``)."""

    encoding: str = "UTF-8"
    """Encoding the manifest was read in (a legacy one was converted: tell the officer to save UTF-8)."""

    @property
    def files(self) -> BatchSource:
        return self.source if self.source is not None else LocalBatch(self.root)


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _schema_columns() -> tuple[set[str], set[str]]:
    schema = _validator().schema
    return set(schema["required"]), set(schema["properties"])


def _describe(error: jsonschema.ValidationError) -> str:
    field = error.path[-1] if error.path else None
    if error.validator == "required":
        return f"{error.message}; fill in that column"
    if error.validator == "additionalProperties":
        return f"unknown column: {error.message}"
    if field is None:
        return error.message
    value = error.instance
    expected = error.schema.get("description", "")
    if error.validator == "not" and field == "file":
        return f"column 'file' = {value!r} must be a path inside the batch folder (no absolute path, no '..')"
    return f"column '{field}' = {value!r} is invalid ({error.validator}); expected: {expected}"


def _check_consistent(rows: Sequence[dict[str, str]], fields: Sequence[str]) -> str | None:
    for name in fields:
        values = {r.get(name) for r in rows}
        if len(values) > 1:
            return f"rows of one document_id disagree on '{name}': {sorted(v or '' for v in values)}"
    return None


_DOC_FIELDS = (
    "agency_code", "kind", "title", "issued_date", "procedure_code", "dossier_code",
    "register_id", "valid_until", "holder_id", "scanned_at",
)


def read_manifest(batch_dir: Path | BatchSource) -> BatchPlan:
    """Parse and validate a batch's manifest (local folder or S3 prefix).

    Raises :class:`ManifestError` only when no row can be used.
    """
    source = LocalBatch(batch_dir) if isinstance(batch_dir, Path) else batch_dir
    reader, encoding = _open_manifest(source)
    rows = _RowSorter(source)
    for offset, raw_row in enumerate(reader):
        rows.add(offset + 2, raw_row)
    documents, errors = _plan_documents(rows.grouped)
    errors = rows.errors + errors + _unlisted_files(source, rows.mentioned)
    if isinstance(source, LocalBatch):
        return BatchPlan(batch_id=source.name, root=source.root, documents=tuple(documents), errors=tuple(errors),
                         encoding=encoding)
    return BatchPlan(batch_id=source.name, root=Path(source.name), documents=tuple(documents), errors=tuple(errors),
                     source=source, encoding=encoding)


def _open_manifest(source: BatchSource) -> tuple[csv.DictReader[str], str]:
    """The manifest's rows, ready to read, and its encoding; a missing manifest or a bad header refuses the batch."""
    if isinstance(source, LocalBatch) and source.inside(MANIFEST_NAME) is None:
        raise ManifestError(f"{MANIFEST_NAME} of batch {source.name} leads outside the batch folder",
                            hint="Copy the manifest itself into the batch folder (not a link to elsewhere).")
    if not source.exists(MANIFEST_NAME):
        raise ManifestError(f"no {MANIFEST_NAME} in batch {source.name}", hint="Add manifest.csv to the batch folder.")
    decoded, encoding = decode_manifest(source.read_bytes(MANIFEST_NAME))
    text = unicodedata.normalize("NFC", decoded)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    required, known = _schema_columns()
    missing = sorted(required - set(header))
    unknown = sorted(set(header) - known)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unknown:
            parts.append(f"unknown columns {unknown} (known: {sorted(known)})")
        raise ManifestError(f"{MANIFEST_NAME} header: " + "; ".join(parts))
    return reader, encoding


@dataclass
class _RowSorter:
    """Sorts the manifest's rows into documents (grouped by ``document_id``) and refusals, row by row."""

    source: BatchSource
    """Where the rows' files are looked for."""

    errors: list[RowError] = field(default_factory=list)
    """Rows refused so far."""

    grouped: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    """Valid rows (spreadsheet row number, non-empty cells) by document key, in manifest order."""

    seen_files: dict[str, int] = field(default_factory=dict)
    """Row that listed each file first (a file belongs to one row)."""

    mentioned: set[str] = field(default_factory=set)
    """Files named by a row, valid or not: the others are reported as not in the manifest."""

    def add(self, row_no: int, raw_row: dict[str | None, Any]) -> None:
        """Check one row; a bad row becomes a :class:`RowError` and the other rows go on."""
        row = {k.strip(): (v or "").strip() for k, v in raw_row.items() if k is not None}
        if None in raw_row:
            self.errors.append(RowError(row_no, row.get("file", ""), "MANIFEST_INVALID",
                                        "row has more cells than the header"))
            return
        values = {k: v for k, v in row.items() if v != ""}
        file_cell = values.get("file", "")
        self.mentioned.add(str(Path(file_cell)) if file_cell else "")
        problems = _schema_problems(values) or self._file_problems(file_cell)
        if problems:
            self.errors.append(RowError(row_no, file_cell, "MANIFEST_INVALID", "; ".join(problems)))
        elif not self.source.exists(file_cell) and self.source.exists(f"{DONE_FOLDER}/{file_cell}"):
            self.mentioned.add(str(Path(DONE_FOLDER) / file_cell))  # archived and moved by an earlier run
        elif not self.source.exists(file_cell):
            self.errors.append(RowError(row_no, file_cell, "FILE_MISSING",
                                        f"file {file_cell!r} is not in the batch folder; copy it in or remove the row"))
        else:
            self.seen_files[file_cell] = row_no
            self.grouped.setdefault(values.get("document_id", file_cell), []).append((row_no, values))

    def _file_problems(self, file_cell: str) -> list[str]:
        """A file listed twice, or one that leads outside the batch folder (a link, on a local batch)."""
        if file_cell in self.seen_files:
            return [f"file {file_cell!r} is already listed on row {self.seen_files[file_cell]}"]
        if isinstance(self.source, LocalBatch) and self.source.inside(file_cell) is None:
            return [f"file {file_cell!r} leads outside the batch folder"]
        return []


def _schema_problems(values: dict[str, str]) -> list[str]:
    """What ``schemas/manifest.schema.json`` finds wrong with a row's cells, in column order."""
    return [_describe(e) for e in sorted(_validator().iter_errors(values), key=lambda e: list(e.path))]


def _plan_documents(grouped: dict[str, list[tuple[int, dict[str, str]]]]) -> tuple[list[PlannedDocument],
                                                                                   list[RowError]]:
    """One document per key whose rows agree on the document's fields; the rows of the others are refused."""
    documents: list[PlannedDocument] = []
    errors: list[RowError] = []
    for key, members in grouped.items():
        rows = [r for _, r in members]
        disagreement = _check_consistent(rows, _DOC_FIELDS)
        if disagreement:
            errors.extend(RowError(n, r["file"], "MANIFEST_INVALID", disagreement) for n, r in members)
            continue
        documents.append(_planned_document(key, tuple(n for n, _ in members), rows))
    return documents, errors


def _planned_document(key: str, row_numbers: tuple[int, ...], rows: list[dict[str, str]]) -> PlannedDocument:
    """The document described by its (consistent) rows: fields from the first, files from all."""
    first = rows[0]
    return PlannedDocument(
        key=key,
        rows=row_numbers,
        files=tuple(r["file"] for r in rows),
        agency_code=first["agency_code"],
        kind=first["kind"],
        title=first["title"],
        issued_date=date.fromisoformat(first["issued_date"]),
        procedure_code=first.get("procedure_code"),
        dossier_code=first.get("dossier_code"),
        register_id=first.get("register_id"),
        valid_until=date.fromisoformat(first["valid_until"]) if first.get("valid_until") else None,
        holder_id=first.get("holder_id"),
        scanned_at=first.get("scanned_at"),
    )


def _unlisted_files(source: BatchSource, mentioned: set[str]) -> list[RowError]:
    """Files of the batch that no row names (``done/`` holds the originals of earlier runs)."""
    return [
        RowError(0, extra, "FILE_NOT_IN_MANIFEST",
                 f"file {extra!r} has no manifest row; add a row for it or move it out of the batch")
        for extra in sorted(source.files())
        if extra not in mentioned and not extra.startswith(f"{DONE_FOLDER}/")
    ]


def batch_is_ready(batch_dir: Path, *, quiet_seconds: int, now: float | None = None) -> bool:
    """A batch is complete when it has ``_READY``, or a manifest and nothing changed for the quiet period.

    This keeps a half-copied upload from being read as truncated files.
    """
    return LocalBatch(batch_dir).is_ready(quiet_seconds=quiet_seconds, now=now)


def discover_batches(inbox: Path, *, quiet_seconds: int, now: float | None = None) -> list[Path]:
    """Complete batch folders directly under ``inbox``, in name order."""
    if not inbox.is_dir():
        return []
    return [
        d for d in sorted(inbox.iterdir())
        if d.is_dir() and not d.name.startswith(".") and batch_is_ready(d, quiet_seconds=quiet_seconds, now=now)
    ]
