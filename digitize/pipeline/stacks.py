"""Splitting a scanned stack at its cover sheets: one document per sheet, every field from the sheet's row.

The split runs before any OCR, in its own task (the DAGs' ``split``; the CLI's ``process``). It reads each
stack once, looks for a sheet on every page (:func:`digitize.intake.detect_sheet`, on a downscaled copy),
tests the other pages for blank duplex backsides, and then:

- registers one document per good sheet, its fields from the sheet's catalog row and its scanning unit
  from the batch; its fingerprint comes from (stack SHA-256, page range), so resubmitting the stack
  registers nothing twice;
- archives the stack file once (:func:`digitize.archive.stack_key`), kept as long as the longest-kept
  document it holds;
- stages each document's own pages (blanks and the sheet left out) for the chunk tasks
  (:mod:`digitize.pipeline.segments`): nothing passes between tasks on local disk;
- reports the rest with stable reason codes (:data:`FAULTS`) and the sheets whose row is already
  digitized as duplicates of the existing code. Nothing of the stack is lost: it stays in the inbox until
  every document is archived, and the officer can fix it and resubmit.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.errors import InputError
from digitize.intake import BatchSource
from digitize.pipeline.context import PipelineContext
from digitize.pipeline.register import Duplicate
from digitize.pipeline.segments import Segment, stage_segment, stage_stack_state

if TYPE_CHECKING:
    from digitize.catalog import DocumentSpec

log = logging.getLogger(__name__)

FAULTS: dict[str, str] = {
    "STACK_PAGES_BEFORE_SHEET": "Put the cover sheet of these pages in front of them (or take them out), "
                                "and resubmit the stack.",
    "STACK_TWO_SHEETS": "The first sheet has no pages after it: take out the sheet printed twice or put its "
                        "document behind it, and resubmit the stack.",
    "STACK_SHEET_AT_END": "The last page of the stack is a cover sheet with no document behind it: put the "
                          "document behind it or take it out, and resubmit.",
    "STACK_UNKNOWN_SHEET": "This sheet was not printed from this catalog (another office's, or a test print): "
                           "print the row's sheet again with 'python -m digitize coversheets', replace it, "
                           "and resubmit.",
    "STACK_UNREADABLE_SHEET": "The sheet's codes cannot be read (smudged, torn or folded): print it again, "
                              "replace it, and resubmit. Its pages were kept apart, never joined to the "
                              "document before.",
}
"""Reason codes of the faults a stack can have, with what the officer does about each."""


@dataclass(frozen=True)
class StackFault:
    """A part of a stack that made no document: pages (1-based, inclusive), reason code and what to do."""

    reason: str
    first_page: int
    last_page: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "pages": [self.first_page, self.last_page], "message": self.message}


@dataclass(frozen=True)
class StackReport:
    """What splitting one stack found; small and free of personal data (it goes to XCom and the summary)."""

    batch_id: str
    name: str
    """The stack file (or images folder) in its batch."""
    sha256: str = ""
    pages: int = 0
    sheets: tuple[str, ...] = ()
    """Sheet ids read, in stack order."""
    documents: tuple[int, ...] = ()
    """Catalog ids of the documents cut from it (new ones and those of an earlier submission)."""
    left_out: tuple[int, ...] = ()
    """Blank pages left out of the signed documents (1-based page numbers of the stack)."""
    faults: tuple[StackFault, ...] = ()
    duplicates: tuple[Duplicate, ...] = ()
    split_before: bool = False
    """Every document of this stack was archived by an earlier run: its pages were not looked at again."""

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch_id, "name": self.name, "sha256": self.sha256, "split_before": self.split_before,
                "pages": self.pages,
                "sheets": list(self.sheets), "documents": list(self.documents), "left_out": list(self.left_out),
                "faults": [f.as_dict() for f in self.faults],
                "duplicates": [list(d.named(self.batch_id)) for d in self.duplicates]}


@dataclass(frozen=True)
class SplitBatch:
    """A stack batch after splitting: the documents to process, and a report per stack."""

    batch_id: str
    source: BatchSource
    to_process: tuple[int, ...] = ()
    stacks: tuple[StackReport, ...] = ()
    refused: tuple[str, str] | None = None
    """(reason code, message) when the whole batch was refused (e.g. ``STACK_NO_UNIT``)."""

    @property
    def duplicates(self) -> tuple[Duplicate, ...]:
        return tuple(d for s in self.stacks for d in s.duplicates)

    @property
    def sheetless(self) -> bool:
        """Not one page of the batch is a cover sheet: scans of their own, not a stack (matching's, if on)."""
        return self.refused is None and bool(self.stacks) and not any(s.sheets for s in self.stacks)


@dataclass
class _Part:
    """Pages between one sheet and the next (or before the first sheet: ``sheet_page`` 0)."""

    sheet_page: int
    sheet_id: str | None
    content: list[int] = field(default_factory=list)
    blanks: list[int] = field(default_factory=list)

    @property
    def last_page(self) -> int:
        return max([self.sheet_page, *self.content, *self.blanks])


def split_stack_batch(ctx: PipelineContext, source: BatchSource) -> SplitBatch:
    """Split every stack of a stack batch; a batch without a scanning unit is refused whole (``STACK_NO_UNIT``)."""
    from digitize.intake import count_pages, stack_files, stack_unit

    try:
        unit = stack_unit(source, ctx.settings.stack_unit)
    except InputError as exc:
        ctx.catalog.add_event(None, "stack_split", "failure", batch_id=source.name,
                              detail=f"[{exc.reason}] {exc.message} — {exc.hint}")
        return SplitBatch(source.name, source, refused=(exc.reason, f"{exc.message} — {exc.hint}"))
    reports: list[StackReport] = []
    to_process: list[int] = []
    with tempfile.TemporaryDirectory(prefix="digitize-stack-", dir=ctx.settings.work_dir) as scratch:
        copies = {name: source.fetch(name, Path(scratch)) for name in sorted(source.files())
                  if not name.startswith("done/")}
        counts = {}
        for name, (path, _sha) in copies.items():
            if Path(name).suffix.lower() in (".tif", ".tiff"):
                try:
                    counts[name] = count_pages(path)
                except InputError:
                    counts[name] = 2  # reported as a bad stack file when read
        stacks, others = stack_files(list(copies), counts)
        for other in others:
            ctx.catalog.add_event(None, "stack_split", "warning", batch_id=source.name,
                                  detail=f"{other}: not a PDF, TIFF, PNG or JPEG scan; left where it is")
        for stack in stacks:
            report = _split_one(ctx, source, unit, stack.name, [(n, *copies[n]) for n in stack.files])
            reports.append(report)
            to_process += [d for d in report.documents if d not in to_process]
    return SplitBatch(source.name, source, tuple(to_process), tuple(reports))


def _split_one(ctx: PipelineContext, source: BatchSource, unit: str, name: str,
               files: Sequence[tuple[str, Path, str]]) -> StackReport:
    """Find the sheets of one stack, cut it, register and stage its documents, archive it once."""
    from digitize.catalog import fingerprint_of

    sha = files[0][2] if len(files) == 1 else fingerprint_of([f[2] for f in files])
    earlier = ctx.catalog.stack_documents(sha)
    if earlier and all(d.status == "ARCHIVED" for d in earlier):  # the inbox keeps it (no DIGITIZE_MOVE_DONE):
        return StackReport(source.name, name, sha, sheets=tuple(d.sheet_id or "?" for d in earlier),  # no second
                           documents=tuple(d.id for d in earlier), split_before=True)  # look at its pages
    try:
        pages, pixels = _look_at_pages([path for _, path, _ in files], ctx)
    except InputError as exc:
        fault = StackFault(exc.reason, 1, 1, f"{exc.message} — {exc.hint}")
        _record_faults(ctx, source.name, name, sha, [fault])
        return StackReport(source.name, name, sha, faults=(fault,))
    parts = _parts(pages)
    faults, good = _faults(ctx, parts)
    left_out = tuple(p for part in parts for p in part.blanks)
    documents: list[int] = []
    duplicates: list[Duplicate] = []
    planned: list[tuple[_Part, Any]] = []
    again: list[tuple[_Part, Any]] = []  # a row's sheet a second time in this stack: a duplicate of the first
    for part, row in good:
        spec = _spec(source.name, unit, name, sha, files, part, row, pixels)
        known = ctx.catalog.find_by_fingerprint(spec.fingerprint)
        if known is not None:  # this stack was submitted before: the same document, never a second one
            documents.append(known.id)
            continue
        existing = ctx.catalog.sheet_document(part.sheet_id or "", row.register_id)
        if existing is not None:
            duplicates.append(_duplicate(ctx, source.name, name, part, existing))
            continue
        first = next((s for _, s in planned if s.sheet_id == spec.sheet_id or (
            spec.register_id and s.register_id == spec.register_id)), None)
        if first is not None:
            again.append((part, first))
            continue
        planned.append((part, spec))
    if planned:
        _archive_stack(ctx, sha, files, [spec.kind for _, spec in planned])
    for part, spec in planned:
        record, created = ctx.catalog.register_document(spec)
        segment = Segment(sha, name, part.sheet_page, part.last_page, tuple(part.content), tuple(part.blanks),
                          part.sheet_id or "")
        stage_segment(ctx, segment, [path for _, path, _ in files])
        if created:
            ctx.catalog.add_event(record.id, "stack_split", "success", tool="digitize", tool_version=__version__,
                                  batch_id=source.name, detail=segment.describe())
        documents.append(record.id)
    for part, first in again:  # names the document its first sheet made
        existing = ctx.catalog.find_by_fingerprint(first.fingerprint)
        assert existing is not None
        duplicates.append(_duplicate(ctx, source.name, name, part, existing))
    _record_faults(ctx, source.name, name, sha, faults)
    if documents:
        stage_stack_state(ctx, sha, name=name, files=[n for n, _, _ in files], faults=len(faults))
    return StackReport(source.name, name, sha, len(pages), tuple(p.sheet_id or "?" for p in parts if p.sheet_page),
                       tuple(documents), left_out, tuple(faults), tuple(duplicates))


def _look_at_pages(paths: Sequence[Path], ctx: PipelineContext
                   ) -> tuple[list[tuple[str | None, bool, bool]], list[int]]:
    """For each page of the stack, in order: (sheet id read, looks like a sheet, blank); and its pixels."""
    from digitize.intake import PageLimits, detect_sheet, is_blank, load_image, scan_pages

    limits = PageLimits.from_settings(ctx.settings)
    seen = []
    pixels = []
    for path in paths:
        for info in scan_pages(path, limits):
            image = load_image(info)
            found = detect_sheet(image)
            sheet = found.sheet_id is not None or found.looks_like_sheet
            seen.append((found.sheet_id, sheet, not sheet and is_blank(image)))
            pixels.append(info.width * info.height)
    return seen, pixels


def _parts(pages: Sequence[tuple[str | None, bool, bool]]) -> list[_Part]:
    """Cut at the sheets; pages before the first sheet make a part of their own (``sheet_page`` 0)."""
    parts = [_Part(0, None)]
    for number, (sheet_id, is_sheet, blank) in enumerate(pages, start=1):
        if is_sheet:
            parts.append(_Part(number, sheet_id))
        elif blank:
            parts[-1].blanks.append(number)
        else:
            parts[-1].content.append(number)
    return parts if parts[0].content or parts[0].blanks else parts[1:]


def _faults(ctx: PipelineContext, parts: Sequence[_Part]) -> tuple[list[StackFault], list[tuple[_Part, Any]]]:
    """Each part is a fault or a good document (with its sheet's row)."""
    faults: list[StackFault] = []
    good: list[tuple[_Part, Any]] = []
    for index, part in enumerate(parts):
        first, last = part.sheet_page or min([*part.content, *part.blanks]), part.last_page
        if not part.sheet_page:
            if part.content:
                faults.append(_fault("STACK_PAGES_BEFORE_SHEET", first, last,
                                     f"{_pages_that(first, last, 'comes', 'come')} before the first cover sheet"))
            continue
        if part.sheet_id is None:
            faults.append(_fault("STACK_UNREADABLE_SHEET", first, last,
                                 f"page {first} looks like a cover sheet but its id cannot be read; "
                                 f"{_pages_that(first, last, 'was', 'were')} kept apart"))
            continue
        if not part.content:
            at_end = index == len(parts) - 1
            faults.append(_fault("STACK_SHEET_AT_END" if at_end else "STACK_TWO_SHEETS", first, last,
                                 f"cover sheet {part.sheet_id} on page {first} is followed by "
                                 + ("the end of the stack" if at_end else "another cover sheet")))
            continue
        row = ctx.catalog.resolve_sheet(part.sheet_id)
        if row is None:
            faults.append(_fault("STACK_UNKNOWN_SHEET", first, last,
                                 f"cover sheet {part.sheet_id} on page {first} is not known to this catalog; "
                                 f"{_pages_that(first, last, 'was', 'were')} kept apart"))
            continue
        good.append((part, row))
    return faults, good


def _fault(reason: str, first: int, last: int, what: str) -> StackFault:
    return StackFault(reason, first, last, f"{what} — {FAULTS[reason]}")


def page_span(first: int, last: int) -> str:
    """``page 7`` or ``pages 6-9``: how messages name a stack's pages."""
    return f"page {first}" if first == last else f"pages {first}-{last}"


def _pages_that(first: int, last: int, one: str, many: str) -> str:
    """The pages with the verb that agrees: ``page 1 comes``, ``pages 1-3 come``."""
    return f"{page_span(first, last)} {one if first == last else many}"


def _record_faults(ctx: PipelineContext, batch_id: str, name: str, sha: str, faults: Sequence[StackFault]) -> None:
    for fault in faults:
        ctx.catalog.add_event(None, "stack_split", "failure", batch_id=batch_id,
                              detail=f"[{fault.reason}] {name} (sha256 {sha[:12]}…) "
                                     f"{page_span(fault.first_page, fault.last_page)}: {fault.message}")
        log.warning("stack %s of batch %s: [%s] %s", name, batch_id, fault.reason,
                    page_span(fault.first_page, fault.last_page))


def _spec(batch_id: str, unit: str, name: str, sha: str, files: Sequence[tuple[str, Path, str]], part: _Part,
          row: Any, pixels: Sequence[int]) -> DocumentSpec:
    """The document a sheet names: its row's fields, the batch's unit, the stack's file(s) as its originals.

    Its pixels are those of its own pages (``pixels``: each page of the stack's), not the whole stack's: the OCR
    work it holds, which the DAGs' chunks are balanced by."""
    from digitize.catalog import DocumentSpec, FileSpec

    originals: tuple[FileSpec, ...]
    if len(files) == 1:
        own_pixels = sum(pixels[page - 1] for page in part.content)
        originals = (FileSpec(0, files[0][0], sha, files[0][1].stat().st_size, own_pixels),)
    else:  # a folder of images: the document's own page files, its sheet's included (the evidence)
        own = files[part.sheet_page - 1: part.last_page]
        originals = tuple(FileSpec(i, n, s, p.stat().st_size, pixels[part.sheet_page - 1 + i])
                          for i, (n, p, s) in enumerate(own))
    return DocumentSpec(
        batch_id=batch_id, files=originals, agency_code=row.agency_code, kind=row.kind, title=row.title,
        issued_date=row.issued_date, manifest_document_id=f"{name}#{part.sheet_page}-{part.last_page}",
        procedure_code=row.procedure_code, dossier_code=row.dossier_code, register_id=row.register_id,
        valid_until=row.valid_until, holder_id=row.holder_id, scanned_at=unit, stack_sha256=sha,
        stack_first_page=part.sheet_page, stack_last_page=part.last_page, sheet_id=part.sheet_id)


def _duplicate(ctx: PipelineContext, batch_id: str, name: str, part: _Part, existing: Any) -> Duplicate:
    key = f"{name}#{part.sheet_page}-{part.last_page}"
    ctx.catalog.add_event(existing.id, "duplicate_detection", "warning", batch_id=batch_id,
                          detail=f"cover sheet {part.sheet_id} ({page_span(part.sheet_page, part.last_page)} of "
                                 f"{name} in batch {batch_id}) names a row already digitized as "
                                 f"{existing.code or existing.id}; not processed again")
    return Duplicate(key, existing.id, existing.code, existing.batch_id)


def _archive_stack(ctx: PipelineContext, sha: str, files: Sequence[tuple[str, Path, str]], kinds: Sequence[str]
                   ) -> None:
    """The stack's file(s) archived once (a second put of the same bytes is a no-op), read back and checked."""
    from digitize.archive import longest_kept_kind, stack_key
    from digitize.errors import ArchiveIntegrityError
    from digitize.intake import sniff_format
    from digitize.pipeline.sidecar import MEDIA_TYPES

    kind = longest_kept_kind(ctx.archive, kinds)
    for page, (name, path, file_sha) in enumerate(files, start=1):
        ext = Path(name).suffix.lower()
        key = stack_key(sha, ext, None if len(files) == 1 else page)
        stored = ctx.archive.put(key, path.read_bytes(), content_type=MEDIA_TYPES[sniff_format(path)],
                                 metadata={"sha256": file_sha, "stack": sha}, kind=kind)
        if stored.sha256 != file_sha:
            raise ArchiveIntegrityError(f"archived stack file {key} differs from the scan")


def stack_summaries(catalog: Any, reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run summary's entry per stack (:func:`digitize.pipeline.summary.stack_line`), from the split's reports
    and where its documents stand now: the codes made, and what a person must look at (the faults, the
    quarantined documents, those flagged for review), by page range. No personal data."""
    out = []
    for report in reports:
        made: list[str] = []
        review = [f"{page_span(*f['pages'])} [{f['reason']}]" for f in report["faults"]]
        for document_id in report["documents"]:
            record = catalog.get_document(int(document_id))
            pages = page_span(record.stack_first_page or 0, record.stack_last_page or 0)
            if record.status == "ARCHIVED" and record.code:
                made.append(record.code)
                if record.needs_review:
                    review.append(f"{record.code} ({pages}) flagged for review")
            elif record.status == "QUARANTINED":
                review.append(f"{pages} [{record.reason}] document {record.id} quarantined")
        out.append({**report, "made": made, "review": review})
    return out
