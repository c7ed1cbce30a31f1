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
import re
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


# --- legacy Vietnamese encodings -------------------------------------------------------------------
# Officers' spreadsheets still come in the pre-Unicode encodings of Vietnamese Windows. Windows-1258
# decodes with Python's codec (tones as combining marks, then NFC). TCVN3 (TCVN 5712:1993, the "ABC"
# .VnTime fonts) is one byte per lower-case letter; its capitals with tones live in separate upper-case
# fonts (.VnTimeH) under the SAME bytes, so a file typed in one cannot be told from the other: such
# text is refused. VNI-Windows writes a base letter followed by mark bytes (cp1252 glyphs).
_TONES = "\u0300\u0301\u0309\u0303\u0323"  # grave, acute, hook, tilde, dot below: the order of the tables
_TCVN3_LOWER = (
    ("a", "\xb5\xb8\xb6\xb7\xb9"), ("ă", "\xbb\xbe\xbc\xbd\xc6"), ("â", "\xc7\xca\xc8\xc9\xcb"),
    ("e", "\xcc\xd0\xce\xcf\xd1"), ("ê", "\xd2\xd5\xd3\xd4\xd6"), ("i", "\xd7\xdd\xd8\xdc\xde"),
    ("o", "\xdf\xe3\xe1\xe2\xe4"), ("ô", "\xe5\xe8\xe6\xe7\xe9"), ("ơ", "\xea\xed\xeb\xec\xee"),
    ("u", "\xef\xf3\xf1\xf2\xf4"), ("ư", "\xf5\xf8\xf6\xf7\xf9"), ("y", "\xfa\xfd\xfb\xfc\xfe"),
)
_TCVN3_PLAIN = {"ă": "\xa8", "â": "\xa9", "ê": "\xaa", "ô": "\xab", "ơ": "\xac", "ư": "\xad", "đ": "\xae",
                "Ă": "\xa1", "Â": "\xa2", "Ê": "\xa3", "Ô": "\xa4", "Ơ": "\xa5", "Ư": "\xa6", "Đ": "\xa7"}
# VNI marks per tone (grave, acute, hook, tilde, dot), lower case; upper case is the cp1252 capital.
_VNI_TONE = "øùûõï"
_VNI_CIRCUMFLEX = "âàáåãä"  # no tone, then the five tones
_VNI_BREVE = "êèéúüë"
_VNI_I = "ìíæóò"
_VNI_SINGLE = {"ơ": "ô", "ư": "ö", "đ": "ñ", "ỵ": "î"}


def _tone_of(char: str) -> tuple[str, int | None]:
    """A Vietnamese letter as (letter without tone, NFC; index of its tone in _TONES or None)."""
    parts = unicodedata.normalize("NFD", char)
    tone = next((i for i, t in enumerate(_TONES) if t in parts), None)
    return unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONES)), tone


def _tcvn3_table() -> dict[str, str]:
    """Unicode letter → TCVN3 byte (as a latin-1 character)."""
    table = dict(_TCVN3_PLAIN)
    for base, codes in _TCVN3_LOWER:
        for tone, code in zip(_TONES, codes, strict=True):
            table[unicodedata.normalize("NFC", base + tone)] = code
    return table


def _vni_code(char: str) -> str | None:
    """VNI-Windows spelling (cp1252 characters) of one Vietnamese letter; ``None`` for plain ASCII or others."""
    lower = char.lower()
    upper = char != lower
    base, tone = _tone_of(lower)
    if lower in _VNI_SINGLE:
        code = _VNI_SINGLE[lower]
    elif base in ("ơ", "ư") and tone is not None:
        code = _VNI_SINGLE[base] + _VNI_TONE[tone]
    elif base == "i" and tone is not None:
        code = _VNI_I[tone]
    elif base in ("â", "ê", "ô"):
        plain = unicodedata.normalize("NFD", base)[0]
        code = plain + _VNI_CIRCUMFLEX[0 if tone is None else tone + 1]
    elif base == "ă":
        code = "a" + _VNI_BREVE[0 if tone is None else tone + 1]
    elif base in "aeouy" and len(base) == 1 and tone is not None:
        code = base + _VNI_TONE[tone]
    else:
        return None
    return code.upper() if upper else code


def _vietnamese_letters() -> list[str]:
    letters = []
    for base in ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y"):
        letters += [base] + [unicodedata.normalize("NFC", base + t) for t in _TONES]
    letters.append("đ")
    return letters + [c.upper() for c in letters]


def encode_legacy(text: str, encoding: str) -> bytes:
    """Text in ``tcvn3`` or ``vni`` (what the old Vietnamese fonts wrote); for tests and conversions.

    TCVN3 has no capitals with tones: they are written with the small letter's byte (an upper-case font
    draws it big), which is exactly why such files are ambiguous.
    """
    out = []
    tcvn3 = _tcvn3_table()
    for char in unicodedata.normalize("NFC", text):
        if encoding == "tcvn3":
            out.append(tcvn3.get(char) or tcvn3.get(char.lower()) or char)
        elif encoding == "vni":
            out.append(_vni_code(char) or char)
        else:
            raise ValueError(f"unknown legacy encoding {encoding!r}")
    return "".join(out).encode("cp1252" if encoding == "vni" else "latin-1")


