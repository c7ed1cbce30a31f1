"""digitize_backlog: an officer digitizes an existing backlog (folder or S3 prefix) from the Airflow UI form.

Wiring only; the work is the ``digitize`` library's. The source is a batch
(a folder or ``s3://bucket/prefix/`` holding ``manifest.csv``) or a folder/prefix
of batches. ``plan`` reads and filters the manifests (agency, issued dates),
registers the documents (idempotent by content), splits the stack batches and cuts
everything into chunks even in pixels, each listing its largest documents first: never
more than 1,024 mapped tasks, whatever the backlog's size. Planning and splitting are
one task, and its return value is the chunks the ``process`` task maps over: every
task between the form and the first chunk adds about a second of scheduling and
start-up to the run (``bench/results/airflow.md``). Re-running
the same form after a failure or a pause resumes: archived documents are not
registered again and ``process_document`` skips them. Chunks take ``ocr`` pool
slots like the inbox's, at the priority chosen in the form (the inbox runs at
10: a *normal* backlog yields to it, a *high* one does not): the cluster policy in
``plugins/airflow_local_settings.py`` gives the run's task instances the weight of
the form's choice. ``dry_run`` only counts and validates, writing nothing.

With ``DIGITIZE_SIGNING_QUEUE`` set, each chunk is two tasks of the mapped group
``process``: ``prepare_chunk`` (OCR, code, originals; any worker, ``ocr``
pool) then ``sign_chunk`` (sign and archive; the token holder's queue only).

A batch without a manifest is a stack batch (scanned piles with cover sheets): ``plan``, before
the chunks, cuts each stack at its sheets (no OCR), registers one document per sheet and stages its pages
in the archive bucket. The agency and date filters apply to manifest batches; a stack is split whole.

The run's summary (documents, pages, quarantine reasons, pages per minute,
slowest stage, time to finish the backlog) is in the ``summarize`` task's
*Rendered Templates* tab, its log and its XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import Param, dag, task
from digitize_airflow import (  # plugins/: shared by the DAGs, cheap to import
    BACKLOG_DAG_ID,
    BACKLOG_PRIORITIES,
    DUPLICATES_NAMED,
    OCR_POOL,
    chunk_tasks,
    default_args,
    return_chunks,
    summary_task,
)

if TYPE_CHECKING:
    from digitize.catalog import Catalog


def _plan(params: dict[str, Any]) -> dict[str, Any]:
    """Read, filter and register the backlog's documents; cut what is left to do into chunks."""
    import dataclasses
    from datetime import date

    from airflow.sdk.exceptions import AirflowFailException
    from digitize_airflow import pipeline_resources

    from digitize.errors import BatchNotFound, ManifestError, ProposalInvalid
    from digitize.intake import LocalBatch, find_batches, is_stack_batch, read_manifest, why_no_batches
    from digitize.pipeline import auto_match, register_batch

    agencies = {a.strip() for a in params["agencies"].split(",") if a.strip()}
    low = date.fromisoformat(params["issued_from"]) if params["issued_from"] else date.min
    high = date.fromisoformat(params["issued_to"]) if params["issued_to"] else date.max
    context, factory = pipeline_resources()
    try:  # a mistyped source fails the run at once (dry run too) instead of ending green having found nothing
        batches = find_batches(params["source"], s3=factory)
    except BatchNotFound as exc:
        raise AirflowFailException(f"{exc} — {exc.hint}") from exc
    print(f"{len(batches)} batch(es) in {params['source']}")
    if not batches:  # an empty backlog is no error, but the log says why nothing was found
        print(why_no_batches(params["source"], s3=factory))
    ctx = None if params["dry_run"] else context
    if ctx is not None:
        ctx.catalog.upgrade()
        ctx.archive.ensure_bucket()
    work: list[list[Any]] = []
    stacks: list[str] = []
    selected = files = duplicates = rejected = refused_batches = 0
    duplicate_items: list[list[str]] = []
    for batch in batches:
        try:
            if ctx is not None and isinstance(batch, LocalBatch):  # DIGITIZE_AUTO_MATCH=accepted (folder batches)
                matched = auto_match(ctx, batch.root)
                if matched is not None:
                    print(f"batch {batch.name}: automatic matching wrote {matched[0]} scan(s) into the manifest, "
                          f"left {matched[1]} for review")
                    if not batch.exists("manifest.csv"):
                        continue  # nothing accepted yet: the scans wait for the review page
            if is_stack_batch(batch):
                stacks.append(batch.uri)
                continue
            batch_plan = read_manifest(batch)
        except (ManifestError, ProposalInvalid) as exc:
            print(f"batch {batch.name} refused: {exc} — {exc.hint}")
            refused_batches += 1
            continue
        docs = tuple(d for d in batch_plan.documents
                     if (not agencies or d.agency_code in agencies) and low <= d.issued_date <= high)
        selected += len(docs)
        files += sum(len(d.files) for d in docs)
        rejected += len(batch_plan.errors)
        for error in batch_plan.errors:
            print(f"  {batch.name} row {error.row} ({error.file}): [{error.reason}] {error.message}")
        if ctx is None:
            continue
        registered = register_batch(ctx.catalog, dataclasses.replace(batch_plan, documents=docs))
        duplicates += len(registered.duplicates)
        duplicate_items += [list(d.named(batch.name)) for d in registered.duplicates]
        work += [[batch.uri, doc_id] for doc_id in registered.to_process]
        print(f"batch {batch.name}: {len(docs)} selected, {len(registered.to_process)} to process")
    print(f"selected {selected} document(s) ({files} file(s)); {rejected} manifest row(s) refused; "
          f"{refused_batches} batch(es) refused; {len(stacks)} stack batch(es) to split"
          + (" — dry run: nothing registered" if ctx is None else ""))
    return _split(None if ctx is None else ctx.catalog, {"work": work, "stacks": [] if ctx is None else stacks,
                   "duplicate_items": duplicate_items,
                   "meta": {"selected": selected, "files": files, "duplicates": duplicates, "rejected": rejected,
                            "refused_batches": refused_batches, "stack_batches": len(stacks),
                            "dry_run": ctx is None}}, params)


