"""The proposal workbook: written by ``propose``, edited by the officer, read back by ``propose --apply``.

One row per scan (per document of a scan that holds several): the best and second-best register
rows with their scores and the fields that matched, the status, and the two cells the officer may
change, ``status`` and ``register_id`` (put the second's id there to pick it). Every cell is text
(IDs, codes, dates: Excel must neither drop leading zeros nor turn dates into its own), kept text by
:func:`~digitize.spreadsheet.xlsx_text` (no formula). Reading back refuses a workbook whose cells
Excel damaged: an ID that lost its leading zero or is not 12 digits, a date stored as a date. The
file holds full citizen IDs: it is created readable by its owner only (0600).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitize.errors import ProposalInvalid
from digitize.match.propose import Proposal
from digitize.match.scoring import STATUSES, Candidate
from digitize.spreadsheet import xlsx_text

SHEET = "proposal"
CANDIDATE_FIELDS = ("register_id", "score", "matched", "title", "agency_code", "issued_date", "dossier_code",
                    "holder_id")
COLUMNS = ("file", "sha256", "pages", "scan_pages", "status", "register_id", "why",
           *(f"best_{f}" for f in CANDIDATE_FIELDS), *(f"second_{f}" for f in CANDIDATE_FIELDS),
           "read_holder_ids", "read_dossier_codes", "read_numbers", "read_dates")
"""Columns in order; the officer changes only ``status`` and ``register_id``."""

_HOLDER = re.compile(r"[0-9]{12}|[0-9]{10}(-[0-9]{3})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PAGES = re.compile(r"([0-9]+)-([0-9]+)")


@dataclass(frozen=True)
class ProposalLine:
    """One row of a proposal workbook as the officer left it."""

    row: int
    """Spreadsheet row (the header is row 1)."""
    file: str
    sha256: str
    first_page: int
    last_page: int
    whole_file: bool
    """The row covers the whole scan (``False``: the scan holds several documents)."""
    status: str
    register_id: str
    why: str
    evidence: str = ""
    """What matched for the chosen row (the best's or the second's fields), or that a person typed the row."""


def evidence_of(register_id: str, best: tuple[str, str] | None, second: tuple[str, str] | None) -> str:
    """The evidence of the chosen row from the (register_id, matched fields) of the best and second candidates."""
    for label, candidate in (("best", best), ("second", second)):
        if candidate is not None and candidate[0] == register_id:
            return f"{label} candidate, matched: {candidate[1] or 'nothing'}"
    return "row typed by a person (no candidate)"


def _candidate_cells(c: Candidate | None) -> list[str]:
    if c is None:
        return [""] * len(CANDIDATE_FIELDS)
    r = c.row
    return [r.register_id, f"{c.score:.1f}", ", ".join(c.matched), r.title, r.agency_code, r.issued_date.isoformat(),
            r.dossier_code or "", r.holder_id or ""]


def write_proposal(proposals: list[Proposal], path: Path) -> list[str]:
    """Write the workbook (mode 0600); returns the holder IDs it shows, sorted (for the access log)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = SHEET
    sheet.append(COLUMNS)
    holders: set[str] = set()
    for p in proposals:
        best, second = p.verdict.best, p.verdict.second
        ev = p.evidence
        cells = [p.file, p.sha256, f"{p.first_page}-{p.last_page}", str(p.pages), p.verdict.status,
                 best.row.register_id if best else "", p.verdict.why, *_candidate_cells(best),
                 *_candidate_cells(second), " ".join(ev.holder_ids), " ".join(ev.dossier_codes), " ".join(ev.numbers),
                 " ".join(d.isoformat() for d in ev.written_dates + ev.numeric_dates)]
        sheet.append(cells)
        holders.update(ev.holder_ids)
        holders.update(c.row.holder_id for c in (best, second) if c is not None and c.row.holder_id)
    for row in sheet.iter_rows(min_row=1):
        for cell in row:
            cell.number_format = "@"  # Excel keeps what is typed into these cells text as well
            xlsx_text(cell)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode on open: make it the owner's only
    with os.fdopen(fd, "wb") as handle:
        book.save(handle)
    return sorted(holders)


def read_proposal(path: Path) -> list[ProposalLine]:
    """The rows of an edited workbook; :class:`~digitize.errors.ProposalInvalid` names every damaged cell."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ProposalInvalid(f"{path.name} is not a proposal workbook ({type(exc).__name__})") from None
    if SHEET not in book.sheetnames:
        raise ProposalInvalid(f"{path.name} has no sheet named {SHEET!r}")
    rows = list(book[SHEET].iter_rows(values_only=True))
    book.close()
    if not rows or tuple(rows[0][:len(COLUMNS)]) != COLUMNS:
        raise ProposalInvalid(f"{path.name}: the header row is not the one 'propose' writes (columns moved?)")
    problems: list[str] = []
    lines = []
    for number, values in enumerate(rows[1:], start=2):
        cells = dict(zip(COLUMNS, values, strict=False))
        if all(v in (None, "") for v in cells.values()):
            continue
        problems += _damage(number, cells)
        lines.append((number, cells))
    if problems:
        raise ProposalInvalid(f"{path.name}: {len(problems)} damaged cell(s): " + "; ".join(problems[:20]))
    return [_line(number, cells) for number, cells in lines]


def _damage(number: int, cells: dict[str, Any]) -> list[str]:
    """What Excel (or a hand) broke in one row: never the cell's value, which may be a citizen ID."""
    out = []
    for name, value in cells.items():
        if value is None or value == "":
            continue
        where = f"row {number} column {name}"
        if not isinstance(value, str):
            what = "a date" if hasattr(value, "year") else "a number"
            out.append(f"{where} is {what}, not text (Excel converted it: type it again as text)")
        elif name.endswith("holder_id") and not _HOLDER.fullmatch(value):
            out.append(f"{where} is not a 12-digit citizen ID or a tax code (a digit lost?)")
        elif name.endswith("issued_date") and not _DATE.fullmatch(value):
            out.append(f"{where} is not a YYYY-MM-DD date (reformatted?)")
    if not isinstance(cells.get("sha256"), str) or not _SHA256.fullmatch(cells["sha256"]):
        out.append(f"row {number} column sha256 is not the scan's SHA-256")
    if not isinstance(cells.get("pages"), str) or not _PAGES.fullmatch(cells["pages"]):
        out.append(f"row {number} column pages is not FIRST-LAST")
    if not isinstance(cells.get("scan_pages"), str) or not cells["scan_pages"].isdigit():
        out.append(f"row {number} column scan_pages is not a number of pages")
    if cells.get("status") not in STATUSES:
        out.append(f"row {number} column status must be one of {', '.join(STATUSES)}")
    return out


def _line(number: int, cells: dict[str, Any]) -> ProposalLine:
    match = _PAGES.fullmatch(cells["pages"])
    assert match is not None  # checked by _damage
    register_id = str(cells.get("register_id") or "").strip()
    best, second = ((str(cells.get(f"{k}_register_id") or ""), str(cells.get(f"{k}_matched") or ""))
                    for k in ("best", "second"))
    return ProposalLine(row=number, file=str(cells["file"] or ""), sha256=cells["sha256"],
                        first_page=int(match[1]), last_page=int(match[2]),
                        whole_file=(int(match[1]), int(match[2])) == (1, int(cells["scan_pages"])),
                        status=cells["status"], register_id=register_id, why=str(cells.get("why") or ""),
                        evidence=evidence_of(register_id, best, second))