@lru_cache(maxsize=1)
def _vni_decoder() -> tuple[re.Pattern[str], dict[str, str]]:
    table = {code: letter for letter in _vietnamese_letters() if (code := _vni_code(letter)) is not None}
    pattern = re.compile("|".join(re.escape(c) for c in sorted(table, key=len, reverse=True)))
    return pattern, table


def _decode_vni(raw: bytes) -> str:
    pattern, table = _vni_decoder()
    return pattern.sub(lambda m: table[m.group(0)], raw.decode("cp1252"))


def _decode_tcvn3(raw: bytes) -> str:
    table = {code: letter for letter, code in _tcvn3_table().items()}
    return "".join(table.get(chr(b)) or (bytes([b]).decode("cp1252") if b >= 0x80 else chr(b)) for b in raw)


_ONSETS = ("b", "c", "ch", "d", "đ", "g", "gh", "gi", "h", "k", "kh", "l", "m", "n", "ng", "ngh", "nh", "p", "ph",
           "qu", "r", "s", "t", "th", "tr", "v", "x", "")
_NUCLEI = frozenset(("a", "ă", "â", "e", "ê", "i", "y", "o", "ô", "ơ", "u", "ư", "ai", "ao", "au", "ay", "âu",
                     "ây", "eo", "êu", "ia", "iê", "yê", "iu", "oa", "oă", "oe", "oi", "ôi", "ơi", "oo", "ua",
                     "uâ", "uê", "ui", "uô", "uơ", "ưa", "ưi", "ươ", "ưu", "uy", "iêu", "yêu", "oai", "oay", "oao",
                     "oeo", "uây", "uôi", "ươi", "ươu", "uya", "uyê", "uyu"))
_CODAS = ("", "c", "ch", "m", "n", "ng", "nh", "p", "t", "o", "i", "u", "y")
_SYLLABLE = re.compile(rf"^({'|'.join(sorted(_ONSETS, key=len, reverse=True))})"
                       rf"([aăâeêiyoôơuư]{{1,3}})({'|'.join(sorted(_CODAS, key=len, reverse=True))})$")


def _plausible(word: str) -> bool:
    """A well-formed Vietnamese syllable: one tone at most, a known onset, vowel nucleus and coda."""
    letters, tones = [], 0
    for char in word.lower():
        base, tone = _tone_of(char)
        tones += tone is not None
        letters.append(base)
    match = _SYLLABLE.match("".join(letters))
    if tones > 1 or match is None:
        return False
    nucleus = match.group(2) + (match.group(3) if match.group(3) in ("o", "i", "u", "y") else "")
    return match.group(2) in _NUCLEI or nucleus in _NUCLEI


def _score(text: str) -> float:
    """Share of the words with non-ASCII letters that are plausible Vietnamese syllables."""
    words = [w for w in re.findall(r"[^\W\d_]+", text) if not w.isascii()]
    return sum(_plausible(w) for w in words) / len(words) if words else 0.0


def _upper_font_suspect(text: str) -> bool:
    """A word of capitals with a small toned letter inside (``GIấY``): TCVN3 typed with an upper-case font."""
    return any(sum(c.isupper() for c in w) >= 2 and any(c.islower() and not c.isascii() for c in w)
               for w in re.findall(r"[^\W\d_]+", text))


_LEGACY = (("Windows-1258", lambda raw: raw.decode("cp1258")), ("TCVN3 (ABC)", _decode_tcvn3), ("VNI", _decode_vni))


def _decode(raw: bytes) -> tuple[str, str]:
    """The manifest's text and its encoding: UTF-8 (BOM or not), else a legacy encoding recognised for sure.

    Each legacy decoding is scored by how many of its words are well-formed Vietnamese syllables; one
    that reads (nearly) all words right while the others do not is converted, anything else is refused.
    """
    try:
        return raw.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError as exc:
        position = exc.start
    how = "Open it in Excel and use File > Save As > 'CSV UTF-8 (Comma delimited)', then resubmit."
    scored = []
    for name, decode in _LEGACY:
        try:
            text = unicodedata.normalize("NFC", decode(raw))
        except UnicodeDecodeError:
            continue
        scored.append((_score(text), name, text))
    scored.sort(reverse=True)
    if scored and scored[0][0] >= 0.9 and (len(scored) == 1 or scored[1][0] < 0.6):
        _, name, text = scored[0]
        if name.startswith("TCVN3") and _upper_font_suspect(text):
            raise ManifestError(
                f"{MANIFEST_NAME} is in TCVN3 (ABC) typed with an upper-case font (.VnTimeH): capital and small "
                "letters with tones share the same bytes, so it cannot be converted safely.", hint=how)
        return text, name
    found = ", ".join(f"{n} {s:.0%}" for s, n, _ in scored) or "none"
    raise ManifestError(
        f"{MANIFEST_NAME} is not UTF-8 (invalid byte at position {position}) and its legacy encoding cannot be told "
        f"for sure (Windows-1258, TCVN3 or VNI; words read right: {found}).", hint=how)


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
    decoded, encoding = _decode(source.read_bytes(MANIFEST_NAME))
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
