"""plugins/digitize_airflow.py: the S3 client every task builds from the ``digitize_s3`` connection, and the
thread chunk tasks run their documents on."""

from __future__ import annotations

import inspect
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))

import digitize_airflow


def _connection(monkeypatch: pytest.MonkeyPatch, s3_server: str, **extra: Any) -> None:
    """``digitize_s3`` as scripts/cluster.sh sets it (an environment variable), plus ``extra``."""
    monkeypatch.setenv("AIRFLOW_CONN_DIGITIZE_S3", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_server, "region_name": "us-east-1", **extra}}))


def test_a_plain_connection_gives_the_librarys_client_that_reaches_the_endpoint(
        monkeypatch: pytest.MonkeyPatch, s3_server: str) -> None:
    _connection(monkeypatch, s3_server)
    client = digitize_airflow.s3_client()
    assert client.meta.endpoint_url == s3_server
    assert client.meta.config.s3["addressing_style"] == "path"  # what MinIO needs
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    bucket = f"plugin-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_other_connection_features_go_through_the_providers_hook(monkeypatch: pytest.MonkeyPatch,
                                                                 s3_server: str) -> None:
    _connection(monkeypatch, s3_server, config_kwargs={"read_timeout": 7})  # the hook's, not the library's
    assert digitize_airflow.s3_client().meta.config.read_timeout == 7


def test_no_connection_means_the_librarys_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DIGITIZE_S3", raising=False)
    assert digitize_airflow.s3_client() is None


def _at_depth(frames: int, work: Any) -> Any:
    """``work()`` called ``frames`` Python frames deeper than here, like a task's code in Airflow's runner."""
    return work() if frames == 0 else _at_depth(frames - 1, work)


def test_chunk_work_runs_on_its_own_shallow_stack_whatever_the_callers_depth() -> None:
    def work(first: int, *, second: int) -> tuple[int, int, str]:
        return first + second, len(inspect.stack()), threading.current_thread().name

    total, depth, thread = _at_depth(60, lambda: digitize_airflow.on_fresh_stack(work, 2, second=3))
    assert total == 5
    assert depth < 10, "the documents would run as deep as the task runner's frames"
    assert thread != threading.main_thread().name


def test_a_failure_on_the_chunk_thread_is_raised_in_the_task_with_its_own_traceback() -> None:
    class TransientError(RuntimeError):
        pass

    def work() -> None:
        raise TransientError("S3 unreachable")  # what makes Airflow retry the task

    with pytest.raises(TransientError, match="S3 unreachable") as caught:
        digitize_airflow.on_fresh_stack(work)
    assert caught.traceback[-1].name == "work"


def test_a_task_timeout_interrupts_the_wait_without_waiting_for_the_document() -> None:
    """Airflow's execution_timeout is a SIGALRM raising in the main thread, which is the one waiting here."""
    import signal
    import time

    class TaskTimeout(Exception):
        pass

    def on_alarm(signum: int, frame: Any) -> None:
        raise TaskTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(TaskTimeout):
            digitize_airflow.on_fresh_stack(time.sleep, 30)  # a document that takes far too long
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10
