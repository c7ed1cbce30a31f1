"""Matching scans to the register without cover sheets: evidence, scores, the proposal workbook, kept OCR.

``propose`` (:func:`propose_batch`) OCRs a batch's scans once, keeping the OCR for ``process``
(:mod:`~digitize.match.ocr_cache`), reads what each says (:mod:`~digitize.match.evidence`), scores
the register rows that share a value with it (:mod:`~digitize.match.scoring`) and writes the
proposal workbook (:mod:`~digitize.match.workbook`); ``--apply`` and ``DIGITIZE_AUTO_MATCH`` turn
the accepted rows into the batch's manifest (:mod:`~digitize.match.apply`).
"""

from __future__ import annotations

from digitize.match.apply import MATCH_EVENT, Applied, apply_lines
from digitize.match.decisions import DECISION_EVENT, StoredProposal, decided_lines, record_decision, stored_proposals
from digitize.match.evidence import Evidence, extract
from digitize.match.ocr_cache import forget_ocr, keep_ocr, kept_ocr, ocr_options
from digitize.match.propose import PROPOSAL_EVENT, Proposal, propose_batch, scan_files
from digitize.match.scoring import (
    ACCEPT_MARGIN,
    ACCEPT_SCORE,
    ACCEPTED,
    NONE,
    NONE_BELOW,
    REVIEW,
    WEIGHTS,
    Candidate,
    Verdict,
)
from digitize.match.workbook import ProposalLine, read_proposal, write_proposal

__all__ = [
    "ACCEPTED",
    "ACCEPT_MARGIN",
    "ACCEPT_SCORE",
    "DECISION_EVENT",
    "MATCH_EVENT",
    "NONE",
    "NONE_BELOW",
    "PROPOSAL_EVENT",
    "REVIEW",
    "WEIGHTS",
    "Applied",
    "Candidate",
    "Evidence",
    "Proposal",
    "ProposalLine",
    "StoredProposal",
    "Verdict",
    "apply_lines",
    "decided_lines",
    "extract",
    "forget_ocr",
    "keep_ocr",
    "kept_ocr",
    "ocr_options",
    "propose_batch",
    "read_proposal",
    "record_decision",
    "scan_files",
    "stored_proposals",
    "write_proposal",
]
