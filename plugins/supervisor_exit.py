"""Stop Airflow's task supervisor from idling 5 s after a task that has already finished.

Airflow (task SDK 1.3.2) runs every task in a child process watched by a supervisor, which
loops on ``select()`` over the child's sockets and, after each wake-up, checks whether the
child has exited. When a finished task closes its sockets a moment before the kernel reports
its exit (it always closes them first), the supervisor sees the last EOF, finds the child not
yet reapable and selects again on an empty selector: a plain sleep of ``[workers]
min_heartbeat_interval`` (5 s) before it notices the exit. The task is already marked
successful, but its worker slot stays taken: under Celery, with one slot per core, the next
chunk waits in the queue for those seconds. In a CI run of the signing cluster test it happened
after 13 of its 22 tasks (bench/results/airflow.md).

The fix waits on the child itself (a pidfd, Linux ≥ 5.3) when no socket is left to watch, so
the supervisor goes on as soon as the child exits and behaves as before in every other case.
:func:`install` applies it to the supervisor class; ``airflow_local_settings`` calls it in
the processes that run supervisors (Celery workers, the scheduler with LocalExecutor).
``tests/test_supervisor_exit.py`` fails when an Airflow upgrade fixes the stall or changes the
method, so the workaround cannot outlive its reason silently.
"""

from __future__ import annotations

import functools
import os
import select
from typing import Any

_MARK = "_digitize_waits_for_exit"


def exited_within(pid: int, timeout: float) -> bool | None:
    """Wait up to ``timeout`` s for child ``pid`` to exit, without reaping it; ``None`` if it cannot be watched."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel), or the pid is gone already
        return None
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def install() -> None:
    """Patch the supervisor's loop step (idempotent): with no socket left, wait for the exit, not the heartbeat."""
    from airflow.sdk.execution_time.supervisor import WatchedSubprocess

    original = WatchedSubprocess._service_subprocess
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def _service_subprocess(self: Any, max_wait_time: float, raise_on_timeout: bool = False,
                            expect_signal: int | None = None) -> int | None:
        if self._exit_code is None and not self._open_sockets and exited_within(
                self.pid, max(0.01, max_wait_time)) is not None:
            max_wait_time = 0  # waited already (until the exit or the heartbeat's turn): no second sleep
        return original(self, max_wait_time, raise_on_timeout=raise_on_timeout, expect_signal=expect_signal)

    setattr(_service_subprocess, _MARK, True)
    WatchedSubprocess._service_subprocess = _service_subprocess  # type: ignore[method-assign]
