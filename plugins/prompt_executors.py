"""Airflow's Local and Celery executors, waking the scheduler as soon as a task ends.

The scheduler's loop sleeps ``[scheduler] scheduler_idle_sleep_time`` (1 s by default) after a pass that
found nothing to do, without looking at the executor meanwhile: a task that ends waits half a second on
average, up to a whole one, before its downstream task is scheduled or the next chunk takes its pool slot.
A backlog run has about five such steps in series (plan, the chunk waves, summarize, the run's end): with
Airflow's LocalExecutor each successor was queued 0.27–0.96 s after its predecessor's end, with these 0.06–0.16 s
(``bench/airflow_overhead.py --executor-ab 40``, bench/results/airflow.md).

These executors do that waiting themselves, in ``sync``, where they see a task end: LocalExecutor on the
pipe its workers report on, CeleryExecutor by asking the result backend every 0.1 s while tasks run (one
MGET of their keys). They wait only after a heartbeat that sent no task out, and at most
:data:`IDLE_WAIT`. With ``scheduler_idle_sleep_time = 0`` (airflow.cfg, scripts/cluster.sh) they replace
the scheduler's sleep: an idle scheduler still passes about once a second, so it costs the same CPU as
before, and a task's end starts the next pass at once. With the default 1 s sleep they still end half of
the waits early, but an idle pass then comes every 2 s.
"""

from __future__ import annotations

import time

from airflow.executors.local_executor import LocalExecutor
from airflow.providers.celery.executors.celery_executor import CeleryExecutor
from celery import states as celery_states

IDLE_WAIT = 1.0
"""Seconds an idle scheduler waits for a task to end before its next pass: Airflow's default idle sleep."""
CELERY_POLL = 0.1
"""Seconds between two looks at the Celery result backend while waiting."""


class _WaitsForTaskEnd:
    """The wait, for an executor class that says how to wait for one of its tasks to end."""

    _pending_before: int | None = None

    def _pending(self) -> int:
        """Workloads the scheduler queued here that are not sent out yet (tasks, callbacks, connection tests)."""
        return sum(len(getattr(self, name, ())) for name in ("queued_tasks", "queued_callbacks",
                                                            "queued_connection_tests"))

    def heartbeat(self) -> None:
        self._pending_before = self._pending()
        try:
            super().heartbeat()  # type: ignore[misc]
        finally:
            self._pending_before = None

    def sync(self) -> None:
        before = self._pending_before
        if before is not None and self._pending() >= before:  # this heartbeat sent nothing out
            self.wait_for_task_end(IDLE_WAIT)
        super().sync()  # type: ignore[misc]

    def wait_for_task_end(self, timeout: float) -> None:
        raise NotImplementedError


class PromptLocalExecutor(_WaitsForTaskEnd, LocalExecutor):
    """LocalExecutor whose idle wait ends when a worker reports a task's end."""

    def wait_for_task_end(self, timeout: float) -> None:
        """Block until a result is on the workers' queue, or ``timeout`` s: a poll of the queue's reading end
        (``multiprocessing.SimpleQueue`` keeps it as ``_reader``; tests/test_prompt_executors.py fails if an
        upgrade of Python or Airflow changes that)."""
        self.result_queue._reader.poll(timeout)  # type: ignore[attr-defined]


class PromptCeleryExecutor(_WaitsForTaskEnd, CeleryExecutor):
    """CeleryExecutor whose idle wait ends when the result backend has a task's end."""

    def wait_for_task_end(self, timeout: float) -> None:
        """Ask the backend every :data:`CELERY_POLL` s whether a running task has ended, for ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            if self.workloads:
                states = self.bulk_state_fetcher.get_many(self.workloads.values())
                if any(state in celery_states.READY_STATES for state, _ in states.values()):
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(CELERY_POLL, left))
