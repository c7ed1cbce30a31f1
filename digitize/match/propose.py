"""``propose``: OCR a batch's scans once, read their evidence, and propose the register row each digitizes.

Each scan is read once (into scratch, its SHA-256 taken while copying), OCR'd or its kept OCR
reused (:mod:`digitize.match.ocr_cache`), cut where its pages' evidence changes
(:func:`~digitize.match.scoring.segments`), and every part scored against the register rows that
share a value with it. Every proposal is recorded as a batch event (register ids, scores, the
fields that matched: never a holder ID), which the review page reads.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from digitize import __version__
from digitize.errors import InputError
from digitize.match.evidence import Evidence, agency_similarities, extract
from digitize.match.ocr_cache import keep_ocr, kept_ocr
from digitize.match.scoring import NONE, Candidate, Segment, Verdict, decide, rank, segments

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog
    from digitize.intake import BatchSource
    from digitize.ocr import OcrOptions

SCAN_SUFFIXES = (".pdf", ".tif", ".tiff", ".jpg", ".jpeg", ".png")
"""Files of a batch that are scans (the manifest, ``_READY`` and the ``done/`` folder are not)."""

PROPOSAL_EVENT = "match_proposed"
"""Batch event of one proposal (JSON detail: see :meth:`Proposal.event_detail`)."""


@dataclass(frozen=True)
class Proposal:
    """The proposal for one scan, or for one document of a scan that holds several."""

    file: str
    """Path of the scan in the batch."""
    sha256: str
    """SHA-256 of the scan's bytes when it was proposed (``--apply`` refuses a scan changed since)."""
    pages: int
    """Pages of the whole scan."""
    first_page: int
    last_page: int
    verdict: Verdict
    evidence: Evidence

    @property
    def split(self) -> bool:
        """The scan holds more than this one document."""
        return (self.first_page, self.last_page) != (1, self.pages)

    def event_detail(self) -> str:
        """What the batch event records: no personal data (register ids, scores, field names)."""
        def cand(c: Candidate | None) -> dict[str, object] | None:
            return None if c is None else {"register_id": c.row.register_id, "score": c.score,
                                           "matched": list(c.matched)}
        return json.dumps({"file": self.file, "sha256": self.sha256, "pages": [self.first_page, self.last_page],
                           "scan_pages": self.pages,
                           "status": self.verdict.status, "why": self.verdict.why,
                           "best": cand(self.verdict.best), "second": cand(self.verdict.second)},
                          ensure_ascii=False, sort_keys=True)


def scan_files(source: BatchSource) -> list[str]:
    """The batch's scans, in name order."""
    return sorted(f for f in source.files() if f.lower().endswith(SCAN_SUFFIXES) and not f.startswith("done/"))


def propose_batch(catalog: Catalog, archive: Archive, source: BatchSource, options: OcrOptions,
                  *, scratch_dir: Path | None = None, files: Sequence[str] | None = None) -> list[Proposal]:
    """Proposals for the batch's scans (``files``: only these), OCR kept for ``process``, each a batch event."""
    agencies = catalog.agency_names()
    proposals = []
    for name in scan_files(source) if files is None else files:
        with tempfile.TemporaryDirectory(prefix="digitize-propose-", dir=scratch_dir) as scratch:
            try:
                sha256, texts = _read_scan(archive, source, name, Path(scratch), options)
            except InputError as exc:  # this scan cannot be read: said in its row, the others go on
                sha256, texts, unreadable = source.digest(name)[0], [""], f"[{exc.reason}] {exc.message}"
            else:
                unreadable = ""
        parts = segments([extract(text) for text in texts])
        for part in parts:
            verdict = _verdict(catalog, agencies, part, split=len(parts) > 1)
            if unreadable:
                verdict = Verdict(None, None, NONE, unreadable)
            proposal = Proposal(name, sha256, len(texts), part.first_page, part.last_page, verdict, part.evidence)
            catalog.add_event(None, PROPOSAL_EVENT, "success" if verdict.status == "accepted" else "warning",
                              tool="digitize", tool_version=__version__, detail=proposal.event_detail(),
                              batch_id=source.name)
            proposals.append(proposal)
    return proposals


def _read_scan(archive: Archive, source: BatchSource, name: str, scratch: Path,
               options: OcrOptions) -> tuple[str, list[str]]:
    """The scan's SHA-256 and its pages' text: from the kept OCR of these bytes, or OCR'd now and kept."""
    from digitize.ocr import make_searchable_pdf

    path, sha256 = source.fetch(name, scratch)
    out_pdf = scratch / "ocr.pdf"
    result = kept_ocr(archive, [sha256], out_pdf, options)
    if result is None:
        result = make_searchable_pdf([path], out_pdf, options)
        keep_ocr(archive, [sha256], result, options)
    return sha256, [page.text for page in result.pages]


def _verdict(catalog: Catalog, agencies: list[tuple[str, str]], part: Segment, *, split: bool) -> Verdict:
    evidence = part.evidence
    found = agency_similarities(evidence, agencies)
    rows = catalog.register_candidates(holder_ids=evidence.holder_ids, dossier_codes=evidence.dossier_codes,
                                       issued_dates=evidence.written_dates + evidence.numeric_dates,
                                       agency_codes=found)
    return decide(rank(evidence, rows, found), split=split)
