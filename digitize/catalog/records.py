"""The values the catalog takes and gives: documents and their files, agencies, events, import outcomes.

Plain frozen dataclasses, free of SQL, so the other packages can pass them around without the database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from digitize.codes import DOCUMENT_KINDS, parse_agency_code, parse_dossier_code, parse_procedure_code
from digitize.errors import CodeError

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileSpec:
    """One original file of a document."""

    position: int
    """Order of the file within the document (the manifest's order)."""

    name: str
    """Path of the file relative to the batch folder."""

    sha256: str
    """SHA-256 of the file's bytes, lower-case hex."""

    size: int
    """Size in bytes."""

    pixels: int | None = field(default=None, compare=False)
    """Width × height summed over the file's pages, from its headers at registration (no decoding): the OCR
    work it holds, by which the DAGs balance their chunks. ``None`` when unknown: registered before migration
    0009, rebuilt from the archive (sidecars do not carry it), or headers that could not be read (such a file
    is quarantined when its document runs). Derived from the bytes, so not part of the file's identity: it
    takes no part in equality."""


def fingerprint_of(file_hashes: Sequence[str]) -> str:
    """Identity of a document's content: the file's sha256, or sha256 of the ordered hashes joined by newlines."""
    if not file_hashes:
        raise ValueError("a document needs at least one file")
    for digest in file_hashes:
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise ValueError(f"file hash {digest!r} is not a lower-case hex SHA-256")
    if len(file_hashes) == 1:
        return file_hashes[0]
    return hashlib.sha256("\n".join(file_hashes).encode("ascii")).hexdigest()


def stack_fingerprint(stack_sha256: str, first_page: int, last_page: int) -> str:
    """Identity of a document cut from a scanned stack: the stack's bytes and the page range it covers.

    Resubmitting the same stack gives each document the same fingerprint, so nothing is registered twice.
    """
    if not _SHA256_RE.fullmatch(stack_sha256) or not 1 <= first_page <= last_page:
        raise ValueError(f"not a stack's SHA-256 and page range: {stack_sha256!r} {first_page}-{last_page}")
    return hashlib.sha256(f"stack {stack_sha256}\npages {first_page}-{last_page}".encode("ascii")).hexdigest()


@dataclass(frozen=True)
class DocumentSpec:
    """What the pipeline knows of a document when it registers it (from the manifest and the files)."""

    batch_id: str
    """Batch the document arrived in."""

    files: tuple[FileSpec, ...]
    """Original files; their order by ``position`` defines the fingerprint."""

    agency_code: str
    """Agency with authority over the document (its issuer); coverage counts it at this agency's level."""

    kind: str
    """``KQ`` (procedure result) or ``TP`` (dossier component)."""

    title: str
    """Name of the document."""

    issued_date: date
    """Issue date."""

    manifest_document_id: str | None = None
    """The manifest's key for the document."""

    procedure_code: str | None = None
    """National TTHC procedure code (``D.DDDDDD[.<agency>]``)."""

    dossier_code: str | None = None
    """Circular 01/2018 dossier code."""

    register_id: str | None = None
    """Register row the document digitizes (links it to the coverage denominator)."""

    valid_until: date | None = None
    """End of validity of a result, ``None`` when indefinite."""

    holder_id: str | None = None
    """Citizen ID or tax code of the holder (personal data)."""

    scanned_at: str | None = None
    """Agency code of the one-stop unit that scanned it."""

    stack_sha256: str | None = None
    """SHA-256 of the scanned stack it was cut from (``None``: a document scanned on its own)."""

    stack_first_page: int | None = None
    """First page of the stack it covers: its cover sheet's (1-based)."""

    stack_last_page: int | None = None
    """Last page of the stack it covers (inclusive)."""

    sheet_id: str | None = None
    """The cover sheet that named it."""

    @property
    def fingerprint(self) -> str:
        """See :func:`fingerprint_of` (files taken in ``position`` order), or :func:`stack_fingerprint`."""
        if self.stack_sha256 is not None:
            return stack_fingerprint(self.stack_sha256, self.stack_first_page or 0, self.stack_last_page or 0)
        return fingerprint_of([f.sha256 for f in sorted(self.files, key=lambda f: f.position)])

    def validate(self) -> None:
        """Refuse what the catalog cannot store faithfully (bad codes raise :class:`CodeError`)."""
        if not self.batch_id:
            raise ValueError("batch_id is empty")
        if not self.files:
            raise ValueError("a document needs at least one file")
        positions = [f.position for f in self.files]
        if len(set(positions)) != len(positions):
            raise ValueError(f"file positions repeat: {positions}")
        for spec in self.files:
            if spec.size < 0 or not spec.name:
                raise ValueError(f"file {spec!r} has no name or a negative size")
        parse_agency_code(self.agency_code)
        if self.kind not in DOCUMENT_KINDS:
            raise CodeError(f"document kind {self.kind!r} must be one of {', '.join(DOCUMENT_KINDS)}")
        if not self.title.strip():
            raise ValueError("title is empty")
        if self.procedure_code is not None:
            parse_procedure_code(self.procedure_code)
        if self.dossier_code is not None:
            parse_dossier_code(self.dossier_code)
        if self.valid_until is not None and self.valid_until < self.issued_date:
            raise ValueError(f"valid_until {self.valid_until} is before issued_date {self.issued_date}")
        self.fingerprint  # noqa: B018 - validates the hashes


@dataclass(frozen=True)
class DocumentRecord:
    """A document as the catalog holds it."""

    id: int
    """Catalog id."""
    fingerprint: str
    """See :func:`fingerprint_of`."""
    batch_id: str
    """Batch it was first registered in."""
    status: str
    """``RECEIVED``, ``ARCHIVED`` or ``QUARANTINED``."""
    code: str | None
    """Uniform document code, once allocated (shared by all versions)."""
    version: int
    """1, or more for a correction that supersedes an earlier version."""
    agency_code: str
    """Issuer of the document."""
    kind: str
    """``KQ`` or ``TP``."""
    title: str
    """Name of the document."""
    issued_date: date
    """Issue date."""
    valid_until: date | None
    """End of validity, ``None`` when indefinite."""
    register_id: str | None
    """Register row it digitizes."""
    dossier_code: str | None
    """Circular 01/2018 dossier code."""
    procedure_code: str | None
    """TTHC procedure code."""
    holder_id: str | None
    """Citizen ID or tax code of the holder."""
    scanned_at: str | None
    """Agency code of the unit that scanned it."""
    reason: str | None
    """Reason code while quarantined."""
    message: str | None
    """What the officer should do, while quarantined."""
    pdf_key: str | None
    """Archive key of the signed PDF."""
    pdf_sha256: str | None
    """SHA-256 of the signed PDF."""
    sidecar_key: str | None
    """Archive key of the JSON sidecar."""
    sidecar_sha256: str | None
    """SHA-256 of the sidecar."""
    pages: int | None
    """Pages of the PDF."""
    mean_confidence: float | None
    """Mean OCR confidence (0-100)."""
    needs_review: bool
    """OCR flagged pages (low confidence or resolution)."""
    received_at: datetime
    """Registration time (UTC)."""
    archived_at: datetime | None
    """Archiving time (UTC)."""
    files: tuple[FileSpec, ...]
    """Original files by position."""
    original_keys: tuple[str | None, ...] = ()
    """Archive key of each original, by position (``None`` until archived)."""
    manifest_document_id: str | None = None
    """The manifest's key for the document."""
    supersedes_id: int | None = None
    """Id of the version this one corrects."""
    lease_owner: str | None = None
    """Worker (``host:pid:token``) processing the document now, see :meth:`Catalog.claim`; ``None`` when idle."""
    lease_expires_at: datetime | None = None
    """When that worker's claim lapses unless renewed (UTC)."""
    digitized_at: datetime | None = None
    """When the code was first archived (its first version's ``archived_at``); every version carries it, so
    coverage counts the document as digitized from then whatever later versions do."""
    origin: str = "scan"
    """What made this version: ``scan``, ``correction`` (metadata only), ``renewal`` (LTA) or ``relink``."""
    withdrawn: bool = False
    """Withdrawn (e.g. a wrong register link replaced by a re-link): counted nowhere from ``withdrawn_at``."""
    withdrawn_at: datetime | None = None
    """When it was withdrawn (UTC)."""
    stack_sha256: str | None = None
    """SHA-256 of the scanned stack it was cut from (its one archived original); ``None`` for a document of its own."""
    stack_first_page: int | None = None
    """First page of the stack it covers (1-based, its cover sheet included)."""
    stack_last_page: int | None = None
    """Last page of the stack it covers (inclusive)."""
    sheet_id: str | None = None
    """Cover sheet that named it."""


@dataclass(frozen=True)
class ArchivedInfo:
    """What the archive stage stored, recorded by :meth:`Catalog.mark_archived`."""

    pdf_key: str
    """Key of the signed PDF."""
    pdf_sha256: str
    """Its SHA-256 (as read back)."""
    sidecar_key: str
    """Key of the JSON sidecar."""
    sidecar_sha256: str
    """Its SHA-256."""
    original_keys: tuple[str, ...]
    """Key of each original file, by position."""
    pages: int
    """Pages of the PDF."""
    mean_confidence: float | None
    """Mean OCR confidence, ``None`` when nothing was OCR'd."""
    needs_review: bool
    """OCR flagged pages for a human look."""
    archived_at: datetime | None = None
    """The archiving time the sidecar states (the catalog stores the same, so a rebuild restores it exactly);
    ``None``: now."""


@dataclass(frozen=True)
class Agency:
    """An agency (administrative unit or department) and its validity."""

    code: str
    """QCVN 102:2016 code."""
    name: str
    """Official name."""
    level: str
    """``province``, ``district`` or ``commune``: the administrative level coverage is counted at."""
    parent_code: str | None
    """Agency it belongs to."""
    remote: bool
    """Remote commune (excluded from some plan targets)."""
    one_stop: bool
    """Runs a one-stop unit (Bộ phận Một cửa)."""
    valid_from: date
    """First day it exists."""
    valid_to: date | None
    """Last day it exists (inclusive), ``None`` while it exists."""
    successor_code: str | None
    """Agency that took over after a merger."""

    def valid_on(self, day: date) -> bool:
        """Whether it exists on ``day`` (``valid_to`` inclusive)."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True)
class RegisterRow:
    """A register row (a result the register lists), with the code already archived for it, if any."""

    register_id: str
    """Row id in the register."""
    agency_code: str
    """Issuing agency."""
    title: str
    """Name of the result."""
    issued_date: date
    """Issue date."""
    procedure_code: str | None = None
    """National TTHC database code."""
    dossier_code: str | None = None
    """Circular 01/2018 dossier code."""
    valid_until: date | None = None
    """Validity end, ``None`` for indefinite."""
    holder_id: str | None = None
    """Citizen ID or tax code of the holder (personal data)."""
    archived_code: str | None = None
    """Code of a document archived for the row (``None``: not yet digitized)."""


@dataclass(frozen=True)
class Event:
    """A PREMIS-style event on a document or a batch."""

    id: int
    """Catalog id (orders events)."""
    document_id: int | None
    """Document concerned, ``None`` for batch-level events."""
    batch_id: str | None
    """Batch concerned."""
    event_type: str
    """What happened (e.g. ``identifier_assignment``)."""
    outcome: str
    """``success``, ``failure`` or ``warning``."""
    tool: str
    """Software that acted."""
    tool_version: str
    """Its version."""
    detail: str
    """Free text for people."""
    created_at: datetime
    """When (UTC)."""


@dataclass(frozen=True)
class RowError:
    """A row an import refused."""

    row_number: int
    """Spreadsheet row (the header is row 1)."""
    message: str
    """What is wrong and what was expected."""


@dataclass(frozen=True)
class ImportSummary:
    """Outcome of an agencies or register import (upsert by key)."""

    added: int
    """New rows."""
    changed: int
    """Existing rows whose values changed."""
    unchanged: int
    """Existing rows already identical."""
    rejected: list[RowError]
    """Refused rows, in file order; the other rows were imported."""
    warnings: list[str] = field(default_factory=list)
    """What the import accepted but needs another file fixed (a split agency's register rows)."""


def record_from_row(row: Mapping[str, Any], files: Iterable[tuple[FileSpec, str | None]]) -> DocumentRecord:
    """A document row with its files (and their archive keys) as the value the catalog hands out."""
    pairs = tuple(files)
    return DocumentRecord(
        id=row["id"], fingerprint=row["fingerprint"], batch_id=row["batch_id"], status=row["status"],
        code=row["code"], version=row["version"], agency_code=row["agency_code"], kind=row["kind"],
        title=row["title"], issued_date=row["issued_date"], valid_until=row["valid_until"],
        register_id=row["register_id"], dossier_code=row["dossier_code"], procedure_code=row["procedure_code"],
        holder_id=row["holder_id"], scanned_at=row["scanned_at"], reason=row["reason"], message=row["message"],
        pdf_key=row["pdf_key"], pdf_sha256=row["pdf_sha256"], sidecar_key=row["sidecar_key"],
        sidecar_sha256=row["sidecar_sha256"], pages=row["pages"], mean_confidence=row["mean_confidence"],
        needs_review=bool(row["needs_review"]), received_at=row["received_at"], archived_at=row["archived_at"],
        files=tuple(spec for spec, _ in pairs), original_keys=tuple(key for _, key in pairs),
        manifest_document_id=row["manifest_document_id"], supersedes_id=row["supersedes_id"],
        lease_owner=row.get("lease_owner"), lease_expires_at=row.get("lease_expires_at"),
        digitized_at=row.get("digitized_at"), origin=row.get("origin") or "scan",
        withdrawn=bool(row.get("withdrawn", False)), withdrawn_at=row.get("withdrawn_at"),
        stack_sha256=row.get("stack_sha256"), stack_first_page=row.get("stack_first_page"),
        stack_last_page=row.get("stack_last_page"), sheet_id=row.get("sheet_id"),
    )
