"""``python -m digitize process BATCH``: a manifest batch, or a stack batch split at its cover sheets first.

Exit status: 0 when the run did its job (a quarantined document is a result, not a crash);
:data:`EXIT_UNFINISHED` when documents are still RECEIVED at its end; :data:`EXIT_INPUT` when the whole
batch was refused (a stack batch without its scanning unit).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize.errors import InputError, TransientError

if TYPE_CHECKING:
    from digitize.intake import LocalBatch
    from digitize.pipeline import DocumentOutcome, Duplicate, PipelineContext

EXIT_UNFINISHED = 3
"""``process`` left documents RECEIVED (another worker's lease lapsed under it…): run the batch again."""
EXIT_INPUT = InputError.exit_code
"""``process`` refused the whole batch (a stack batch without its scanning unit: ``STACK_NO_UNIT``)."""


def cmd_process(args: argparse.Namespace) -> int:
    from digitize.intake import LocalBatch, is_stack_batch, read_manifest
    from digitize.pipeline import PipelineContext, auto_match, register_batch

    start = time.perf_counter()
    ctx = PipelineContext()
    ctx.catalog.upgrade()
    ctx.archive.ensure_bucket()
    source = LocalBatch(Path(args.batch))
    matched = auto_match(ctx, Path(args.batch))  # DIGITIZE_AUTO_MATCH=accepted: no manifest, no cover sheets
    if matched is not None:
        print(f"automatic matching: {matched[0]} scan(s) written into the manifest, {matched[1]} left for review "
              "(python -m digitize propose BATCH lists them)")
        if not matched[0] and not source.exists("manifest.csv"):
            return 0  # nothing accepted yet: the scans wait for the review page, no stack to split
    if is_stack_batch(source):
        return _process_stacks(ctx, source, start, args)
    plan = read_manifest(Path(args.batch))
    registered = register_batch(ctx.catalog, plan)
    print(f"batch {plan.batch_id}: {len(plan.documents)} document(s) in the manifest, "
          f"{len(registered.to_process)} to process, {len(registered.duplicates)} duplicate(s), "
          f"{len(plan.errors)} row(s) refused")
    for error in plan.errors:
        print(f"  row {error.row} {error.file}: [{error.reason}] {error.message}")
    for dup in registered.duplicates:
        print(f"  duplicate {dup.key}: already {dup.existing_code or 'registered'} (batch {dup.existing_batch})")
    return _run_documents(ctx, registered.to_process, source, start, args,
                          duplicates=registered.duplicates, rejected_rows=len(plan.errors))


def _process_stacks(ctx: PipelineContext, source: LocalBatch, start: float, args: argparse.Namespace) -> int:
    """``process`` of a stack batch: split at the cover sheets first (no OCR), then the documents as usual."""
    from digitize.pipeline import page_span, split_stack_batch

    split = split_stack_batch(ctx, source)
    if split.refused is not None:
        print(f"batch {split.batch_id} refused: [{split.refused[0]}] {split.refused[1]}")
        return EXIT_INPUT
    for stack in split.stacks:
        print(f"stack {stack.name}: {stack.pages} page(s), {len(stack.sheets)} sheet(s), "
              f"{len(stack.documents)} document(s), {len(stack.faults)} fault(s), {len(stack.duplicates)} duplicate(s)")
        for fault in stack.faults:
            print(f"  {page_span(fault.first_page, fault.last_page)}: [{fault.reason}] {fault.message}")
        for dup in stack.duplicates:
            print(f"  duplicate {dup.key}: already {dup.existing_code or 'registered'} (batch {dup.existing_batch})")
    return _run_documents(ctx, split.to_process, source, start, args, duplicates=split.duplicates,
                          rejected_rows=0, stacks=[s.as_dict() for s in split.stacks])


def _run_documents(ctx: PipelineContext, to_process: Sequence[int], source: LocalBatch, start: float,
                   args: argparse.Namespace, *, duplicates: Sequence[Duplicate], rejected_rows: int,
                   stacks: Sequence[dict[str, Any]] = ()) -> int:
    """Take the registered documents through the stages (``--workers`` at a time), then print the run's summary."""
    from tqdm import tqdm

    from digitize.pipeline import (
        largest_first,
        process_documents,
        process_in_workers,
        stack_summaries,
        summarize,
        unfinished_documents,
    )

    outcomes: list[DocumentOutcome] = []
    stopped: TransientError | None = None
    with tqdm(total=len(to_process), unit="doc", desc="processing", disable=args.quiet) as bar:
        def done(outcome: DocumentOutcome) -> None:
            outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix_str(f"{outcome.status} {outcome.code or outcome.reason or ''}")
            if outcome.status == "QUARANTINED":
                tqdm.write(f"  quarantined document {outcome.document_id}: {outcome.reason}")

        try:
            workers = min(max(1, args.workers), len(to_process))
            if workers > 1:
                ordered = largest_first(ctx.catalog, to_process)
                process_in_workers(ctx.settings, ordered, source, workers, on_done=done)
            else:
                process_documents(ctx, to_process, source, on_done=done)
        except TransientError as exc:  # no retry here: the rest stays RECEIVED, named below, for the next run
            stopped = exc
    if stopped is not None:
        print(f"stopped: [{stopped.reason}] {stopped.message} — {stopped.hint}")
    summary = summarize(outcomes, duplicates=len(duplicates), rejected_rows=rejected_rows,
                        seconds=time.perf_counter() - start, unfinished=unfinished_documents(ctx.catalog, to_process),
                        duplicate_items=[d.named(source.name) for d in duplicates],
                        stacks=stack_summaries(ctx.catalog, stacks))
    for line in summary.lines():
        print(line)
    if args.stage_times:
        Path(args.stage_times).write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    return EXIT_UNFINISHED if summary.unfinished else 0
