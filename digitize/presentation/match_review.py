"""The proposals review page of the Airflow UI: scans ``propose`` could not match alone, to accept or reject.

For each batch, the scan parts whose latest proposal is ``review`` or ``none`` and that nobody decided
yet: the best and the second candidate (register id, score, the fields that matched, title, issue
date, the holder's ID masked), and why the proposal was not accepted. Accepting (the best or the
second) or rejecting records a decision event with the user's name (:func:`digitize.match.record_decision`);
with ``DIGITIZE_AUTO_MATCH=accepted`` the next run writes accepted scans into the batch's manifest,
otherwise ``python -m digitize propose --apply`` or a person does. The plugin
(``plugins/match_review_page.py``) wires HTTP, login and CSRF; no Airflow import here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from digitize.personal import mask_holder_id

if TYPE_CHECKING:
    from digitize.catalog import Catalog
    from digitize.match import StoredProposal


@dataclass(frozen=True)
class Choice:
    """One candidate as the page shows it (no full citizen ID)."""

    register_id: str
    score: float
    matched: str
    title: str
    issued_date: str
    holder: str


@dataclass(frozen=True)
class Waiting:
    """A scan part waiting for a person."""

    key: str
    batch_id: str
    file: str
    pages: str
    status: str
    why: str
    best: Choice | None
    second: Choice | None


@lru_cache(maxsize=8)
def _catalog(url: str) -> Catalog:
    """One catalog (one connection pool) per URL for the life of the API server process."""
    from digitize.catalog import Catalog

    return Catalog(url)


def _choice(catalog: Catalog, candidate: dict[str, Any] | None) -> Choice | None:
    if not candidate:
        return None
    row = catalog.register_row(str(candidate["register_id"]))
    if row is None:
        return None
    return Choice(row.register_id, float(candidate["score"]), ", ".join(candidate["matched"]), row.title,
                  row.issued_date.isoformat(), mask_holder_id(row.holder_id or ""))


def collect(catalog_url: str) -> list[Waiting]:
    """The undecided proposals that are not accepted, batch by batch."""
    from digitize.match import ACCEPTED, stored_proposals

    catalog = _catalog(catalog_url)
    return [Waiting(p.key, p.batch_id, p.file, f"{p.first_page}-{p.last_page}", p.status, p.why,
                    _choice(catalog, p.best), _choice(catalog, p.second))
            for p in stored_proposals(catalog) if p.status != ACCEPTED and p.decision is None]


def decide(catalog_url: str, key: str, *, accept: bool, register_id: str | None, user: str) -> None:
    """Record a person's decision (accept with a register id, or reject) under their name."""
    from digitize.match import record_decision

    record_decision(_catalog(catalog_url), key, accept=accept, register_id=register_id, user=user)


def decided(catalog_url: str, key: str) -> StoredProposal | None:
    """The proposal ``key`` with its decision (for the notice after a form)."""
    from digitize.match import stored_proposals

    found = stored_proposals(_catalog(catalog_url), batch_id=key.split("|", 1)[0])
    return next((p for p in found if p.key == key), None)


def _cell(choice: Choice | None) -> str:
    if choice is None:
        return "<td>—</td>"
    return (f"<td><b>{html.escape(choice.register_id)}</b> ({choice.score:.0f})<br>{html.escape(choice.title)}"
            f"<br>{html.escape(choice.issued_date)} · {html.escape(choice.holder)}"
            f"<br><small>matched: {html.escape(choice.matched or 'nothing')}</small></td>")


def _form(item: Waiting, csrf_token: str, action: str) -> str:
    hidden = (f'<input type="hidden" name="csrf_token" value="{csrf_token}">'
              f'<input type="hidden" name="key" value="{html.escape(item.key)}">')
    buttons = []
    for label, choice in (("Accept best", item.best), ("Accept second", item.second)):
        if choice is not None:
            buttons.append(f'<button name="register_id" value="{html.escape(choice.register_id)}">{label}</button>')
    buttons.append('<button name="reject" value="1">Reject</button>')
    return f'<form method="post" action="{action}">{hidden}{"".join(buttons)}</form>'


def review_html(items: list[Waiting], *, csrf_token: str, action: str, notice: str = "") -> str:
    """The page: one table of waiting scans per batch, each with its accept/reject form."""
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Proposals to review</title>"
             "<style>body{font-family:sans-serif;margin:1em}td,th{border:1px solid #ccc;padding:4px;"
             "vertical-align:top}table{border-collapse:collapse}</style></head><body>",
             "<h1>Proposals to review</h1>",
             "<p>Scans <code>propose</code> could not match with certainty. Accepting writes nothing yet: the "
             "next run (with <code>DIGITIZE_AUTO_MATCH=accepted</code>) or <code>propose --apply</code> puts "
             "the scan into the batch's manifest. Every decision is recorded with your name.</p>"]
    if notice:
        parts.append(f"<p class='notice'><b>{html.escape(notice)}</b></p>")
    if not items:
        parts.append("<p>Nothing waits for review.</p>")
    for batch in dict.fromkeys(i.batch_id for i in items):
        parts.append(f"<h2>Batch {html.escape(batch)}</h2><table><tr><th>scan</th><th>pages</th><th>status</th>"
                     "<th>why</th><th>best</th><th>second</th><th>decision</th></tr>")
        for item in (i for i in items if i.batch_id == batch):
            parts.append(f"<tr><td>{html.escape(item.file)}</td><td>{item.pages}</td><td>{item.status}</td>"
                         f"<td>{html.escape(item.why)}</td>{_cell(item.best)}{_cell(item.second)}"
                         f"<td>{_form(item, csrf_token, action)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
