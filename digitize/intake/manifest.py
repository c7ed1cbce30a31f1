"""Read and validate batch manifests (``manifest.csv``), and decide when a batch is complete.

Officers edit manifests in Excel, so a UTF-8 byte-order mark is accepted, legacy
Vietnamese encodings are recognised (:mod:`digitize.intake.encodings`) and text is
normalised to NFC. Each row is checked against
``schemas/manifest.schema.json``; a bad row yields a row-level error and the
other rows go on. File paths are confined to the batch folder: absolute
paths, ``..`` and symlinks that lead outside are refused.

A manifest that cannot be read at all (not CSV, too big, a runaway cell, a column named twice) raises
:class:`ManifestError`, which refuses its own batch only. Messages never echo a
cell that may hold personal data (``holder_id``), nor a character that is not text.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from digitize.config import REPO_ROOT
from digitize.errors import BatchNotFound, BatchNotReady, ManifestError
from digitize.intake.encodings import decode_manifest
from digitize.intake.inbox import MANIFEST_NAME, READY_MARKER, BatchSource, LocalBatch, batch_folders

__all__ = ["MANIFEST_NAME", "READY_MARKER", "BatchPlan", "PlannedDocument", "RowError", "batch_is_ready",
           "discover_batches", "read_manifest"]
SCHEMA_PATH = REPO_ROOT / "schemas" / "manifest.schema.json"
DONE_FOLDER = "done"
"""Sub-folder of a batch where verified originals go when ``DIGITIZE_MOVE_DONE`` is on (see the pipeline)."""

MAX_MANIFEST_BYTES = 32 * 1024 * 1024
"""Largest manifest read: ~150,000 rows of a few hundred bytes; anything bigger is not a batch's manifest."""

MAX_MANIFEST_ROWS = 100_000
"""Most rows in one manifest: each row is validated and registered, so a larger batch must be split."""

NOT_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters refused in cells: C0 and C1 controls (tab excepted), DEL, line and paragraph separators, and the
bidi embeddings, overrides and isolates. They break the catalog (PostgreSQL refuses NUL), terminals (escape
sequences), one-line outputs (line breaks) or disguise text (right-to-left override)."""

PERSONAL_COLUMNS = frozenset({"holder_id"})
"""Columns whose values are personal data: messages name the column, never the value."""


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
    column = error.path[-1] if error.path else None
    if error.validator == "required":
        return f"{error.message}; fill in that column"
    if error.validator == "additionalProperties":
        return f"unknown column: {error.message}"
    if column is None:
        return error.message
    expected = error.schema.get("description", "")
    if error.validator == "not" and column == "file":
        return f"column 'file' = {_shown(column, error.instance)} must be a path inside the batch folder " \
               "(no absolute path, no '..')"
    return f"column '{column}' = {_shown(column, error.instance)} is invalid ({error.validator}); expected: {expected}"


def _shown(column: object, value: object) -> str:
    """A cell's value as messages quote it: shortened, and hidden for personal data."""
    if column in PERSONAL_COLUMNS:
        return "(value not shown: personal data)"
    return _shortened(repr(value), 80)


def _check_consistent(rows: Sequence[dict[str, str]], fields: Sequence[str]) -> str | None:
    for name in fields:
        values = {r.get(name) for r in rows}
        if len(values) > 1:
            if name in PERSONAL_COLUMNS:
                return f"rows of one document_id disagree on '{name}'"
            shown = [_shortened(v, 80) for v in sorted(v or "" for v in values)]
            return f"rows of one document_id disagree on '{name}': {shown}"
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
    for row_no, raw_row in _numbered_rows(reader):
        rows.add(row_no, raw_row)
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
    decoded, encoding = decode_manifest(_manifest_bytes(source))
    text = unicodedata.normalize("NFC", decoded)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise _unreadable_row(1, exc) from exc
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:  # each row would keep only the last of them: a citizen ID in the first would vanish silently
        shown = [_shortened(name, 40) for name in twice[:10]]
        columns = f"columns {shown} appear" if len(twice) > 1 else f"column {shown} appears"
        raise ManifestError(f"{MANIFEST_NAME} header: {columns} more than once",
                            hint="Keep each column once: move the values of the extra column into the first, "
                                 "delete it, and resubmit.")
    required, known = _schema_columns()
    missing = sorted(required - set(header))
    unknown = sorted(set(header) - known)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unknown:
            shown = [_shortened(name, 40) for name in unknown[:10]] + (["…"] if len(unknown) > 10 else [])
            parts.append(f"unknown columns {shown} (known: {sorted(known)})")
        raise ManifestError(f"{MANIFEST_NAME} header: " + "; ".join(parts))
    return reader, encoding


