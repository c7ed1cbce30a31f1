"""Read and validate batch manifests (``manifest.csv``), and decide when a batch is complete.

Officers edit manifests in Excel, so a UTF-8 byte-order mark is accepted and
Vietnamese text is normalised to NFC. Each row is checked against
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
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import jsonschema

from digitize.config import REPO_ROOT
from digitize.errors import ManifestError
from digitize.inbox import MANIFEST_NAME, READY_MARKER, BatchSource, LocalBatch

__all__ = ["MANIFEST_NAME", "READY_MARKER", "BatchPlan", "PlannedDocument", "RowError", "batch_is_ready",
           "discover_batches", "read_manifest"]
SCHEMA_PATH = REPO_ROOT / "schemas" / "manifest.schema.json"


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


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM) only: legacy encodings would silently corrupt Vietnamese names."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{MANIFEST_NAME} is not UTF-8 (invalid byte at position {exc.start}); it looks like a legacy "
            "encoding (Windows-1258, TCVN3 or VNI).",
            hint="Open it in Excel and use File > Save As > 'CSV UTF-8 (Comma delimited)', then resubmit.",
        ) from None


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
    if not source.exists(MANIFEST_NAME):
        raise ManifestError(f"no {MANIFEST_NAME} in batch {source.name}", hint="Add manifest.csv to the batch folder.")
    text = unicodedata.normalize("NFC", _decode(source.read_bytes(MANIFEST_NAME)))
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

    errors: list[RowError] = []
    grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
    seen_files: dict[str, int] = {}
    mentioned: set[str] = set()
    for offset, raw_row in enumerate(reader):
        row_no = offset + 2
        row = {k.strip(): (v or "").strip() for k, v in raw_row.items() if k is not None}
        if None in raw_row:
            errors.append(RowError(row_no, row.get("file", ""), "MANIFEST_INVALID",
                                   "row has more cells than the header"))
            continue
        values = {k: v for k, v in row.items() if v != ""}
        problems = [_describe(e) for e in sorted(_validator().iter_errors(values), key=lambda e: list(e.path))]
        file_cell = values.get("file", "")
        mentioned.add(str(Path(file_cell)) if file_cell else "")
        if not problems:
            if file_cell in seen_files:
                problems.append(f"file {file_cell!r} is already listed on row {seen_files[file_cell]}")
            elif isinstance(source, LocalBatch) and source.inside(file_cell) is None:
                problems.append(f"file {file_cell!r} leads outside the batch folder")
            elif not source.exists(file_cell):
                errors.append(RowError(row_no, file_cell, "FILE_MISSING",
                                       f"file {file_cell!r} is not in the batch folder; copy it in or remove the row"))
                continue
        if problems:
            errors.append(RowError(row_no, file_cell, "MANIFEST_INVALID", "; ".join(problems)))
            continue
        seen_files[file_cell] = row_no
        grouped.setdefault(values.get("document_id", file_cell), []).append((row_no, values))

    documents: list[PlannedDocument] = []
    for key, members in grouped.items():
        rows = [r for _, r in members]
        disagreement = _check_consistent(rows, _DOC_FIELDS)
        if disagreement:
            errors.extend(RowError(n, r["file"], "MANIFEST_INVALID", disagreement) for n, r in members)
            continue
        first = rows[0]
        documents.append(PlannedDocument(
            key=key,
            rows=tuple(n for n, _ in members),
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
        ))

    for extra in sorted(source.files()):
        if extra not in mentioned:
            errors.append(RowError(0, extra, "FILE_NOT_IN_MANIFEST",
                                   f"file {extra!r} has no manifest row; add a row for it or move it out of the batch"))
    if isinstance(source, LocalBatch):
        return BatchPlan(batch_id=source.name, root=source.root, documents=tuple(documents), errors=tuple(errors))
    return BatchPlan(batch_id=source.name, root=Path(source.name), documents=tuple(documents), errors=tuple(errors),
                     source=source)


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
