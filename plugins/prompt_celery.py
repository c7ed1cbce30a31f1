"""Airflow's CeleryExecutor, ending the scheduler's idle wait when a task ends (:mod:`prompt_executors`)."""

from __future__ import annotations

import time

from airflow.providers.celery.executors import celery_executor
from celery import states as celery_states
from prompt_executors import CELERY_POLL, WaitsForTaskEnd


class CeleryExecutor(WaitsForTaskEnd, celery_executor.CeleryExecutor):
    """CeleryExecutor whose idle wait ends when the result backend has a task's end."""

    def wait_for_task_end(self, timeout: float) -> None:
        """Ask the backend every :data:`~prompt_executors.CELERY_POLL` s whether a running task has ended, for
        ``timeout`` s."""
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
