"""A stack's documents between the split task and the chunk tasks: each document's own pages, staged.

The split task (:mod:`digitize.pipeline.stacks`) reads the stack once and stages, per document, the pages
that go into its signed PDF (its sheet and blank backsides left out) with a small JSON describing the
cut, under ``staging/stacks/<stack sha256>/<first>-<last>/`` in the archive bucket. The chunk task that
processes the document reads that, never the inbox. When the staged pieces are gone (expired, or a split
interrupted between registering and staging) they are cut again from the archived stack. The stack's
archived file(s) are the document's originals: nothing is archived a second time per document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.errors import ArchiveIntegrityError, ArchiveNotFound

if TYPE_CHECKING:
    from digitize.catalog import DocumentRecord
    from digitize.intake import LocalBatch
    from digitize.pipeline.context import PipelineContext

_FORMATS = {".pdf": "pdf", ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


@dataclass(frozen=True)
class Segment:
    """One document's place in its stack: pages are 1-based page numbers of the stack."""

    stack_sha256: str
    stack_name: str
    sheet_page: int
    """The cover sheet's page: the first of the document's range, never in its signed PDF."""
    last_page: int
    content: tuple[int, ...]
    """Pages that go into the signed PDF, in order."""
    blanks: tuple[int, ...]
    """Blank backsides left out."""
    sheet_id: str

    def describe(self) -> str:
        """The ``stack_split`` event's detail: the stack's SHA-256 and the page range, what was left out."""
        blanks = ", ".join(map(str, self.blanks)) or "none"
        return (f"pages {self.sheet_page}-{self.last_page} of stack {self.stack_name} "
                f"(sha256 {self.stack_sha256}): cover sheet {self.sheet_id} on page {self.sheet_page}, "
                f"{len(self.content)} page(s) kept, blank pages left out: {blanks}")

    def sidecar(self) -> dict[str, Any]:
        """The sidecar's ``stack`` entry."""
        return {"sha256": self.stack_sha256, "name": self.stack_name, "first_page": self.sheet_page,
                "last_page": self.last_page, "sheet_id": self.sheet_id, "sheet_page": self.sheet_page,
                "pages_kept": list(self.content), "blank_pages": list(self.blanks)}


def _prefix(sha: str, first: int, last: int) -> str:
    from digitize.archive import stack_staging_prefix

    return f"{stack_staging_prefix(sha)}{first}-{last}/"


def stage_segment(ctx: PipelineContext, segment: Segment, stack_paths: Sequence[Path]) -> None:
    """Cut the document's pages out of the stack's local copy and stage them, the JSON last (all or nothing)."""
    import tempfile

    from digitize.intake import cut_pages

    prefix = _prefix(segment.stack_sha256, segment.sheet_page, segment.last_page)
    staged = []
    with tempfile.TemporaryDirectory(prefix="digitize-cut-", dir=ctx.settings.work_dir) as scratch:
        if len(stack_paths) == 1:
            cut = cut_pages(stack_paths[0], [p - 1 for p in segment.content], Path(scratch) / "pages")
            pieces = [(f"pages{cut.suffix}", cut)]
        else:
            pieces = [(f"{p:04d}{stack_paths[p - 1].suffix.lower()}", stack_paths[p - 1]) for p in segment.content]
        for name, path in pieces:
            obj = ctx.archive.put(prefix + name, path.read_bytes(), content_type="application/octet-stream",
                                  metadata={"stack": segment.stack_sha256})
            staged.append({"key": obj.key, "sha256": obj.sha256})
    state = {**asdict(segment), "files": staged}
    ctx.archive.put(prefix + "segment.json", json.dumps(state).encode("utf-8"), content_type="application/json",
                    metadata={"stack": segment.stack_sha256})


def _staged(ctx: PipelineContext, record: DocumentRecord) -> dict[str, Any] | None:
    assert record.stack_sha256 and record.stack_first_page and record.stack_last_page
    try:
        state = json.loads(ctx.archive.get(
            _prefix(record.stack_sha256, record.stack_first_page, record.stack_last_page) + "segment.json"))
    except (ArchiveNotFound, ValueError):
        return None
    return state if isinstance(state, dict) else None


def segment_of(ctx: PipelineContext, record: DocumentRecord) -> Segment:
    """The document's segment as staged by the split, or cut again from the archived stack."""
    state = _staged(ctx, record)
    if state is None:
        restage(ctx, record)
        state = _staged(ctx, record)
        assert state is not None
    state.pop("files", None)
    return Segment(**{**state, "content": tuple(state["content"]), "blanks": tuple(state["blanks"])})


def fetch_segment(ctx: PipelineContext, record: DocumentRecord, scratch: Path) -> list[Path]:
    """The document's own pages as local files for OCR: fetched from staging, each checked by its SHA-256."""
    from digitize.checksums import sha256_bytes

    state = _staged(ctx, record)
    if state is None:
        restage(ctx, record)
        state = _staged(ctx, record)
        assert state is not None
    folder = scratch / "segment"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in state["files"]:
        data = ctx.archive.get(item["key"])
        if sha256_bytes(data) != item["sha256"]:
            raise ArchiveIntegrityError(f"staged pages {item['key']} differ from those the split cut")
        path = folder / item["key"].rsplit("/", 1)[-1]
        path.write_bytes(data)
        paths.append(path)
    return paths


