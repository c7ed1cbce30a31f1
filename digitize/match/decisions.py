"""Proposals as the catalog remembers them, and the officers' decisions on them (the review page's).

``propose`` records each proposal as a batch event (:data:`~digitize.match.propose.PROPOSAL_EVENT`);
accepting or rejecting one on the review page records a :data:`DECISION_EVENT` with the user's name.
The latest proposal of a scan part, with its latest decision, is what automatic matching applies
(:func:`decided_lines`): a person's decision always wins over the score's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from digitize import __version__
from digitize.errors import ProposalInvalid
from digitize.match.propose import PROPOSAL_EVENT
from digitize.match.scoring import ACCEPTED, NONE
from digitize.match.workbook import ProposalLine, evidence_of

if TYPE_CHECKING:
    from digitize.catalog import Catalog

DECISION_EVENT = "match_decision"
"""Batch event of a person accepting or rejecting a proposal (JSON detail with ``user``)."""


@dataclass(frozen=True)
class StoredProposal:
    """The latest proposal of one scan part, and the latest decision on it."""

    batch_id: str
    file: str
    sha256: str
    first_page: int
    last_page: int
    scan_pages: int
    status: str
    why: str
    best: dict[str, Any] | None
    """register_id, score, matched (no personal data)."""
    second: dict[str, Any] | None
    decision: dict[str, Any] | None = None
    """decision (accepted/rejected), register_id, user; ``None`` while nobody decided."""

    @property
    def key(self) -> str:
        """Identifies the part in a form: batch, SHA-256 and pages."""
        return f"{self.batch_id}|{self.sha256}|{self.first_page}-{self.last_page}"


def stored_proposals(catalog: Catalog, *, batch_id: str | None = None) -> list[StoredProposal]:
    """Latest proposal per scan part (of one batch or all), each with its latest decision, oldest first."""
    latest: dict[tuple[str, str, str, int, int], StoredProposal] = {}
    for event in catalog.batch_events_of((PROPOSAL_EVENT, DECISION_EVENT), batch_id=batch_id):
        row = json.loads(event.detail)
        key = (event.batch_id or "", row["file"], row["sha256"], *row["pages"])
        if event.event_type == PROPOSAL_EVENT:
            latest[key] = StoredProposal(event.batch_id or "", row["file"], row["sha256"], row["pages"][0],
                                         row["pages"][1], int(row.get("scan_pages", row["pages"][1])),
                                         row["status"], row["why"], row["best"], row["second"])
        elif key in latest:
            p = latest[key]
            latest[key] = StoredProposal(p.batch_id, p.file, p.sha256, p.first_page, p.last_page, p.scan_pages,
                                         p.status, p.why, p.best, p.second, decision=row)
    return list(latest.values())


def record_decision(catalog: Catalog, key: str, *, accept: bool, user: str, register_id: str | None = None) -> None:
    """Record a person's decision on the proposal ``key`` (:attr:`StoredProposal.key`).

    Accepting takes ``register_id`` (default: the best candidate), which must be a register row.
    """
    batch_id = key.split("|", 1)[0]
    found = [p for p in stored_proposals(catalog, batch_id=batch_id) if p.key == key]
    if not found:
        raise ProposalInvalid(f"no proposal {key!r}", hint="Reload the review page: the batch was proposed again.")
    proposal = found[0]
    chosen = register_id or (proposal.best or {}).get("register_id")
    if accept and (not chosen or catalog.register_row(str(chosen)) is None):
        raise ProposalInvalid(f"register row {chosen!r} is unknown", hint="Pick the best or the second candidate.")
    detail = {"file": proposal.file, "sha256": proposal.sha256, "pages": [proposal.first_page, proposal.last_page],
              "decision": ACCEPTED if accept else "rejected", "register_id": chosen if accept else None,
              "user": user}
    catalog.add_event(None, DECISION_EVENT, "success", tool="digitize", tool_version=__version__,
                      detail=json.dumps(detail, ensure_ascii=False, sort_keys=True), batch_id=batch_id)


def decided_lines(catalog: Catalog, batch_id: str) -> list[ProposalLine]:
    """The batch's proposals as lines to apply: a person's decision replaces the proposal's status."""
    lines = []
    for p in stored_proposals(catalog, batch_id=batch_id):
        status, register_id, why = p.status, str((p.best or {}).get("register_id") or ""), p.why
        if p.decision is not None:
            accepted = p.decision["decision"] == ACCEPTED
            status = ACCEPTED if accepted else NONE
            register_id = str(p.decision.get("register_id") or "") if accepted else register_id
            why = "" if accepted else f"rejected by {p.decision['user']}"
        found = [(str(c["register_id"]), ", ".join(c["matched"])) if c else None for c in (p.best, p.second)]
        evidence = evidence_of(register_id, found[0], found[1])
        if p.decision is not None:
            evidence += f"; {p.decision['decision']} by {p.decision['user']}"
        lines.append(ProposalLine(row=0, file=p.file, sha256=p.sha256, first_page=p.first_page,
                                  last_page=p.last_page, whole_file=(p.first_page, p.last_page) == (1, p.scan_pages),
                                  status=status, register_id=register_id, why=why, evidence=evidence))
    return lines
