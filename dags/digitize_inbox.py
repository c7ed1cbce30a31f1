"""digitize_inbox: complete batches in the inbox → signed, archived, catalogued documents.

Wiring only: every step calls the ``digitize`` library, imported inside the
tasks so the DAG file parses in milliseconds. Documents are processed in
mapped chunks (never one task per page; even in pixels, each listing its largest
documents first), each chunk holding as many ``ocr`` pool slots as it runs
Tesseract processes. Only ids, keys and counts travel
through XCom: no file contents and no personal data.

With ``DIGITIZE_SIGNING_QUEUE`` set (the signing key sits on one machine: a
hardware token or a network HSM), each chunk is two tasks in the mapped group
``chunk``: ``prepare_chunk`` (OCR, code, originals archived; any worker, ``ocr``
pool) and ``sign_chunk`` (sign and archive; that queue only, no ``ocr`` slots).
What passes between them is staged in the archive bucket, never on local disk.

A batch without a manifest is a stack batch (scanned piles with cover sheets): the ``split`` task,
before the chunks, cuts each stack at its sheets (no OCR), registers one document per sheet and stages
its pages in the archive bucket; its documents then go through the same chunks as any other.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task
from digitize_airflow import (  # plugins/: shared by the DAGs, cheap to import
    DUPLICATES_NAMED,
    OCR_POOL,
    chunk_tasks,
    deadline,
    default_args,
    return_chunks,
    summary_task,
)

CATALOG_ASSET = Asset("digitize-catalog", uri="file:///digitize/catalog")
# Above a normal backlog (5), below a high-priority one (20): see digitize_backlog.
INBOX_PRIORITY = 10


def _register(batch_dirs: list[str]) -> dict[str, Any]:
    """Hash and register every original of the manifest batches (idempotent); list the stack batches apart."""
    from pathlib import Path

    from digitize_airflow import pipeline_context

    from digitize.errors import ManifestError, ProposalInvalid
    from digitize.intake import LocalBatch, is_stack_batch, read_manifest
    from digitize.pipeline import auto_match, register_batch

    ctx = pipeline_context()
    ctx.catalog.upgrade()
    ctx.archive.ensure_bucket()
    work: list[list[Any]] = []
    stacks: list[str] = []
    duplicates = rejected = 0
    duplicate_items: list[list[str]] = []
    for batch_dir in batch_dirs:
        try:  # DIGITIZE_AUTO_MATCH=accepted: scans without manifest nor cover sheets get a manifest first
            matched = auto_match(ctx, Path(batch_dir))
            if matched is not None:
                print(f"batch {Path(batch_dir).name}: automatic matching wrote {matched[0]} scan(s) into the "
                      f"manifest, left {matched[1]} for review")
                if not (Path(batch_dir) / "manifest.csv").exists():
                    continue  # nothing accepted yet: the scans wait for the review page
            if is_stack_batch(LocalBatch(Path(batch_dir))):
                stacks.append(batch_dir)
                continue
            plan = read_manifest(Path(batch_dir))
        except (ManifestError, ProposalInvalid) as exc:
            ctx.catalog.add_event(None, "manifest_validation", "failure", batch_id=Path(batch_dir).name,
                                  detail=str(exc))
            print(f"batch {Path(batch_dir).name} refused: {exc} — {exc.hint}")
            rejected += 1
            continue
        registered = register_batch(ctx.catalog, plan)
        duplicates += len(registered.duplicates)
        duplicate_items += [list(d.named(plan.batch_id)) for d in registered.duplicates]
        rejected += len(registered.rejected)
        work += [[batch_dir, doc_id] for doc_id in registered.to_process]
        print(f"batch {plan.batch_id}: {len(registered.to_process)} to process, "
              f"{len(registered.duplicates)} duplicate(s), {len(registered.rejected)} row(s) refused")
    return {"work": work, "stacks": stacks, "duplicates": duplicates, "rejected": rejected,
            "duplicate_items": duplicate_items}


def _split(registered: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Cut the stack batches at their cover sheets, then all the run's documents into chunks even in pixels."""
    from digitize_airflow import chunks_at_once, split_stacks

    from digitize.catalog import Catalog
    from digitize.config import load_settings
    from digitize.pipeline import cut_chunks

    split = split_stacks(registered["stacks"])
    work = [(uri, int(document_id)) for uri, document_id in registered["work"] + split["work"]]
    if params["max_documents"]:
        work = work[: params["max_documents"]]
    weights = Catalog(load_settings().catalog_url).document_pixels([document_id for _, document_id in work])
    chunks = cut_chunks(work, params["chunk_size"], weights, at_once=chunks_at_once())
    return {"chunks": chunks, "duplicates": registered["duplicates"] + split["duplicates"],
            "rejected": registered["rejected"] + split["refused"], "stacks": split["stacks"],
            "duplicate_items": (registered["duplicate_items"] + split["duplicate_items"])[:DUPLICATES_NAMED]}