def restage(ctx: PipelineContext, record: DocumentRecord) -> None:
    """Cut the document's pages again from the archived stack (its staged pieces are gone)."""
    import tempfile

    from digitize.intake import PageLimits, is_blank, load_image, scan_pages

    sha, first, last = record.stack_sha256, record.stack_first_page, record.stack_last_page
    assert sha and first and last
    with tempfile.TemporaryDirectory(prefix="digitize-restage-", dir=ctx.settings.work_dir) as scratch:
        paths = []
        for spec, (key, _fmt) in zip(record.files, stack_objects(record), strict=True):
            path = Path(scratch) / f"{spec.position:04d}{Path(key).suffix}"
            path.write_bytes(ctx.archive.get(key))
            paths.append(path)
        limits = PageLimits.from_settings(ctx.settings)
        infos = [info for path in paths for info in scan_pages(path, limits)]
        offset = 1 if len(paths) == 1 else first  # page number of infos[0] in the stack
        content: list[int] = []
        blanks: list[int] = []
        for number, info in enumerate(infos, start=offset):
            if first < number <= last:
                (blanks if is_blank(load_image(info)) else content).append(number)
        segment = Segment(sha, record.manifest_document_id or sha, first, last, tuple(content), tuple(blanks),
                          record.sheet_id or "")
        if len(paths) == 1:
            stage_segment(ctx, segment, paths)
        else:  # the folder's images from the sheet on: index them by their page number in the stack
            by_page = {first + i: p for i, p in enumerate(paths)}
            stage_segment(ctx, segment, [by_page.get(n, paths[0]) for n in range(1, last + 1)])
    ctx.catalog.add_event(record.id, "stack_split", "warning", tool="digitize", tool_version=__version__,
                          detail=f"pages {first}-{last} cut again from the archived stack (their staged copy was "
                                 "gone)")


def stack_objects(record: DocumentRecord) -> list[tuple[str, str]]:
    """(archive key, format) of the stack file(s) that are the document's originals, in its files' order."""
    from digitize.archive import stack_key

    assert record.stack_sha256 and record.stack_first_page
    one_file = len(record.files) == 1  # a PDF or TIFF stack; a folder stack's document has its sheet and pages
    out = []
    for spec in record.files:
        ext = Path(spec.name).suffix.lower()
        page = None if one_file else record.stack_first_page + spec.position
        out.append((stack_key(record.stack_sha256, ext, page), _FORMATS[ext]))
    return out


def stored_stack_originals(ctx: PipelineContext, record: DocumentRecord) -> list[tuple[Any, Any, str]]:
    """The archived stack file(s), checked against the registered SHA-256: the document's originals."""
    stored = []
    for spec, (key, fmt) in zip(record.files, stack_objects(record), strict=True):
        obj = ctx.archive.head(key)
        if obj is None or obj.sha256 != spec.sha256:
            raise ArchiveIntegrityError(f"archived stack file {key} is missing or differs from the scan")
        stored.append((spec, obj, fmt))
    return stored


def stage_stack_state(ctx: PipelineContext, sha: str, *, name: str, files: Sequence[str], faults: int) -> None:
    """What ``DIGITIZE_MOVE_DONE`` needs to know of a stack: its files, and whether any part of it was refused."""
    from digitize.archive import stack_staging_prefix

    state = {"name": name, "files": list(files), "faults": faults}
    ctx.archive.put(stack_staging_prefix(sha) + "stack.json", json.dumps(state).encode("utf-8"),
                    content_type="application/json", metadata={"stack": sha})


def drop_segment(ctx: PipelineContext, record: DocumentRecord) -> None:
    """Delete a document's staged pages once it is archived (the JSON first: never a JSON without its pages)."""
    state = _staged(ctx, record)
    if state is None:
        return
    assert record.stack_sha256 and record.stack_first_page and record.stack_last_page
    ctx.archive.delete(_prefix(record.stack_sha256, record.stack_first_page, record.stack_last_page)
                       + "segment.json")
    for item in state["files"]:
        ctx.archive.delete(item["key"])


def finish_stack_document(ctx: PipelineContext, record: DocumentRecord, source: LocalBatch | None) -> None:
    """After a stack's document is archived: its staged pages go; once every document cut from the stack is
    archived, the stack's staged state goes too and, with ``DIGITIZE_MOVE_DONE`` (``source``), its file(s) leave
    the inbox, unless a part of it was refused (that stays for the officer to fix and resubmit)."""
    from digitize.archive import stack_staging_prefix

    assert record.stack_sha256
    drop_segment(ctx, record)
    key = stack_staging_prefix(record.stack_sha256) + "stack.json"
    try:
        state = json.loads(ctx.archive.get(key))
    except (ArchiveNotFound, ValueError):
        return
    if any(d.status != "ARCHIVED" for d in ctx.catalog.stack_documents(record.stack_sha256)):
        return
    if source is not None and not state.get("faults"):
        _move_stack(ctx, record, source, state)
    ctx.archive.delete(key)


def _move_stack(ctx: PipelineContext, record: DocumentRecord, source: LocalBatch, state: dict[str, Any]) -> None:
    moved = []
    for name in state["files"]:
        path = source.inside(name)
        if path is None or not path.is_file():
            continue
        target = source.root / "done" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(name)
    if moved:
        ctx.catalog.add_event(record.id, "originals_moved", "success", tool="digitize", tool_version=__version__,
                              detail=f"stack {state['name']}: {len(moved)} file(s) moved to done/ of the batch folder, "
                                     "every document cut from it archived")