def _manifest_bytes(source: BatchSource) -> bytes:
    """The manifest's bytes, once its size is known to be sane; a local file that cannot be read refuses the batch.

    (S3 failures are left alone: they are transient, and the task is retried.)
    """
    try:
        size = source.size(MANIFEST_NAME)
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                f"{MANIFEST_NAME} is {size / 2**20:.0f} MiB, over the {MAX_MANIFEST_BYTES // 2**20} MiB a manifest "
                "may have: this is not a batch manifest, or the batch is too big",
                hint="Check that manifest.csv is the batch's CSV manifest; split a very large batch into several.")
        return source.read_bytes(MANIFEST_NAME)
    except OSError as exc:
        if not isinstance(source, LocalBatch):
            raise
        raise ManifestError(f"{MANIFEST_NAME} cannot be read ({exc.strerror or type(exc).__name__})",
                            hint="Give the pipeline's user read access to manifest.csv and resubmit.") from exc


def _numbered_rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str | None, Any]]]:
    """The rows with their spreadsheet row numbers (header = 1); CSV that cannot be parsed refuses the manifest."""
    row_no = 1
    while True:
        row_no += 1
        try:
            raw_row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _unreadable_row(row_no, exc) from exc
        if row_no - 1 > MAX_MANIFEST_ROWS:
            raise ManifestError(f"{MANIFEST_NAME} has more than {MAX_MANIFEST_ROWS:,} rows",
                                hint="Split the batch into several batches of fewer rows and resubmit.")
        yield row_no, raw_row


def _unreadable_row(row_no: int, exc: csv.Error) -> ManifestError:
    """What to tell the officer about a row the CSV parser gave up on (its text is not repeated)."""
    if "field larger than field limit" in str(exc):
        return ManifestError(
            f"{MANIFEST_NAME} row {row_no}: a cell is longer than {csv.field_size_limit():,} characters, so the file "
            "cannot be read", hint='Look near that row for a quote (") opened in a cell and never closed: everything '
                                   "after it reads as one cell. Fix it, save as 'CSV UTF-8' and resubmit.")
    return ManifestError(f"{MANIFEST_NAME} row {row_no} is not valid CSV ({exc})",
                         hint="Open the file in Excel, save it as 'CSV UTF-8 (Comma delimited)' and resubmit.")


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
            self.errors.append(RowError(row_no, _printable(row.get("file", "")), "MANIFEST_INVALID",
                                        "row has more cells than the header"))
            return
        values = {k: v for k, v in row.items() if v != ""}
        file_cell = values.get("file", "")
        self.mentioned.add(str(Path(file_cell)) if file_cell else "")
        not_text = _not_text_problem(values)
        if not_text:  # before any other check: such a cell must reach neither the file system nor the catalog
            self.errors.append(RowError(row_no, _printable(file_cell), "MANIFEST_INVALID", not_text))
            return
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


def _not_text_problem(values: dict[str, str]) -> str | None:
    """Which columns hold a character that is not text, and which character; never the cell's value."""
    found = [(column, match.group()) for column, value in values.items() if (match := NOT_TEXT.search(value))]
    if not found:
        return None
    columns = ", ".join(f"'{column}'" for column, _ in found)
    return (f"{'columns' if len(found) > 1 else 'column'} {columns} {'hold' if len(found) > 1 else 'holds'} "
            f"{_character_name(found[0][1])}, which is not text (it can break, hide or reorder what is shown); "
            "retype the cell without it")


def _character_name(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if char == "\x00":
        return f"a NUL byte ({code})"
    if char in "\n\r\u2028\u2029\x85":
        return f"a line break ({code})"
    if "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        return f"a text-direction control ({code})"
    return f"a control character ({code})"


def _printable(text: str) -> str:
    """``text`` with every character that is not text written as ``\\uXXXX`` (file names in messages)."""
    return NOT_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        RowError(0, _printable(extra), "FILE_NOT_IN_MANIFEST",
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
    return [d for d in batch_folders(inbox) if batch_is_ready(d, quiet_seconds=quiet_seconds, now=now)]


def named_batch(inbox: Path, name: str, *, quiet_seconds: int, now: float | None = None) -> Path:
    """The batch folder a run was started for, once complete; otherwise an error that says why and what to do.

    A run asked for one batch must not end green having taken nothing: a folder still being copied is
    :class:`BatchNotReady` (the task retries), a name the inbox does not hold is :class:`BatchNotFound`.
    """
    folder = inbox / name
    if not name or Path(name).name != name or name.startswith(".") or not folder.is_dir():
        present = [d.name for d in batch_folders(inbox)]
        listed = ", ".join(present[:20]) + (" …" if len(present) > 20 else "")
        raise BatchNotFound(f"no batch folder {name!r} in {inbox} (folders there: {listed or 'none'})")
    waiting = LocalBatch(folder).waiting_for(quiet_seconds=quiet_seconds, now=now)
    if waiting is not None:
        raise BatchNotReady(f"batch {name!r} is not complete yet: {waiting}")
    return folder
