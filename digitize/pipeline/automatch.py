"""``DIGITIZE_AUTO_MATCH=accepted``: a batch of scans without manifest gets one from its accepted proposals.

Off by default: a wrong match would be signed and, under Object Lock, kept for decades. When on,
``process`` and both DAGs call :func:`auto_match` before reading a batch's manifest. Each scan is
proposed once (a scan part already proposed for the same bytes is not proposed again: its OCR and its
proposal are in the archive's staging area and the catalog), a person's decision on the review page
replaces the proposal's status, and the manifest is written for the accepted scans only
(:func:`~digitize.match.apply_lines`); the others stay in the batch folder, listed, until someone
decides. A batch whose manifest was written by a person is left alone, and so is a stack batch: a scan
whose first page is a cover sheet (:func:`~digitize.intake.detect_sheet`, no OCR) leaves the whole
batch to the stack intake, which splits it at its sheets.
"""

from __future__ import annotations

import logging
from pathlib import Path

from digitize.errors import DigitizeError
from digitize.intake import LocalBatch
from digitize.pipeline.context import PipelineContext

log = logging.getLogger(__name__)

ACTOR = "DIGITIZE_AUTO_MATCH"
"""Who the match events name for matches nobody confirmed by hand."""


def auto_match(ctx: PipelineContext, batch_dir: Path) -> tuple[int, int] | None:
    """Write ``batch_dir``'s manifest from its accepted proposals; (written, left in place), or ``None`` if not asked.

    Not asked: the setting is off, the batch has no scans, or a person wrote its manifest (no match event).
    """
    from digitize.match import (
        MATCH_EVENT,
        apply_lines,
        decided_lines,
        ocr_options,
        propose_batch,
        scan_files,
        stored_proposals,
    )

    if ctx.settings.auto_match != "accepted":
        return None
    source = LocalBatch(batch_dir)
    scans = scan_files(source)
    manifest_by_hand = (batch_dir / "manifest.csv").exists() and not any(
        e.event_type == MATCH_EVENT for e in ctx.catalog.batch_events(source.name))
    if not scans or manifest_by_hand:
        return None
    stored = stored_proposals(ctx.catalog, batch_id=source.name)
    if not stored and _has_cover_sheets(source, scans, ctx):  # proposed before: an earlier run looked already
        return None
    known = {(p.file, p.sha256) for p in stored}
    fresh = [f for f in scans if (f, source.digest(f)[0]) not in known]
    if fresh:
        propose_batch(ctx.catalog, ctx.archive, source, ocr_options(ctx.settings, None),
                      scratch_dir=ctx.settings.work_dir, files=fresh)
    current = {(f, source.digest(f)[0]) for f in scans}
    lines = [ln for ln in decided_lines(ctx.catalog, source.name) if (ln.file, ln.sha256) in current]
    applied = apply_lines(ctx.catalog, source, lines, actor=ACTOR, via="automatic matching")
    for file, status, why in applied.left:
        log.info("batch %s: %s left in place (%s): %s", source.name, file, status, why)
    return len(applied.written), len(applied.left)


def _has_cover_sheets(source: LocalBatch, scans: list[str], ctx: PipelineContext) -> bool:
    """Whether a scan starts with a cover sheet (a stack: every stack starts with one, or it is faulty)."""
    from digitize.intake import PageLimits, detect_sheet, load_image, scan_pages

    limits = PageLimits.from_settings(ctx.settings)
    for name in scans:
        path = source.inside(name)
        if path is None:
            continue
        try:
            first = next(iter(scan_pages(path, limits)), None)
            if first is not None and detect_sheet(load_image(first)).looks_like_sheet:
                return True
        except (DigitizeError, OSError, ValueError):  # unreadable here: propose says so for that scan
            continue
    return False
