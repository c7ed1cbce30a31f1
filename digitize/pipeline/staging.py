"""What passes from prepare to finish when the two stages run on different machines.

:func:`~digitize.pipeline.stages.prepare_document` stages the unsigned PDF/A and a JSON state (the OCR
summary and the archived originals) in the archive bucket; finishing works from that alone and
deletes it once the document is archived. The JSON is written last, so a document is prepared
entirely or not at all.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.checksums import sha256_bytes
from digitize.errors import ArchiveIntegrityError, ArchiveNotFound

if TYPE_CHECKING:
    from digitize.catalog import DocumentRecord
    from digitize.ocr import OcrResult
    from digitize.pipeline.context import PipelineContext
    from digitize.pipeline.summary import Stopwatch

STAGED_STATE_VERSION = 1
"""Version of the staged JSON (:func:`stage_for_signing`); a state of another version counts as not prepared."""


def stage_for_signing(ctx: PipelineContext, record: DocumentRecord, code: str, ocr: OcrResult,
          stored: Sequence[tuple[Any, Any, str]], watch: Stopwatch) -> dict[str, Any]:
    """Stage the unsigned PDF, then the JSON that marks the document prepared (written last: all or nothing)."""
    from digitize.archive import staging_keys

    keys = staging_keys(code, record.version)
    unsigned = ocr.pdf_path.read_bytes()
    state = {
        "schema_version": STAGED_STATE_VERSION, "document_id": record.id, "fingerprint": record.fingerprint,
        "code": code, "version": record.version, "pdf_sha256": sha256_bytes(unsigned),
        "ocr": {"tool_versions": dict(ocr.tool_versions),
                "pages": [dataclasses.asdict(p) for p in ocr.pages]},
        "originals": [{"position": spec.position, "key": obj.key, "sha256": obj.sha256, "format": fmt}
                      for spec, obj, fmt in stored],
    }
    with watch.stage("archive"):
        drop_staging(ctx, code, record.version)  # a half-staged earlier attempt: its PDF is not this one
        ctx.archive.put(keys.pdf, unsigned, content_type="application/pdf", metadata={"code": code})
        ctx.archive.put(keys.state, json.dumps(state, ensure_ascii=False).encode("utf-8"),
                        content_type="application/json", metadata={"code": code})
    ctx.catalog.add_event(record.id, "staging", "success", tool="digitize", tool_version=__version__,
                          detail=f"prepared: unsigned PDF/A and OCR summary staged at {keys.state} for signing")
    return state


def staged_state(ctx: PipelineContext, record: DocumentRecord) -> dict[str, Any] | None:
    """The staged state of a prepared document, or ``None`` (a document without a code was never prepared)."""
    from digitize.archive import staging_keys

    if record.code is None:
        return None
    try:
        state = json.loads(ctx.archive.get(staging_keys(record.code, record.version).state))
    except (ArchiveNotFound, ValueError):  # never staged, or not ours: prepared again over it
        return None
    if not isinstance(state, dict):
        return None
    if (state.get("schema_version"), state.get("document_id"), state.get("fingerprint")) != (
            STAGED_STATE_VERSION, record.id, record.fingerprint):
        return None  # staged for another catalog's document with this code: prepare again over it
    return state


def drop_staging(ctx: PipelineContext, code: str, version: int) -> None:
    from digitize.archive import staging_keys

    keys = staging_keys(code, version)
    for key in (keys.state, keys.pdf):  # the marker first: never a state whose PDF is gone
        ctx.archive.delete(key)


def load_staged(ctx: PipelineContext, record: DocumentRecord, state: dict[str, Any], watch: Stopwatch
                ) -> tuple[bytes, list[tuple[Any, Any, str]], OcrResult]:
    """The unsigned PDF, the archived originals and the OCR summary that prepare staged, each checked.

    A staged PDF or an archived original that differs from what was prepared drops the staging (a
    retry of the document prepares it again) and raises :class:`~digitize.errors.ArchiveIntegrityError`.
    """
    from digitize.archive import staging_keys
    from digitize.ocr import OcrResult, PageResult

    code = record.code
    assert code is not None  # staged_state found the state under it
    keys = staging_keys(code, record.version)
    try:
        with watch.stage("archive"):
            unsigned = ctx.archive.get(keys.pdf)
        if sha256_bytes(unsigned) != state["pdf_sha256"]:
            raise ArchiveIntegrityError(f"staged PDF {keys.pdf} differs from the one prepared")
        specs = {spec.position: spec for spec in record.files}
        stored = []
        for item in state["originals"]:
            obj = ctx.archive.head(item["key"])
            if obj is None or obj.sha256 != specs[item["position"]].sha256 or obj.sha256 != item["sha256"]:
                raise ArchiveIntegrityError(f"archived original {item['key']} is missing or differs from the scan")
            stored.append((specs[item["position"]], obj, item["format"]))
    except (ArchiveIntegrityError, ArchiveNotFound):
        drop_staging(ctx, code, record.version)  # unusable: a retry of the document prepares it again
        raise
    pages = tuple(PageResult(**{**p, "flags": tuple(p["flags"]), "steps": tuple(p["steps"])})
                  for p in state["ocr"]["pages"])
    return unsigned, stored, OcrResult(pdf_path=Path(keys.pdf), pages=pages,
                                       tool_versions=state["ocr"]["tool_versions"])
