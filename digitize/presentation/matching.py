"""``python -m digitize propose``: proposals of the register row each scan of a batch digitizes, and ``--apply``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def cmd_propose(args: argparse.Namespace) -> int:
    """Propose (OCR kept for ``process``), or with ``--apply`` write the manifest of the accepted rows."""
    from digitize.presentation.cli import _actor, _log_cli_access

    batch = Path(args.batch)
    if not batch.is_dir():
        from digitize.errors import UsageError

        raise UsageError(f"{batch} is not a batch folder", hint="Give the folder holding the scans.")
    if args.apply:
        return _apply(args, batch, _actor())
    from digitize.intake import LocalBatch
    from digitize.match import ocr_options, propose_batch, write_proposal
    from digitize.pipeline import PipelineContext

    ctx = PipelineContext()
    ctx.catalog.upgrade()
    ctx.archive.ensure_bucket()
    proposals = propose_batch(ctx.catalog, ctx.archive, LocalBatch(batch), ocr_options(ctx.settings, None),
                              scratch_dir=ctx.settings.work_dir)
    out = Path(args.out) if args.out else Path(f"{batch.resolve().name}.proposal.xlsx")
    holders = write_proposal(proposals, out)
    _log_cli_access(ctx.catalog, args, "propose_xlsx", None,  # like a holder search: which IDs, where to
                    f"{len(holders)} holder ID(s) written to {out.resolve()} (mode 0600): {', '.join(holders)}")
    for p in proposals:
        best = p.verdict.best
        shown = f"{best.row.register_id} ({best.score:.0f})" if best else "-"
        print(f"  {p.file} pages {p.first_page}-{p.last_page}: {p.verdict.status:<8} {shown}"
              + (f" — {p.verdict.why}" if p.verdict.why else ""))
    counts = {s: sum(p.verdict.status == s for p in proposals) for s in ("accepted", "review", "none")}
    print(f"{len(proposals)} proposal(s): {counts['accepted']} accepted, {counts['review']} to review, "
          f"{counts['none']} without a match; wrote {out} (holds citizen IDs: readable by you only)")
    return 0


def _apply(args: argparse.Namespace, batch: Path, actor: str) -> int:
    from digitize.intake import LocalBatch
    from digitize.match import apply_lines, read_proposal
    from digitize.presentation.cli import _catalog

    proposal = Path(args.apply)
    lines = read_proposal(proposal)
    applied = apply_lines(_catalog(), LocalBatch(batch), lines, actor=actor, via=f"proposal {proposal.name}",
                          scanned_at=args.scanned_at)
    for file, register_id in applied.written:
        print(f"  {file}: register row {register_id}")
    for file, status, why in applied.left:
        print(f"  left in place: {file} ({status}) — {why}")
    print(f"manifest: {len(applied.written)} scan(s) written to {batch / 'manifest.csv'}; "
          f"{len(applied.left)} left in place for review")
    return 0


def cmd_relink(args: argparse.Namespace) -> int:
    """Re-link an archived document to the right register row: next version, or a new code; old one withdrawn."""
    from digitize.pipeline import PipelineContext, relink_document

    ctx = PipelineContext()
    ctx.catalog.upgrade()
    ctx.archive.ensure_bucket()
    outcome, old = relink_document(ctx, args.code, args.register, actor=args.actor, reason=args.reason)
    new = ctx.catalog.get_document(outcome.document_id)
    if outcome.status != "ARCHIVED":
        print(f"{args.code}: the re-linked version is {outcome.status} {outcome.reason or ''}; the old version "
              f"stays current (run relink again once the cause is fixed)")
        return 1
    what = f"version {new.version} of {new.code}" if new.code == old.code else f"new code {new.code}"
    print(f"{args.code} v{old.version} (register row {old.register_id}) re-linked to register row {args.register} "
          f"as {what}; v{old.version} withdrawn from coverage")
    return 0


def add_matching_commands(sub: Subparsers) -> None:
    """``propose`` and ``relink``."""
    p = sub.add_parser("propose", help="propose the register row each scan of a batch without manifest "
                                       "digitizes (XLSX to confirm), or --apply a confirmed proposal")
    p.add_argument("batch", help="batch folder holding the scans")
    p.add_argument("--out", help="proposal workbook to write (default: BATCH.proposal.xlsx here)")
    p.add_argument("--apply", metavar="PROPOSAL.xlsx",
                   help="write the batch's manifest.csv for the rows accepted in this confirmed proposal")
    p.add_argument("--scanned-at", help="with --apply: code of the one-stop unit that scanned the batch")
    p.set_defaults(func=cmd_propose)

    p = sub.add_parser("relink", help="re-link an archived document to another register row (next version with "
                                      "the same files, or a new code when agency or kind changes)")
    p.add_argument("code", help="code of the archived document")
    p.add_argument("--register", required=True, help="the register row it really digitizes")
    p.add_argument("--actor", required=True, help="who re-links it (recorded in the event log)")
    p.add_argument("--reason", required=True, help="why (e.g. 'matched to the holder's other result')")
    p.set_defaults(func=cmd_relink)
