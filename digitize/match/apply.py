"""Confirmed proposals become the batch's manifest: ``propose --apply`` and ``DIGITIZE_AUTO_MATCH=accepted``.

Only ``accepted`` rows are written, each from its register row as the catalog holds it (never from
the workbook's display cells), in the manifest's own format, so the manifest rules
(:mod:`digitize.intake.manifest`) apply unchanged. A row is left out, and said why, when its scan
changed since the proposal, its register row is unknown or already digitized, two scans claim one
row, or the scan holds several documents (scan them apart, or put cover sheets between them).
Scans not written stay in the batch folder untouched. Every written match is a batch event. The manifest is
a CSV an officer may open: a row whose text would start with a formula character (:mod:`digitize.spreadsheet`)
is left out rather than written altered.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digitize import __version__
from digitize.errors import ProposalInvalid
from digitize.match.scoring import ACCEPTED
from digitize.match.workbook import ProposalLine
from digitize.spreadsheet import FORMULA_START

if TYPE_CHECKING:
    from digitize.catalog import Catalog, RegisterRow
    from digitize.intake import BatchSource, LocalBatch

MATCH_EVENT = "register_match"
"""Batch event of a scan written into the manifest under a register row."""

MANIFEST = "manifest.csv"
"""The manifest's name in a batch folder (:mod:`digitize.intake.manifest` reads it)."""

MANIFEST_COLUMNS = ("file", "agency_code", "kind", "title", "issued_date", "register_id", "procedure_code",
                    "dossier_code", "valid_until", "holder_id", "scanned_at")


@dataclass(frozen=True)
class Applied:
    """What ``--apply`` did: the scans written into the manifest, and those left in place with why."""

    written: tuple[tuple[str, str], ...]
    """(file, register_id) written into the manifest."""
    left: tuple[tuple[str, str, str], ...]
    """(file, status, why) of the scans left where they are."""


def apply_lines(catalog: Catalog, batch: LocalBatch, lines: Sequence[ProposalLine], *, actor: str, via: str,
                scanned_at: str | None = None) -> Applied:
    """Write ``batch``'s manifest for the accepted lines (see the module docstring); 0600, it holds IDs."""
    unknown = [f"row {ln.row}: register row {ln.register_id!r} is unknown" for ln in lines
               if ln.status == ACCEPTED and catalog.register_row(ln.register_id) is None]
    if unknown:
        raise ProposalInvalid("; ".join(unknown[:20]), hint="Put a register id from the register (or the "
                              "second_register_id column) in register_id, or set the status to review.")
    claimed = Counter(ln.register_id for ln in lines if ln.status == ACCEPTED)
    written: list[tuple[str, str, RegisterRow, ProposalLine]] = []
    left = []
    for line in lines:
        why = _why_left(catalog, batch, line, claimed)
        if why:
            left.append((line.file, line.status, why))
            continue
        row = catalog.register_row(line.register_id)
        assert row is not None  # checked above
        written.append((line.file, line.register_id, row, line))
    if not written:
        return Applied((), tuple(left))
    _check_existing_manifest(batch, {file for file, _, _, _ in written})
    _write_manifest(batch, [(file, row) for file, _, row, _ in written], scanned_at)
    for file, register_id, _, line in written:
        catalog.add_event(None, MATCH_EVENT, "success", tool="digitize", tool_version=__version__, batch_id=batch.name,
                          detail=f"{file} (SHA-256 {line.sha256}) written into the manifest as register row "
                                 f"{register_id}, confirmed by {actor} via {via}; evidence: {line.evidence}")
    return Applied(tuple((f, r) for f, r, _, _ in written), tuple(left))


def _why_left(catalog: Catalog, batch: BatchSource, line: ProposalLine, claimed: Counter[str]) -> str:
    if line.status != ACCEPTED:
        return line.why or "no register row matches"
    if not line.whole_file:
        return (f"pages {line.first_page}-{line.last_page}: the scan holds more than one document; scan them "
                "apart or put cover sheets between them")
    if not batch.exists(line.file) or batch.digest(line.file)[0] != line.sha256:
        return "the scan changed or went since the proposal: run 'propose' again"
    if claimed[line.register_id] > 1:
        return f"register row {line.register_id} is accepted for {claimed[line.register_id]} scans"
    row = catalog.register_row(line.register_id)
    if row is not None and any(str(v).startswith(FORMULA_START) for v in (row.title, line.file)):
        return (f"register row {line.register_id}'s title (or the file name) starts with a character spreadsheets "
                "run as a formula: correct it in the register, or write this row by hand")
    earlier = catalog.find_by_fingerprint(line.sha256)  # this very scan, registered by an earlier apply
    if earlier is not None and earlier.register_id == line.register_id:
        return ""
    if row is not None and row.archived_code:
        return f"register row {line.register_id} is already digitized as {row.archived_code}"
    return ""


def _check_existing_manifest(batch: LocalBatch, files: set[str]) -> None:
    """A manifest already there is replaced only if every scan it lists is written again."""
    path = batch.root / MANIFEST
    if not path.exists():
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        listed = {row.get("file", "") for row in csv.DictReader(handle)}
    missing = sorted(listed - files)
    if missing:
        raise ProposalInvalid(f"the batch already has a manifest listing {len(missing)} scan(s) this proposal "
                              "does not accept", hint="Move the existing manifest.csv out of the batch folder, or "
                              "accept those scans too, and apply again.")


def _write_manifest(batch: LocalBatch, rows: Sequence[tuple[str, RegisterRow]], scanned_at: str | None) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for file, r in rows:
        writer.writerow([file, r.agency_code, "KQ", r.title, r.issued_date.isoformat(), r.register_id,
                         r.procedure_code or "", r.dossier_code or "",
                         r.valid_until.isoformat() if r.valid_until else "", r.holder_id or "", scanned_at or ""])
    path = batch.root / MANIFEST
    tmp = path.with_name(".manifest.csv.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp, path)  # never a half-written manifest for the inbox to read
