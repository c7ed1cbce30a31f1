"""Airflow's start-up hook, imported by every Airflow process: readies the processes that fork tasks.

Airflow runs each task in a process forked from a long-lived one: the Celery worker, or the
scheduler with LocalExecutor. When the library is imported there first
(:func:`digitize.pipeline.stages.preload`), every chunk task inherits OpenCV, pyHanko, pikepdf,
SQLAlchemy and boto3 instead of spending about a second of CPU importing them
(bench/results/airflow.md). The other processes (api-server, dag-processor, triggerer, the CLI)
skip it. ``DIGITIZE_AIRFLOW_PRELOAD=0`` turns it off.

The same processes run the task supervisors: :mod:`supervisor_exit` stops them idling 5 s
after a task that has already finished.

Airflow finds this module because ``[core] plugins_folder`` is on ``sys.path`` before it imports
``airflow_local_settings``; it defines no policy.
"""

from __future__ import annotations

import os
import sys

__all__: list[str] = []  # no cluster policy: Airflow must not take anything from here


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
