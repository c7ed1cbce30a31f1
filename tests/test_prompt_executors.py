"""The executors of plugins/prompt_local.py and prompt_celery.py (the wait: plugins/prompt_executors.py) end the
scheduler's idle wait when a task ends, and only wait when a heartbeat sent nothing out. Real LocalExecutor queues
and a real Celery result backend (Celery's database backend, on SQLite); the whole cluster runs them in
tests/test_cluster.py.

The waits are set long (30 s) where the point is that they end early, so a slow machine cannot pass or fail
them by timing alone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import sys
import threading
import time
from multiprocessing import SimpleQueue
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins"))

import prompt_celery  # noqa: E402  (plugins/ is Airflow's plugins folder, not a package)
import prompt_executors  # noqa: E402
import prompt_local  # noqa: E402


def _key(task_id: str) -> Any:
    from airflow.models.taskinstancekey import TaskInstanceKey

    return TaskInstanceKey("digitize_backlog", task_id, "run", 1, -1)


@pytest.fixture
def local() -> Any:
    """The project's LocalExecutor with its queues, without forking its workers (nothing is sent to them here)."""
    executor = prompt_local.LocalExecutor(parallelism=2)
    executor.activity_queue, executor.result_queue, executor.workers = SimpleQueue(), SimpleQueue(), {}
    executor._unread_messages = multiprocessing.Value(ctypes.c_uint)
    return executor


def _later(seconds: float, action: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_a_task_ending_wakes_the_local_executors_wait(local: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setattr(prompt_executors, "IDLE_WAIT", 30.0)
    key = _key("process")
    local.running.add(key)
    _later(0.2, lambda: local.result_queue.put((key, TaskInstanceState.SUCCESS, None)))
    started = time.monotonic()
    local.heartbeat()
    assert time.monotonic() - started < 15, "waited for the whole idle wait, not for the task's end"
    assert key not in local.running and local.event_buffer[key][0] == TaskInstanceState.SUCCESS


def test_an_idle_local_executor_waits_in_the_schedulers_place(local: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing running, nothing to send: the heartbeat takes the idle wait (airflow.cfg sets the scheduler's own
    sleep to 0, so this is what keeps an idle scheduler at one pass a second)."""
    monkeypatch.setattr(prompt_executors, "IDLE_WAIT", 0.3)
    started = time.monotonic()
    local.heartbeat()
    assert time.monotonic() - started >= 0.3


def test_a_heartbeat_that_sends_a_task_does_not_wait(local: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler has just queued work: its next pass comes at once, as Airflow's own loop does then."""
    monkeypatch.setattr(prompt_executors, "IDLE_WAIT", 30.0)
    key = _key("summarize")
    monkeypatch.setattr(local, "_check_workers", lambda: None)  # no worker forked: the workload stays queued
    local.queued_tasks[key] = SimpleNamespace(key=key, ti=SimpleNamespace(priority_weight=1))
    started = time.monotonic()
    local.heartbeat()
    assert time.monotonic() - started < 15
    assert local.activity_queue.get().key == key and not local.queued_tasks  # sent to the workers' queue


def test_a_task_ending_wakes_the_celery_executors_wait(tmp_path: Path) -> None:
    """Celery's database result backend on SQLite: the executor asks it as it asks Redis in the cluster."""
    from airflow.providers.celery.executors.celery_executor_utils import BulkStateFetcher
    from celery import Celery
    from celery.result import AsyncResult

    app = Celery("prompt-test", backend=f"db+sqlite:///{tmp_path / 'results.db'}", broker="memory://")
    executor = prompt_celery.CeleryExecutor()
    executor.bulk_state_fetcher = BulkStateFetcher(1, celery_app=app)
    executor.workloads[_key("process")] = AsyncResult("celery-task-1", app=app)
    _later(0.3, lambda: app.backend.store_result("celery-task-1", None, "SUCCESS"))
    started = time.monotonic()
    executor.wait_for_task_end(30.0)
    assert time.monotonic() - started < 15, "waited for the whole idle wait, not for the task's end"
    assert executor.bulk_state_fetcher.get_many(executor.workloads.values())["celery-task-1"][0] == "SUCCESS"
