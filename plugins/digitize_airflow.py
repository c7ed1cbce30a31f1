"""What every DAG of this project needs from Airflow itself, in one place.

Airflow puts ``[core] plugins_folder`` on ``sys.path`` in all its processes, so
the DAGs import this module at top level: it imports nothing but the standard
library there (parsing stays cheap), and the library and Airflow's own modules
only inside its functions. It holds no AirflowPlugin: the library stays free of
Airflow and this is the only bridge between the two. Settings are read when a
DAG is parsed, never at import (a process imports this module once but parses
its DAGs many times).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeVar

T = TypeVar("T")

S3_CONN_ID = "digitize_s3"
OCR_POOL = "ocr"
"""The pool every OCR task draws from: one slot per core of the workers."""
DUPLICATES_NAMED = 200
"""How many duplicates a run's XCom names (the count is always whole): XCom holds small records only."""
BACKLOG_DAG_ID = "digitize_backlog"
BACKLOG_PRIORITIES = {"low": 1, "normal": 5, "high": 20}
"""``priority_weight`` of a backlog run's tasks per choice of its form; digitize_inbox's chunks run at 10."""
RUN_KEY = "run"
"""XCom key of what the planning task knows besides the chunks (counts, stacks, duplicates): the chunks are its
return value, so that the chunk task maps over it directly (Airflow maps only over a whole return value)."""


def backlog_priority(conf: dict[str, Any] | None) -> int | None:
    """The weight a backlog run's form asked for (``priority``), or ``None`` (no such choice: keep the DAG's)."""
    return BACKLOG_PRIORITIES.get(str((conf or {}).get("priority")))


def return_chunks(planned: dict[str, Any]) -> list[dict[str, Any]]:
    """A planning task's result: the chunks, returned for the chunk task to map over; the rest under :data:`RUN_KEY`.

    One task fewer between the plan and the chunks: each costs ~0.3 s of task start, and with Airflow's own
    executors ~0.5 s of the scheduler's idle sleep (bench/results/airflow.md).
    """
    from airflow.sdk import get_current_context

    get_current_context()["ti"].xcom_push(key=RUN_KEY, value={k: v for k, v in planned.items() if k != "chunks"})
    return list(planned["chunks"])


def planned_run(task_id: str) -> dict[str, Any] | None:
    """What the planning task ``task_id`` pushed under :data:`RUN_KEY` (``None`` if it failed before)."""
    from airflow.sdk import get_current_context

    found = get_current_context()["ti"].xcom_pull(task_ids=task_id, key=RUN_KEY)
    return found if isinstance(found, dict) else None


def ocr_slots() -> int:
    """Tesseract processes per chunk task, which is also the ``ocr`` pool slots the task takes.

    ``DIGITIZE_OCR_JOBS`` (default: the cores), at most the cores: the pool has one slot per core, and
    :func:`pipeline_context` gives the library this same number, so a task never runs more Tesseract
    processes than it holds slots.
    """
    cores = os.cpu_count() or 1
    return max(1, min(int(os.environ.get("DIGITIZE_OCR_JOBS") or cores), cores))


