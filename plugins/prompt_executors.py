"""The wait behind ``prompt_local.LocalExecutor`` and ``prompt_celery.CeleryExecutor``: Airflow's executors, waking the
scheduler as soon as a task ends.

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

Each executor is in a module of its own under Airflow's own class name: a LocalExecutor deployment then imports
nothing of Celery, and Airflow's checks that go by the class name (e.g. whether the executor is a local one) hold.
"""

from __future__ import annotations

IDLE_WAIT = 1.0
"""Seconds an idle scheduler waits for a task to end before its next pass: Airflow's default idle sleep."""
CELERY_POLL = 0.1
"""Seconds between two looks at the Celery result backend while waiting."""


class WaitsForTaskEnd:
    """The wait, for an executor class that says how to wait for one of its tasks to end (put it first in the bases)."""

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
