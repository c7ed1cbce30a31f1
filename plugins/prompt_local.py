"""Airflow's LocalExecutor, ending the scheduler's idle wait when a task ends (:mod:`prompt_executors`)."""

from __future__ import annotations

from airflow.executors import local_executor
from prompt_executors import WaitsForTaskEnd


class LocalExecutor(WaitsForTaskEnd, local_executor.LocalExecutor):
    """LocalExecutor whose idle wait ends when a worker reports a task's end."""

    def wait_for_task_end(self, timeout: float) -> None:
        """Block until a result is on the workers' queue, or ``timeout`` s: a poll of the queue's reading end
        (``multiprocessing.SimpleQueue`` keeps it as ``_reader``; tests/test_prompt_executors.py fails if an
        upgrade of Python or Airflow changes that)."""
        self.result_queue._reader.poll(timeout)  # type: ignore[attr-defined]
