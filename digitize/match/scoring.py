"""Weighing a scan's evidence against register rows: a score per candidate, and a status for the scan.

Points per field a candidate matches (:data:`WEIGHTS`, the title's by :data:`TITLE_FLOOR`): the dossier
code and the holder's ID identify a row nearly alone; the issue date, the agency and the title tell apart
the rows one holder has. A scan is ``accepted`` only when the best candidate

- matches an identifying field (dossier code or holder ID),
- scores at least :data:`ACCEPT_SCORE`,
- is at least :data:`ACCEPT_MARGIN` points ahead of the second best,
- is not already digitized, and the scan holds one document;

``none`` when no candidate reaches :data:`NONE_BELOW`; ``review`` otherwise. A wrong acceptance would be
signed and, under Object Lock, kept for decades, so the thresholds leave every doubt to a person
(bench/results/intake.md measures them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from digitize.catalog import RegisterRow
from digitize.match.evidence import Evidence, title_similarity

WEIGHTS = {"dossier_code": 50.0, "holder_id": 35.0, "issued_date": 20.0, "agency": 10.0, "title": 30.0,
           "valid_until": 5.0}
"""Most points each field gives (a dd/mm/yyyy issue date gives half; the title scales with its similarity)."""

TITLE_FLOOR = 70.0
"""Title similarity (0–100) that gives no points; from here to 100 the title's points rise with the square of
the distance from the floor, so a title a word away from the text (~80: "đăng ký" against "đăng ký thay đổi")
gets a tenth of an exact one's points, while OCR slips in the right title (~95) cost only a few."""

ACCEPT_SCORE = 70.0
"""Least score of an accepted candidate: an identifying field and more (e.g. ID + issue date + title)."""

ACCEPT_MARGIN = 20.0
"""Least lead of an accepted candidate over the second: e.g. the second lacks the title or the date."""

NONE_BELOW = 25.0
"""Below this, no candidate is proposed (status ``none``)."""

ACCEPTED, REVIEW, NONE = "accepted", "review", "none"
STATUSES = (ACCEPTED, REVIEW, NONE)


@dataclass(frozen=True)
class Candidate:
    """A register row scored against a scan's evidence."""

    row: RegisterRow
    score: float
    matched: tuple[str, ...]
    """The fields that matched, e.g. ``("holder_id", "issued_date", "title 96")``."""


@dataclass(frozen=True)
class Verdict:
    """The best and second-best candidates of a scan (or of one document of it) and its status."""

    best: Candidate | None
    second: Candidate | None
    status: str
    why: str
    """Why it is not accepted (empty when accepted): for the officer reading the proposal."""


def score(evidence: Evidence, row: RegisterRow, agencies: Mapping[str, float]) -> Candidate:
    """Points of ``row`` on ``evidence``; ``agencies`` = agency similarities found in the letterhead."""
    points, matched = 0.0, []
    if row.dossier_code and row.dossier_code in evidence.dossier_codes:
        points += WEIGHTS["dossier_code"]
        matched.append("dossier_code")
    if row.holder_id and row.holder_id in evidence.holder_ids:
        points += WEIGHTS["holder_id"]
        matched.append("holder_id")
    if row.issued_date in evidence.written_dates:
        points += WEIGHTS["issued_date"]
        matched.append("issued_date")
    elif row.issued_date in evidence.numeric_dates:
        points += WEIGHTS["issued_date"] / 2
        matched.append("issued_date (dd/mm/yyyy)")
    if row.valid_until and row.valid_until in evidence.numeric_dates + evidence.written_dates:
        points += WEIGHTS["valid_until"]
        matched.append("valid_until")
    if agencies.get(row.agency_code, 0.0) >= max(agencies.values(), default=101.0) - 2.0:
        points += WEIGHTS["agency"]
        matched.append("agency")
    similarity = title_similarity(evidence, row.title)
    if similarity > TITLE_FLOOR:
        points += WEIGHTS["title"] * ((similarity - TITLE_FLOOR) / (100.0 - TITLE_FLOOR)) ** 2
        matched.append(f"title {similarity:.0f}")
    return Candidate(row, round(points, 1), tuple(matched))


def rank(evidence: Evidence, rows: Iterable[RegisterRow], agencies: Mapping[str, float]) -> list[Candidate]:
    """Candidates best first (ties by register id, so a proposal is reproducible)."""
    scored = [score(evidence, row, agencies) for row in rows]
    return sorted(scored, key=lambda c: (-c.score, c.row.register_id))


def decide(candidates: Sequence[Candidate], *, split: bool = False) -> Verdict:
    """The status of a scan from its ranked candidates (see the module docstring for the rule)."""
    best = candidates[0] if candidates else None
    second = candidates[1] if len(candidates) > 1 else None
    if best is None or best.score < NONE_BELOW:
        return Verdict(best if best and best.score > 0 else None, None, NONE, "no register row matches")
    lead = best.score - (second.score if second else 0.0)
    reasons = []
    if not {"dossier_code", "holder_id"} & set(best.matched):
        reasons.append("neither the dossier code nor the holder ID was read")
    if best.score < ACCEPT_SCORE:
        reasons.append(f"score {best.score:.0f} < {ACCEPT_SCORE:.0f}")
    if lead < ACCEPT_MARGIN:
        reasons.append(f"second best only {lead:.0f} points behind")
    if best.row.archived_code:
        reasons.append(f"row already digitized as {best.row.archived_code}")
    if split:
        reasons.append("the file holds more than one document")
    return Verdict(best, second, REVIEW if reasons else ACCEPTED, "; ".join(reasons))


@dataclass(frozen=True)
class Segment:
    """Consecutive pages of a file that belong to one document (1-based, inclusive)."""

    first_page: int
    last_page: int
    evidence: Evidence


def segments(pages: Sequence[Evidence]) -> list[Segment]:
    """Split a file's pages where the identifying evidence changes.

    A page with a dossier code, holder ID or number that the document so far does not have, while the
    document already has one of that kind, begins another document. Pages without identifying
    evidence (continuations, annexes) stay with the document before them.
    """
    out: list[Segment] = []
    for number, page in enumerate(pages, start=1):
        if out and not _begins_another(out[-1].evidence, page):
            last = out[-1]
            out[-1] = Segment(last.first_page, number, last.evidence.merged(page))
        else:
            out.append(Segment(number, number, page))
    return out


def _begins_another(document: Evidence, page: Evidence) -> bool:
    for kind in ("dossier_codes", "holder_ids", "numbers"):
        have, new = getattr(document, kind), getattr(page, kind)
        if have and new and not set(have) & set(new):
            return True
    return False
