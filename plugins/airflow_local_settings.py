"""Airflow's start-up hook, imported by every Airflow process: readies the processes that fork tasks.

Airflow runs each task in a process forked from a long-lived one: the Celery worker, or the
scheduler with LocalExecutor. When the library is imported there first
(:func:`digitize.pipeline.stages.preload`), every chunk task inherits OpenCV, pyHanko, pikepdf,
SQLAlchemy and boto3 instead of spending about a second of CPU importing them
(bench/results/airflow.md). The other processes (api-server, dag-processor, triggerer, the CLI)
skip it. ``DIGITIZE_AIRFLOW_PRELOAD=0`` turns it off.

The same processes run the task supervisors: :mod:`supervisor_exit` stops them idling 5 s
after a task that has already finished.

One cluster policy, :func:`task_instance_mutation_hook`, applied by the scheduler: a backlog run's
tasks take the weight of the priority chosen in its form.

Airflow finds this module because ``[core] plugins_folder`` is on ``sys.path`` before it imports
``airflow_local_settings``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["task_instance_mutation_hook"]  # the only name Airflow takes from here


def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    """A digitize_backlog run's task instances get the ``priority_weight`` of the form's ``priority``.

    A mapped task's weight is fixed in the DAG file, and the chunks are one mapped task that maps over the
    plan's result directly (a task per priority needed one more task in series, ~1 s a run). Airflow calls
    this wherever it creates or refreshes a task instance, with the run when it has it.
    """
    if dag_run is None:
        return
    from digitize_airflow import BACKLOG_DAG_ID, backlog_priority

    if task_instance.dag_id != BACKLOG_DAG_ID:
        return
    weight = backlog_priority(dag_run.conf)
    if weight is not None:
        task_instance.priority_weight = weight


def forks_tasks(argv: list[str], executor: str) -> bool:
    """Whether this process forks the task processes: a Celery worker, or the scheduler of LocalExecutor."""
    command = argv[1:3]
    return command == ["celery", "worker"] or (command[:1] == ["scheduler"] and "LocalExecutor" in executor)


def _executor() -> str:
    from airflow.configuration import conf

    return str(conf.get("core", "executor", fallback=""))


if forks_tasks(sys.argv, _executor()):
    from supervisor_exit import install

    install()
    if os.environ.get("DIGITIZE_AIRFLOW_PRELOAD", "1") != "0":
        # One thread per task process (the pool sizing in the README), and none alive at fork time.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from digitize.pipeline import preload

        preload()
        import airflow.providers.amazon.aws.hooks.s3  # noqa: F401  (digitize_airflow.s3_client's hook)
