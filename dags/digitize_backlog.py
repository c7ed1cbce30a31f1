"""digitize_backlog: an officer digitizes an existing backlog (folder or S3 prefix) from the Airflow UI form.

Wiring only; the work is the ``digitize`` library's. The source is a batch
(a folder or ``s3://bucket/prefix/`` holding ``manifest.csv``) or a folder/prefix
of batches. ``plan`` reads and filters the manifests (agency, issued dates),
registers the documents (idempotent by content) and cuts them into chunks:
never more than 1,024 mapped tasks, whatever the backlog's size. Re-running
the same form after a failure or a pause resumes: archived documents are not
registered again and ``process_document`` skips them. Chunks take ``ocr`` pool
slots like the inbox's, at the priority chosen in the form (the inbox runs at
10: a *normal* backlog yields to it, a *high* one does not). ``dry_run`` only
counts and validates, writing nothing.

With ``DIGITIZE_SIGNING_QUEUE`` set, each chunk is two tasks of the mapped group
``process_<priority>``: ``prepare_chunk`` (OCR, code, originals; any worker, ``ocr``
pool) then ``sign_chunk`` (sign and archive; the token holder's queue only).

The run's summary (documents, pages, quarantine reasons, pages per minute,
slowest stage, time to finish the backlog) is in the ``report`` task's
*Rendered Templates* tab, its log and the ``summarize`` XCom.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task, task_group

OCR_POOL = "ocr"
OCR_SLOTS = max(1, min(int(os.environ.get("DIGITIZE_OCR_JOBS") or os.cpu_count() or 1), os.cpu_count() or 1))
MAX_MAP_LENGTH = 1024
# priority_weight per form choice; digitize_inbox's chunks run at 10.
PRIORITIES = {"low": 1, "normal": 5, "high": 20}
# Set: chunks split into prepare (any worker) and sign (the token holder's Celery queue only).
SIGNING_QUEUE = os.environ.get("DIGITIZE_SIGNING_QUEUE") or None


def cut_chunks(work: list[tuple[str, int]], chunk_size: int) -> list[dict[str, Any]]:
    """(batch uri, document id) pairs → chunks of at most ``chunk_size`` documents, never more than ``MAX_MAP_LENGTH``.

    The size grows with the backlog instead. The chunks are as even as possible (60 documents at 50 per
    task make two of 30, not 50 and 10, which would leave one slot idle while the other works five times
    as long). A chunk may span batches (one part per batch), so the number of batches cannot push the
    count over the limit. Only uris and ids go to XCom.
    """
    if not work:
        return []
    count = math.ceil(len(work) / max(chunk_size, math.ceil(len(work) / MAX_MAP_LENGTH)))
    base, longer = divmod(len(work), count)
    chunks: list[dict[str, Any]] = []
    start = 0
    for index in range(count):
        end = start + base + (index < longer)
        parts: list[dict[str, Any]] = []
        for uri, document_id in work[start:end]:
            if not parts or parts[-1]["batch"] != uri:
                parts.append({"batch": uri, "ids": []})
            parts[-1]["ids"].append(document_id)
        first = parts[0]["batch"].rstrip("/").rsplit("/", 1)[-1]
        label = f"{first} docs {start + 1}-{end}" + (" +" if len(parts) > 1 else "")
        chunks.append({"label": label, "parts": parts})
        start = end
    return chunks


def _resources() -> tuple[Any, Callable[[str], Any] | None]:
    """The library context and an S3 factory for batches, sharing one client from Airflow's connection.

    Without the connection the factory is ``None`` and both use the library's settings.
    """
    from digitize_airflow import pipeline_context, s3_client  # plugins/: shared by the DAGs

    from digitize.intake import client_s3

    client = s3_client()
    return pipeline_context(client), None if client is None else client_s3(client)


def _failure_callback(context: Any) -> None:
    from digitize.presentation.alerts import task_failure_callback

    task_failure_callback(context)


def _failure_callbacks() -> list[Any]:
    """The webhook, plus an e-mail through Airflow's SMTP settings when DIGITIZE_ALERT_EMAIL lists addresses."""
    emails = [a.strip() for a in (os.environ.get("DIGITIZE_ALERT_EMAIL") or "").split(",") if a.strip()]
    if not emails:
        return [_failure_callback]
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return [_failure_callback, SmtpNotifier(to=emails, subject="[digitize] {{ ti.dag_id }}.{{ ti.task_id }} failed")]