@dag(
    dag_id="digitize_inbox",
    description="OCR, code, sign and archive the complete batches of the inbox",
    schedule=timedelta(minutes=15),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    deadline=deadline(),
    params={
        # The form shows the real folder (this process's AIRFLOW_HOME), not a variable to expand.
        "inbox": Param(os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "var", "inbox"),
                       type="string", minLength=1,
                       description="Folder whose sub-folders are batches (scans + manifest.csv, or scanned "
                                   "stacks with cover sheets)."),
        # Optional: null, so the UI's form does not mark it required and Trigger works with the defaults.
        "batch": Param(None, type=["null", "string"],
                       description="Only this batch folder name (empty: every complete batch). One still being "
                                   "copied makes the run wait and retry; put _READY in it to start at once."),
        "chunk_size": Param(4, type="integer", minimum=1, maximum=500,
                            description="Documents per mapped task (raised automatically to stay under 1,024 tasks)."),
        "max_documents": Param(0, type="integer", minimum=0, description="Stop after this many documents (0: all)."),
    },
    tags=["digitize"],
    doc_md=__doc__,
)
def digitize_inbox() -> None:
    @task
    def discover(params: dict[str, Any] | None = None) -> list[str]:
        """Complete batches only: a half-copied upload is never read as truncated files.

        A batch named in the form is taken or the task says why not: one still being copied retries
        (``BATCH_NOT_READY``), a name the inbox does not hold fails at once (``BATCH_NOT_FOUND``).
        """
        from pathlib import Path

        from airflow.sdk.exceptions import AirflowFailException

        from digitize.config import load_settings
        from digitize.errors import BatchNotReady, UsageError
        from digitize.intake import discover_batches, named_batch

        assert params is not None
        inbox = Path(os.path.expandvars(params["inbox"]))
        quiet_seconds = load_settings().quiet_seconds
        try:
            batches = ([named_batch(inbox, params["batch"], quiet_seconds=quiet_seconds)] if params["batch"]
                       else discover_batches(inbox, quiet_seconds=quiet_seconds))
        except BatchNotReady as exc:
            print(f"{exc} — {exc.hint}")
            raise
        except UsageError as exc:
            raise AirflowFailException(f"{exc} — {exc.hint}") from exc
        print(f"{len(batches)} complete batch(es) in {inbox}: {[b.name for b in batches]}")
        return [str(b) for b in batches]

    @task
    def register(batch_dirs: list[str]) -> dict[str, Any]:
        """Hash and register every original of the manifest batches (idempotent); list the stack batches."""
        return _register(batch_dirs)

    @task(pool=OCR_POOL)  # decoding every page of the stacks: one slot of the OCR machines' cores
    def split(registered: dict[str, Any], params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Cut the stack batches at their cover sheets (no OCR); the chunks of the run's documents."""
        assert params is not None
        return return_chunks(_split(registered, params))

    @task(outlets=[CATALOG_ASSET], trigger_rule="all_done")
    def summarize(chunks: list[dict[str, Any]] | None, outcomes: Any = None) -> dict[str, Any]:
        """The per-run summary IT staff read in the task log, its Rendered Templates and XCom."""
        from digitize_airflow import fail_without_plan, planned_run, publish_summary, run_summary

        registered = planned_run("split")
        fail_without_plan(registered)
        assert registered is not None and chunks is not None
        summary = run_summary([outcomes], chunks, duplicates=registered["duplicates"],
                              rejected_rows=registered["rejected"], duplicate_items=registered["duplicate_items"],
                              stacks=registered["stacks"])
        return publish_summary(summary.lines(), summary.as_dict(), summary.unfinished)

    chunks = split(register(discover()))
    run_chunk = chunk_tasks(task_id="process_chunk", group_id="chunk", priority=INBOX_PRIORITY)
    summary_task(summarize(chunks, run_chunk.expand(chunk=chunks)))


digitize_inbox()
