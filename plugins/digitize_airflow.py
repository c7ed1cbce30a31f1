"""What every DAG of this project needs from Airflow itself, in one place.

Airflow puts ``[core] plugins_folder`` on ``sys.path`` in all its processes, so
the DAGs import this module *inside their tasks* (never at top level: parsing
stays cheap). It holds no AirflowPlugin: the library stays free of Airflow and
this is the only bridge between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

S3_CONN_ID = "digitize_s3"


PLAIN_EXTRAS = frozenset({"endpoint_url", "region_name"})
"""Connection extras the library's own client understands; anything else goes through the provider's hook."""


def s3_client() -> Any | None:
    """boto3 S3 client from the ``digitize_s3`` connection, or ``None`` when it is not defined.

    A key, secret, endpoint and region (MinIO, the demo, most deployments) make the library's own
    client: path-style addressing, retries and timeouts as everywhere else, and about a tenth of
    the Amazon provider's hook start-up (0.3 s of CPU in every task). A connection with anything
    more (a role to assume, a profile…) still goes through the hook.
    """
    import os

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
    """Library context whose archive uses the Airflow connection when it exists, else the environment.

    ``client``: the connection's S3 client when the caller already built one (building one costs
    about 0.2 s of CPU, a noticeable share of a short task).
    """
    from digitize.archive import ArchiveOptions, S3Archive
    from digitize.config import load_settings
    from digitize.pipeline import PipelineContext

    settings = load_settings()
    client = client or s3_client()
    if client is None:
        return PipelineContext(settings)
    return PipelineContext(settings, archive=S3Archive(client, settings.s3_bucket, ArchiveOptions.from_env()))


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