@dag(
    dag_id="digitize_backlog",
    description="Digitize an existing backlog (folder or S3 prefix) started from the UI form",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
                  "on_failure_callback": _failure_callbacks()},
    params={
        "source": Param("", type="string", minLength=1, title="Source",
                        description="Folder or s3://bucket/prefix/ holding a batch (with manifest.csv) or batches."),
        "agencies": Param("", type="string", title="Agencies",
                          description="Comma-separated agency codes to keep (empty: every agency)."),
        "issued_from": Param(None, type=["null", "string"], format="date", title="Issued from",
                             description="Keep documents issued on or after this date (empty: no limit)."),
        "issued_to": Param(None, type=["null", "string"], format="date", title="Issued to",
                           description="Keep documents issued on or before this date (empty: no limit)."),
        "max_documents": Param(0, type="integer", minimum=0, title="Maximum documents",
                               description="Process at most this many in this run (0: all); run again for the rest."),
        "priority": Param("normal", type="string", enum=list(PRIORITIES), title="Priority",
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
    @task
    def plan(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Read, filter and register the backlog's documents; cut what is left to do into chunks."""
        import dataclasses
        from datetime import date

        from digitize.errors import ManifestError
        from digitize.intake import find_batches, read_manifest
        from digitize.pipeline import register_batch

        assert params is not None
        agencies = {a.strip() for a in params["agencies"].split(",") if a.strip()}
        low = date.fromisoformat(params["issued_from"]) if params["issued_from"] else date.min
        high = date.fromisoformat(params["issued_to"]) if params["issued_to"] else date.max
        context, factory = _resources()
        batches = find_batches(params["source"], s3=factory)
        print(f"{len(batches)} batch(es) in {params['source']}")
        ctx = None if params["dry_run"] else context
        if ctx is not None:
            ctx.catalog.upgrade()
            ctx.archive.ensure_bucket()
        work: list[tuple[str, int]] = []
        selected = files = duplicates = rejected = refused_batches = 0
        for batch in batches:
            try:
                batch_plan = read_manifest(batch)
            except ManifestError as exc:
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
            work += [(batch.uri, doc_id) for doc_id in registered.to_process]
            print(f"batch {batch.name}: {len(docs)} selected, {len(registered.to_process)} to process")
        print(f"selected {selected} document(s) ({files} file(s)); {rejected} manifest row(s) refused; "
              f"{refused_batches} batch(es) refused" + (" — dry run: nothing registered" if ctx is None else ""))
        pending = len(work)
        if params["max_documents"]:
            work = work[: params["max_documents"]]
        chunks = cut_chunks(work, params["chunk_size"])
        return {"chunks": chunks, "priority": params["priority"],
                "meta": {"selected": selected, "files": files, "duplicates": duplicates, "rejected": rejected,
                         "refused_batches": refused_batches, "to_process": len(work),
                         "remaining": pending - len(work), "chunks": len(chunks), "dry_run": ctx is None}}

    def _worker() -> str:
        import socket

        return f"{os.environ.get('DIGITIZE_WORKER_NAME') or socket.gethostname()}:{os.getpid()}"

    def _run_chunk(chunk: dict[str, Any], stage: str) -> list[dict[str, Any]]:
        """Run one stage (``process``: every step; ``prepare``: up to the signature) over the chunk's documents."""
        from airflow.sdk import get_current_context

        from digitize.intake import open_batch
        from digitize.pipeline import prepare_document, process_document

        run_document = process_document if stage == "process" else prepare_document
        tag = "" if stage == "process" else f" ({stage})"
        get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[literal-required]
        ctx, factory = _resources()
        worker = _worker()
        outcomes = []
        for part in chunk["parts"]:
            source = open_batch(part["batch"], s3=factory)
            for document_id in part["ids"]:
                outcome = run_document(ctx, int(document_id), source)
                if outcome.status != "SKIPPED":  # who did the work: one event per processed document
                    ctx.catalog.add_event(int(document_id), "processing_worker", "success",
                                          detail=f"worker {worker}{tag}")
                print(f"document {document_id}: {outcome.status} {outcome.code or outcome.reason or ''} on {worker}")
                outcomes.append(outcome.as_dict())
        return outcomes

    @task
    def process_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """One chunk of one batch; a document failure quarantines it, a transient one retries the task."""
        from digitize_airflow import on_fresh_stack

        return on_fresh_stack(_run_chunk, chunk, "process")

    @task
    def prepare_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """OCR, code and archive the originals of a chunk, staging the rest for ``sign_chunk``."""
        from digitize_airflow import on_fresh_stack

        return on_fresh_stack(_run_chunk, chunk, "prepare")

    @task
    def sign_chunk(chunk: dict[str, Any], prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sign and archive what ``prepare_chunk`` staged; the others keep their outcome (e.g. quarantined)."""
        from airflow.sdk import get_current_context
        from digitize_airflow import on_fresh_stack

        from digitize.intake import open_batch
        from digitize.pipeline import finish_prepared

        get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[literal-required]
        ctx, factory = _resources()
        worker = _worker()
        batch_of = {int(i): part["batch"] for part in chunk["parts"] for i in part["ids"]}
        sources: dict[str, Any] = {}

        def finish_all() -> list[dict[str, Any]]:
            outcomes = []
            for row in prepared:
                uri = batch_of[int(row["document_id"])]
                if uri not in sources:  # only DIGITIZE_MOVE_DONE reads it (a local folder); nothing is fetched
                    sources[uri] = open_batch(uri, s3=factory)
                outcome = finish_prepared(ctx, row, sources[uri])
                if row["status"] == "PREPARED" and outcome.status != "SKIPPED":
                    ctx.catalog.add_event(outcome.document_id, "processing_worker", "success",
                                          detail=f"worker {worker} (sign)")
                print(f"document {outcome.document_id}: {outcome.status} {outcome.code or outcome.reason or ''} "
                      f"on {worker}")
                outcomes.append(outcome.as_dict())
            return outcomes

        return on_fresh_stack(finish_all)

    @task
    def chunks_for(planned: dict[str, Any], priority: str) -> list[dict[str, Any]]:
        """The chunks, for the process task of the priority chosen in the form (the others get none)."""
        return list(planned["chunks"]) if planned["priority"] == priority else []

    def prepare_and_sign(name: str, weight: int) -> Any:
        """The two-task chunk (one mapped group per priority): only the sign task goes to the signing queue."""
        @task_group(group_id=f"process_{name}")
        def stages(chunk: dict[str, Any]) -> Any:
            prepared = prepare_chunk.override(
                pool=OCR_POOL, pool_slots=OCR_SLOTS, priority_weight=weight, weight_rule="absolute",
                map_index_template="{{ chunk_label }}", execution_timeout=timedelta(hours=2))(chunk)
            return sign_chunk.override(
                queue=SIGNING_QUEUE, priority_weight=weight, weight_rule="absolute",
                map_index_template="{{ chunk_label }}", execution_timeout=timedelta(hours=1))(chunk, prepared)

        return stages

    planned = plan()
    results = []
    for name, weight in PRIORITIES.items():
        chunks = chunks_for.override(task_id=f"chunks_{name}")(planned, name)
        if SIGNING_QUEUE:
            results.append(prepare_and_sign(name, weight).expand(chunk=chunks))
            continue
        mapped = process_chunk.override(
            task_id=f"process_{name}", pool=OCR_POOL, pool_slots=OCR_SLOTS, priority_weight=weight,
            weight_rule="absolute", map_index_template="{{ chunk_label }}", execution_timeout=timedelta(hours=2))
        results.append(mapped.expand(chunk=chunks))

    @task(trigger_rule="all_done")
    def summarize(planned: dict[str, Any], low: Any = None, normal: Any = None, high: Any = None) -> dict[str, Any]:
        """The per-run summary IT operators read: counts, reasons, pace, slowest stage, time to finish."""
        from airflow.sdk import get_current_context

        from digitize.pipeline import summarize as summarize_outcomes

        meta = planned["meta"]
        flat = [o for outs in (low, normal, high) for chunk in (outs or []) if chunk for o in chunk]
        run = get_current_context()["dag_run"]
        seconds = (pendulum.now("UTC") - (run.start_date or pendulum.now("UTC"))).total_seconds()
        summary = summarize_outcomes(flat, duplicates=meta["duplicates"], rejected_rows=meta["rejected"],
                                     seconds=seconds, remaining=meta["remaining"])
        lines = ([f"dry run: {meta['selected']} document(s), {meta['files']} file(s) would be processed"]
                 if meta["dry_run"] else summary.lines())
        for line in lines:
            print(line)
        return {"text": "\n".join(lines), "archived": summary.archived, "quarantined": summary.quarantined,
                "skipped": summary.skipped, "pages": summary.pages, "seconds": round(seconds, 1),
                "pages_per_minute": round(summary.pages_per_minute, 1), "slowest_stage": summary.slowest_stage,
                "remaining": summary.remaining, "eta_seconds": summary.eta_seconds, **meta}

    summary = summarize(planned, *results)

    @task(templates_dict={"summary": "{{ ti.xcom_pull(task_ids='summarize')['text'] }}"})
    def report(templates_dict: dict[str, Any] | None = None) -> None:
        """Shows the summary in the UI (Rendered Templates) for operators who do not read logs."""
        print((templates_dict or {}).get("summary", ""))

    summary >> report()


digitize_backlog()