def _split(catalog: Catalog | None, planned: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Cut the stack batches at their cover sheets (no OCR), then everything to do into chunks even in pixels."""
    from digitize_airflow import chunks_at_once, split_stacks

    from digitize.pipeline import cut_chunks

    split = split_stacks(planned["stacks"])
    work = [(uri, int(doc_id)) for uri, doc_id in planned["work"] + split["work"]]
    pending = len(work)
    if params["max_documents"]:
        work = work[: params["max_documents"]]
    weights = catalog.document_pixels([document_id for _, document_id in work]) if catalog is not None else {}
    chunks = cut_chunks(work, params["chunk_size"], weights, at_once=chunks_at_once())
    meta = planned["meta"]
    meta = {**meta, "duplicates": meta["duplicates"] + split["duplicates"],
            "refused_batches": meta["refused_batches"] + split["refused"], "to_process": len(work),
            "remaining": pending - len(work), "chunks": len(chunks)}
    return {"chunks": chunks, "stacks": split["stacks"], "meta": meta,
            "duplicate_items": (planned["duplicate_items"] + split["duplicate_items"])[:DUPLICATES_NAMED]}


@dag(
    dag_id=BACKLOG_DAG_ID,
    description="Digitize an existing backlog (folder or S3 prefix) started from the UI form",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "source": Param("", type="string", minLength=1, title="Source",
                        description="Folder or s3://bucket/prefix/ holding a batch (with manifest.csv, or a stack "
                                    "batch with _UNIT) or batches."),
        "agencies": Param("", type="string", title="Agencies",
                          description="Comma-separated agency codes to keep (empty: every agency)."),
        "issued_from": Param(None, type=["null", "string"], format="date", title="Issued from",
                             description="Keep documents issued on or after this date (empty: no limit)."),
        "issued_to": Param(None, type=["null", "string"], format="date", title="Issued to",
                           description="Keep documents issued on or before this date (empty: no limit)."),
        "max_documents": Param(0, type="integer", minimum=0, title="Maximum documents",
                               description="Process at most this many in this run (0: all); run again for the rest."),
        "priority": Param("normal", type="string", enum=list(BACKLOG_PRIORITIES), title="Priority",
                          description="low / normal yield to the scheduled inbox runs; high goes first."),
        "chunk_size": Param(50, type="integer", minimum=1, maximum=1000, title="Documents per task",
                            description="Each task costs up to ~2 s besides its documents (start-up, scheduling): 50 "
                                        "keeps that near 4 %. Raised automatically so that a run never has "
                                        "more than 1,024 tasks."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Only count and validate the manifests; register and process nothing."),
    },
    tags=["digitize"],
    doc_md=__doc__,
)
def digitize_backlog() -> None:
    # One slot of the OCR machines' cores: planning decodes every page of the stacks (and reads the scans'
    # codes when DIGITIZE_AUTO_MATCH is on).
    @task(pool=OCR_POOL)
    def plan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Read, filter and register the backlog's documents, split the stacks; the chunks of what is left."""
        assert params is not None
        return return_chunks(_plan(params))

    chunks = plan()
    # The form's priority reaches every task instance of the run through the cluster policy in
    # plugins/airflow_local_settings.py; the weight here is the default, for a run without the choice.
    run_chunk = chunk_tasks(task_id="process", group_id="process", priority=BACKLOG_PRIORITIES["normal"])
    outcomes = run_chunk.expand(chunk=chunks)

    @task(trigger_rule="all_done")
    def summarize(chunks: list[dict[str, Any]] | None, outcomes: Any = None) -> dict[str, Any]:
        """The per-run summary IT operators read: counts, reasons, pace, slowest stage, time to finish."""
        from digitize_airflow import fail_without_plan, planned_run, publish_summary, run_summary

        planned = planned_run("plan")
        fail_without_plan(planned)
        assert planned is not None and chunks is not None
        meta = planned["meta"]
        summary = run_summary([outcomes], chunks, duplicates=meta["duplicates"],
                              rejected_rows=meta["rejected"], remaining=meta["remaining"],
                              duplicate_items=planned["duplicate_items"], stacks=planned["stacks"])
        lines = ([f"dry run: {meta['selected']} document(s), {meta['files']} file(s) would be processed"]
                 if meta["dry_run"] else summary.lines())
        return publish_summary(lines, {"text": "\n".join(lines), **summary.as_dict(), **meta}, summary.unfinished)

    summary_task(summarize(chunks, outcomes))


digitize_backlog()
