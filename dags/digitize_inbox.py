"""digitize_inbox: complete batches in the inbox → signed, archived, catalogued documents.

Wiring only: every step calls the ``digitize`` library, imported inside the
tasks so the DAG file parses in milliseconds. Documents are processed in
mapped chunks (never one task per page), each chunk holding as many ``ocr``
pool slots as it runs Tesseract processes. Only ids, keys and counts travel
through XCom: no file contents and no personal data.

With ``DIGITIZE_SIGNING_QUEUE`` set (the signing key sits on one machine: a
hardware token or a network HSM), each chunk is two tasks in the mapped group
``chunk``: ``prepare_chunk`` (OCR, code, originals archived; any worker, ``ocr``
pool) and ``sign_chunk`` (sign and archive; that queue only, no ``ocr`` slots).
What passes between them is staged in the archive bucket, never on local disk.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, dag, task, task_group

CATALOG_ASSET = Asset("digitize-catalog", uri="file:///digitize/catalog")
OCR_POOL = "ocr"
# Tesseract processes per chunk task = pool slots it takes (the pool has one slot per core).
OCR_SLOTS = max(1, min(int(os.environ.get("DIGITIZE_OCR_JOBS") or os.cpu_count() or 1), os.cpu_count() or 1))
MAX_MAP_LENGTH = 1024
# Set: chunks split into prepare (any worker) and sign (the token holder's Celery queue only).
SIGNING_QUEUE = os.environ.get("DIGITIZE_SIGNING_QUEUE") or None
# Above a normal backlog (5), below a high-priority one (20): see digitize_backlog.
INBOX_PRIORITY = 10


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


def _deadline() -> Any:
    """Alert when a run is still going DIGITIZE_DEADLINE_MINUTES past the average of the last 10 runs.

    Off when unset: ``dag.test()`` in Airflow 3.3.2 cannot finish a run of a DAG with a deadline (it looks
    the alerts up by the serialized dicts instead of their ids), so tests run without it; cluster.sh sets 30.
    """
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    minutes = int(os.environ.get("DIGITIZE_DEADLINE_MINUTES") or 0)
    if minutes <= 0:
        return None
    return DeadlineAlert(reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=10, min_runs=3),
                         interval=timedelta(minutes=minutes),
                         callback=AsyncCallback("digitize.presentation.alerts.deadline_missed"))


def _context() -> Any:
    from digitize_airflow import pipeline_context  # plugins/: shared by the DAGs

    return pipeline_context()


@dag(
    dag_id="digitize_inbox",
    description="OCR, code, sign and archive the complete batches of the inbox",
    schedule=timedelta(minutes=15),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Ho_Chi_Minh"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
                  "on_failure_callback": _failure_callbacks()},
    deadline=_deadline(),
    params={
        "inbox": Param(os.path.join("${AIRFLOW_HOME}", "var", "inbox"), type="string",
                       description="Folder whose sub-folders are batches (scans + manifest.csv)."),
        "batch": Param("", type="string", description="Only this batch folder name (empty: every complete batch)."),
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
        """Complete batches only: a half-copied upload is never read as truncated files."""
        from pathlib import Path

        from digitize.config import load_settings
        from digitize.intake import discover_batches

        assert params is not None
        inbox = Path(os.path.expandvars(params["inbox"]))
        batches = discover_batches(inbox, quiet_seconds=load_settings().quiet_seconds)
        if params["batch"]:
            batches = [b for b in batches if b.name == params["batch"]]
        print(f"{len(batches)} complete batch(es) in {inbox}: {[b.name for b in batches]}")
        return [str(b) for b in batches]

    @task
    def register(batch_dirs: list[str], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Hash and register every original (idempotent), then cut the work into chunks."""
        import math
        from pathlib import Path

        from digitize.errors import ManifestError
        from digitize.intake import read_manifest
        from digitize.pipeline import register_batch

        assert params is not None
        ctx = _context()
        ctx.catalog.upgrade()
        ctx.archive.ensure_bucket()
        work: list[tuple[str, int]] = []
        duplicates = rejected = 0
        for batch_dir in batch_dirs:
            try:
                plan = read_manifest(Path(batch_dir))
            except ManifestError as exc:
                ctx.catalog.add_event(None, "manifest_validation", "failure", batch_id=Path(batch_dir).name,
                                      detail=str(exc))
                print(f"batch {Path(batch_dir).name} refused: {exc} — {exc.hint}")
                rejected += 1
                continue
            registered = register_batch(ctx.catalog, plan)
            duplicates += len(registered.duplicates)
            rejected += len(registered.rejected)
            work += [(batch_dir, doc_id) for doc_id in registered.to_process]
            print(f"batch {plan.batch_id}: {len(registered.to_process)} to process, "
                  f"{len(registered.duplicates)} duplicate(s), {len(registered.rejected)} row(s) refused")
        if params["max_documents"]:
            work = work[: params["max_documents"]]
        size = max(params["chunk_size"], math.ceil(len(work) / MAX_MAP_LENGTH))
        chunks = [
            {"label": f"{Path(work[i][0]).name} docs {i + 1}-{min(i + size, len(work))}",
             "items": [[b, d] for b, d in work[i: i + size]]}
            for i in range(0, len(work), size)
        ]
        return {"chunks": chunks, "duplicates": duplicates, "rejected": rejected}

    @task
    def chunks_of(registered: dict[str, Any]) -> list[dict[str, Any]]:
        return list(registered["chunks"])

    def _run_chunk(chunk: dict[str, Any], stage: str) -> list[dict[str, Any]]:
        """Run one stage (``process``: every step; ``prepare``: up to the signature) over the chunk's documents."""
        from pathlib import Path

        from airflow.sdk import get_current_context

        from digitize.pipeline import prepare_document, process_document

        run_document = process_document if stage == "process" else prepare_document
        get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[literal-required]
        ctx = _context()
        outcomes = []
        for batch_dir, document_id in chunk["items"]:
            outcome = run_document(ctx, int(document_id), Path(batch_dir))
            print(f"document {document_id}: {outcome.status} {outcome.code or outcome.reason or ''}")
            outcomes.append(outcome.as_dict())
        return outcomes

    @task(pool=OCR_POOL, pool_slots=OCR_SLOTS, map_index_template="{{ chunk_label }}",
          execution_timeout=timedelta(hours=2), priority_weight=INBOX_PRIORITY, weight_rule="absolute")
    def process_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Process a chunk; a document failure quarantines that document, a transient one retries the task."""
        from digitize_airflow import on_fresh_stack

        return on_fresh_stack(_run_chunk, chunk, "process")

    @task(pool=OCR_POOL, pool_slots=OCR_SLOTS, map_index_template="{{ chunk_label }}",
          execution_timeout=timedelta(hours=2), priority_weight=INBOX_PRIORITY, weight_rule="absolute")
    def prepare_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """OCR, code and archive the originals of a chunk, staging the rest for ``sign_chunk``."""
        from digitize_airflow import on_fresh_stack

        return on_fresh_stack(_run_chunk, chunk, "prepare")

    @task(map_index_template="{{ chunk_label }}", execution_timeout=timedelta(hours=1),
          priority_weight=INBOX_PRIORITY, weight_rule="absolute", **({"queue": SIGNING_QUEUE} if SIGNING_QUEUE else {}))
    def sign_chunk(chunk: dict[str, Any], prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sign and archive what ``prepare_chunk`` staged; the others keep their outcome (e.g. quarantined)."""
        from pathlib import Path

        from airflow.sdk import get_current_context
        from digitize_airflow import on_fresh_stack

        from digitize.pipeline import finish_prepared

        get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[literal-required]
        ctx = _context()
        batches = {int(document_id): Path(batch_dir) for batch_dir, document_id in chunk["items"]}

        def finish_all() -> list[dict[str, Any]]:
            outcomes = []
            for row in prepared:
                outcome = finish_prepared(ctx, row, batches[int(row["document_id"])])
                print(f"document {outcome.document_id}: {outcome.status} {outcome.code or outcome.reason or ''}")
                outcomes.append(outcome.as_dict())
            return outcomes

        return on_fresh_stack(finish_all)

    @task_group(group_id="chunk")
    def prepare_and_sign(chunk: dict[str, Any]) -> Any:
        """A mapped group: each chunk is signed as soon as its own prepare is done, not after every chunk's."""
        return sign_chunk(chunk, prepare_chunk(chunk))

    @task(outlets=[CATALOG_ASSET], trigger_rule="all_done")
    def summarize(registered: dict[str, Any], outcomes: list[list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        """The per-run summary IT staff read in the task log and XCom."""
        from airflow.sdk import get_current_context

        from digitize.pipeline import summarize as summarize_outcomes

        flat = [o for chunk in (outcomes or []) if chunk for o in chunk]
        run = get_current_context()["dag_run"]
        started = run.start_date or pendulum.now("UTC")
        seconds = (pendulum.now("UTC") - started).total_seconds()
        summary = summarize_outcomes(flat, duplicates=registered["duplicates"], rejected_rows=registered["rejected"],
                                     seconds=seconds)
        for line in summary.lines():
            print(line)
        return {"archived": summary.archived, "quarantined": summary.quarantined, "skipped": summary.skipped,
                "duplicates": summary.duplicates, "rejected_rows": summary.rejected_rows, "pages": summary.pages,
                "pages_per_minute": round(summary.pages_per_minute, 1), "slowest_stage": summary.slowest_stage}

    registered = register(discover())
    chunks = chunks_of(registered)
    results = (prepare_and_sign if SIGNING_QUEUE else process_chunk).expand(chunk=chunks)
    summarize(registered, results)


digitize_inbox()