def chunks_at_once() -> int:
    """Chunk tasks that run side by side on a machine like this one: its cores (the ``ocr`` pool has one slot per
    core) ÷ :func:`ocr_slots`. The plans cut their chunks in waves of that many (:func:`digitize.pipeline.cut_chunks`);
    on a cluster of several such workers more run at once, and the waves still get lighter one after another.
    """
    return max(1, (os.cpu_count() or 1) // ocr_slots())


def signing_queue() -> str | None:
    """``DIGITIZE_SIGNING_QUEUE``: when set, chunks split into prepare (any worker) and sign (that queue only)."""
    return os.environ.get("DIGITIZE_SIGNING_QUEUE") or None


def _failure_callback(context: Any) -> None:
    from digitize.presentation.alerts import task_failure_callback

    task_failure_callback(context)


def failure_callbacks() -> list[Any]:
    """The webhook, plus an e-mail through Airflow's SMTP settings when DIGITIZE_ALERT_EMAIL lists addresses."""
    emails = [a.strip() for a in (os.environ.get("DIGITIZE_ALERT_EMAIL") or "").split(",") if a.strip()]
    if not emails:
        return [_failure_callback]
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return [_failure_callback, SmtpNotifier(to=emails, subject="[digitize] {{ ti.dag_id }}.{{ ti.task_id }} failed")]


def default_args() -> dict[str, Any]:
    """Retries with back-off for transient failures (S3, TSA, catalog lock), and the failure alerts."""
    return {"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
            "on_failure_callback": failure_callbacks()}


def deadline() -> Any:
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


PLAIN_EXTRAS = frozenset({"endpoint_url", "region_name"})
"""Connection extras the library's own client understands; anything else goes through the provider's hook."""


def s3_client() -> Any | None:
    """boto3 S3 client from the ``digitize_s3`` connection, or ``None`` when it is not defined.

    A key, secret, endpoint and region (MinIO, the demo, most deployments) make the library's own
    client: path-style addressing, retries and timeouts as everywhere else, and about a tenth of
    the Amazon provider's hook start-up (0.3 s of CPU in every task). A connection with anything
    more (a role to assume, a profile…) still goes through the hook.
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(S3_CONN_ID)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson
    if set(extra) <= PLAIN_EXTRAS:
        from digitize.archive import make_s3_client

        region = extra.get("region_name") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        keys = (conn.login, conn.password or "") if conn.login else None
        return make_s3_client(extra.get("endpoint_url"), region=region, credentials=keys)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=S3_CONN_ID).get_conn()


def pipeline_context(client: Any | None = None) -> Any:
    """Library context whose S3 archive uses the Airflow connection when it exists, else the environment.

    A folder archive (``DIGITIZE_ARCHIVE_URL=file://…``, ``make airflow``'s default) needs no connection:
    the library opens it. ``client``: the connection's S3 client when the caller already built one
    (building one costs about 0.2 s of CPU, a noticeable share of a short task). OCR runs
    :func:`ocr_slots` processes.
    """
    import dataclasses

    from digitize.archive import ArchiveOptions, S3Archive
    from digitize.config import load_settings
    from digitize.pipeline import PipelineContext

    settings = dataclasses.replace(load_settings(), ocr_jobs=ocr_slots())
    if settings.archive_folder is not None:
        return PipelineContext(settings)
    client = client or s3_client()
    if client is None:
        return PipelineContext(settings)
    return PipelineContext(settings, archive=S3Archive(client, settings.s3_bucket, ArchiveOptions.from_env()))


def pipeline_resources() -> tuple[Any, Callable[[str], Any] | None]:
    """The library context and an S3 factory for batches, sharing one client from Airflow's connection.

    Without the connection the factory is ``None`` and both use the library's settings.
    """
    from digitize.intake import client_s3

    client = s3_client()
    return pipeline_context(client), None if client is None else client_s3(client)


def worker_name() -> str:
    """This task's worker, for the ``processing_worker`` events: ``DIGITIZE_WORKER_NAME`` or the host, and the PID."""
    import socket

    return f"{os.environ.get('DIGITIZE_WORKER_NAME') or socket.gethostname()}:{os.getpid()}"


def chunk_tasks(*, task_id: str, group_id: str, priority: int) -> Any:
    """The mapped task that runs one chunk (expand it with ``chunk=`` over :func:`digitize.pipeline.cut_chunks`'
    chunks), as both DAGs build it.

    It takes :func:`ocr_slots` ``ocr`` pool slots at ``priority``, labelled by the chunk's ``label``. With
    a signing queue (:func:`signing_queue`) it is instead the task group ``group_id``: ``prepare_chunk``
    (OCR, code, originals; any worker, ``ocr`` pool), then ``sign_chunk`` (sign and archive; that queue
    only, no ``ocr`` slots). What passes between them is staged in the archive bucket, never on local disk.
    """
    from airflow.sdk import task, task_group

    labelled: dict[str, Any] = {"map_index_template": "{{ chunk_label }}", "priority_weight": priority,
                                "weight_rule": "absolute"}
    ocr: dict[str, Any] = {"pool": OCR_POOL, "pool_slots": ocr_slots(), "execution_timeout": timedelta(hours=2),
                           **labelled}
    queue = signing_queue()
    if queue is None:
        @task(task_id=task_id, **ocr)
        def process_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
            """Process a chunk; a document failure quarantines that document, a transient one retries the task."""
            return on_fresh_stack(_run_chunk, chunk, "process")

        return process_chunk

    @task(**ocr)
    def prepare_chunk(chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """OCR, code and archive the originals of a chunk, staging the rest for ``sign_chunk``."""
        return on_fresh_stack(_run_chunk, chunk, "prepare")

    @task(queue=queue, execution_timeout=timedelta(hours=1), **labelled)
    def sign_chunk(chunk: dict[str, Any], prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sign and archive what ``prepare_chunk`` staged; the others keep their outcome (e.g. quarantined)."""
        return on_fresh_stack(_run_chunk, chunk, "sign", prepared)

    @task_group(group_id=group_id)
    def prepare_and_sign(chunk: dict[str, Any]) -> Any:
        """A mapped group: each chunk is signed as soon as its own prepare is done, not after every chunk's."""
        return sign_chunk(chunk, prepare_chunk(chunk))

    return prepare_and_sign


def _run_chunk(chunk: dict[str, Any], stage: Literal["process", "prepare", "sign"],
               prepared: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One chunk task's work: label the task instance, open the chunk's batches, run the library's stage."""
    from airflow.sdk import get_current_context

    from digitize.pipeline import DocumentOutcome, finish_chunk, open_chunk, run_chunk

    get_current_context()["chunk_label"] = chunk["label"]  # type: ignore[typeddict-unknown-key]
    ctx, s3 = pipeline_resources()
    items = open_chunk(chunk, s3=s3)
    worker = worker_name()

    def show(outcome: DocumentOutcome) -> None:
        print(f"document {outcome.document_id}: {outcome.status} {outcome.code or outcome.reason or ''} on {worker}")

    if stage == "sign":
        return finish_chunk(ctx, items, prepared or [], worker=worker, on_done=show)
    return run_chunk(ctx, items, stage, worker=worker, on_done=show)


def split_stacks(batch_uris: Sequence[str]) -> dict[str, Any]:
    """Cut each stack batch at its cover sheets (no OCR) and register its documents (the inbox's ``split``
    task, the backlog's ``plan``).

    The stacks are read once, here; what each document's chunk needs is staged in the archive bucket. Returns
    the (batch uri, document id) pairs to process, the duplicates, the batches refused (``STACK_NO_UNIT``)
    and a small report per stack for the run's summary (no personal data).
    """
    from digitize.intake import open_batch
    from digitize.pipeline import split_stack_batch

    ctx, s3 = pipeline_resources()
    if batch_uris:
        ctx.catalog.upgrade()
        ctx.archive.ensure_bucket()
    work: list[list[Any]] = []
    stacks: list[dict[str, Any]] = []
    items: list[list[str]] = []
    refused = 0
    for uri in batch_uris:
        split = split_stack_batch(ctx, open_batch(uri, s3=s3))
        if split.refused is not None:
            print(f"stack batch {split.batch_id} refused: [{split.refused[0]}] {split.refused[1]}")
            refused += 1
            continue
        for stack in split.stacks:
            print(f"stack {split.batch_id}/{stack.name}: {stack.pages} page(s), {len(stack.sheets)} sheet(s), "
                  f"{len(stack.documents)} document(s), faults {[f.reason for f in stack.faults]}")
            stacks.append(stack.as_dict())
        work += [[uri, document_id] for document_id in split.to_process]
        items += [list(d.named(split.batch_id)) for d in split.duplicates]
    return {"work": work, "stacks": stacks, "duplicates": len(items), "duplicate_items": items[:DUPLICATES_NAMED],
            "refused": refused}


def run_summary(results: Iterable[Any], chunks: Iterable[dict[str, Any]], *,
                duplicates: int, rejected_rows: int, remaining: int = 0,
                duplicate_items: Iterable[Sequence[str]] = (), stacks: Sequence[dict[str, Any]] = ()) -> Any:
    """The run's summary from its mapped chunk tasks' results (a list of outcome lists each, ``None`` when none).

    Timed from the DAG run's start, so the figures include scheduling, not only the documents. The run's
    documents (those of ``chunks``) still RECEIVED at the end are its ``unfinished`` ones.
    """
    import pendulum
    from airflow.sdk import get_current_context

    from digitize.catalog import Catalog
    from digitize.config import load_settings
    from digitize.pipeline import chunk_pairs, stack_summaries, summarize, unfinished_documents

    outcomes = [o for result in results for chunk in _each(result) if chunk for o in chunk]
    ids = [document_id for chunk in chunks for _, document_id in chunk_pairs(chunk)]
    catalog = Catalog(load_settings().catalog_url)
    unfinished = unfinished_documents(catalog, ids) if ids else ()
    started = get_current_context()["dag_run"].start_date or pendulum.now("UTC")
    seconds = (pendulum.now("UTC") - started).total_seconds()
    return summarize(outcomes, duplicates=duplicates, rejected_rows=rejected_rows, seconds=seconds,
                     remaining=remaining, unfinished=unfinished, duplicate_items=duplicate_items,
                     stacks=stack_summaries(catalog, stacks) if stacks else ())


def _each(results: Any) -> list[Any]:
    """The items of a mapped task's results, read by index.

    Iterating Airflow's lazy XCom sequence asks for one item past the end and logs that 404 as an
    ``[error] XCom not found`` in every run's summary log; its length and indexes do not.
    """
    if results is None:
        return []
    try:
        count = len(results)
    except TypeError:
        return list(results)
    return [results[i] for i in range(count)]


def fail_without_plan(planned: dict[str, Any] | None) -> None:
    """Fail the summary of a run whose planning task failed, at once and saying so: there is nothing to sum up.

    ``summarize`` runs whatever its upstream did (to sum up failed chunks); without this it failed over the
    missing plan with a TypeError and was retried for minutes. Skipping it instead would end the run green
    (Airflow judges a run by its last tasks).
    """
    from airflow.sdk.exceptions import AirflowFailException

    if planned is None:
        raise AirflowFailException("nothing was planned: the task that failed before this one says why")


def summary_task(summary: Any) -> Any:
    """``summary`` (the summarizing task's XComArg) shows what :func:`publish_summary` wrote in its *Rendered
    Templates* tab, for operators who do not read logs: Airflow re-sends the task's template fields after it ran."""
    summary.operator.overwrite_rtif_after_execution = True
    return summary


def publish_summary(lines: Sequence[str], xcom: dict[str, Any], unfinished: Sequence[int]) -> dict[str, Any]:
    """Print the summary to the task log, show it in the task's *Rendered Templates* (:func:`summary_task`) and
    return it for XCom; a run that left documents unfinished fails here.

    Their chunk task failed past its retries, but the summary (which runs whatever its upstream did)
    would otherwise end the run green. The summary is pushed to XCom first, so it still reads there.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    for line in lines:
        print(line)
    get_current_context()["task"].templates_dict = {"summary": "\n".join(lines)}  # type: ignore[attr-defined]
    if unfinished:
        get_current_context()["ti"].xcom_push(key="return_value", value=xcom)
        raise AirflowFailException(f"{len(unfinished)} document(s) of this run are still RECEIVED: "
                                   f"{', '.join(map(str, unfinished[:20]))}")
    return xcom


def on_fresh_stack(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)`` on a new thread, waited for: its result, or its exception re-raised here.

    A task's code runs nearly 50 Python frames deep in Airflow's task runner. CPython 3.11 keeps
    frames in 16 KiB chunks and unmaps a chunk as soon as the stack falls back below it; at that
    depth a chunk boundary fell inside the signing code's recursion (asn1crypto), so every document
    mapped, faulted and unmapped ~3,300 pages: +25 ms of system time per document, and a worker
    spent 1.20× the library's CPU per page (about 1.0× since; bench/results/airflow.md). A new thread
    starts on an empty frame stack, as the library's own processes do. Daemonic, so a task killed or
    timed out (the signal lands on the main thread, which waits here) does not wait for the document
    in hand to finish.
    """
    import contextvars
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work(*args, **kwargs)))
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            outcome.append((False, exc))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="digitize-work", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
