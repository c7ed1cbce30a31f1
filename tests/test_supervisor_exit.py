"""plugins/supervisor_exit: a task's supervisor lets go of its worker slot as soon as the task exits.

The child is a real forked process started by Airflow's own supervisor class; it does what a
finished task does (closes its channels, then takes a moment to exit), with that moment widened
to half a second so the race is certain. ``min_heartbeat_interval`` is raised to make a stall
unmistakable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins"))
import supervisor_exit  # noqa: E402

sys.path.remove(str(REPO / "plugins"))

LINGER = 0.5  # seconds between the task closing its sockets and its exit


def _finished_task() -> None:
    """A task past its last message: every channel to the supervisor closed, the interpreter still tearing down."""
    os.closerange(0, 4096)
    time.sleep(LINGER)
    os._exit(0)


def _supervise(monkeypatch: pytest.MonkeyPatch, heartbeat_interval: int, *, patched: bool) -> tuple[float, int | None]:
    """Seconds from the task's start until its supervisor's loop returns, and the exit code it saw."""
    from airflow.sdk.execution_time import supervisor

    monkeypatch.setattr(supervisor.WatchedSubprocess, "_service_subprocess",
                        supervisor.WatchedSubprocess._service_subprocess)  # restored after the test
    monkeypatch.setattr(supervisor, "MIN_HEARTBEAT_INTERVAL", heartbeat_interval)
    if patched:
        supervisor_exit.install()
    started = time.monotonic()
    proc = super(supervisor.ActivitySubprocess, supervisor.ActivitySubprocess).start(  # type: ignore[misc]
        target=_finished_task, id=uuid.uuid4(), client=None)
    proc._last_successful_heartbeat = started  # as when the API server accepted the start
    proc._terminal_state = "success"  # it has reported success: no heartbeat, no API call
    proc._monitor_subprocess()
    return time.monotonic() - started, proc._exit_code


def test_the_supervisor_returns_when_the_task_exits_not_at_the_next_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    elapsed, exit_code = _supervise(monkeypatch, 60, patched=True)
    assert exit_code == 0
    assert elapsed < 30, f"the supervisor held the slot {elapsed:.1f} s for a task that exited after {LINGER} s"


def test_airflow_alone_still_waits_for_the_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason for the workaround. When this fails, Airflow fixed the stall: delete plugins/supervisor_exit.py."""
    elapsed, exit_code = _supervise(monkeypatch, 4, patched=False)
    assert exit_code == 0
    assert elapsed >= 4, "Airflow no longer stalls after a task's exit: the workaround can go"


def test_install_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.supervisor import WatchedSubprocess

    monkeypatch.setattr(WatchedSubprocess, "_service_subprocess", WatchedSubprocess._service_subprocess)
    supervisor_exit.install()
    once = WatchedSubprocess._service_subprocess
    supervisor_exit.install()
    assert WatchedSubprocess._service_subprocess is once


def test_exited_within_sees_the_exit_without_reaping() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert supervisor_exit.exited_within(child.pid, 0.01) is False
    assert supervisor_exit.exited_within(child.pid, 30) is True
    assert child.wait(timeout=5) == 0  # still the parent's to reap, with its exit code


@pytest.mark.parametrize("preload", ["1", "0"])
def test_a_celery_worker_process_runs_the_patched_supervisor(preload: str) -> None:
    """Airflow's own start-up hook installs it in a worker, whether or not the library is preloaded."""
    code = ("import sys; sys.argv = ['airflow', 'celery', 'worker']; import airflow, airflow.settings; "
            "from airflow.sdk.execution_time.supervisor import WatchedSubprocess as W; "
            "print(getattr(W._service_subprocess, '_digitize_waits_for_exit', False))")
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "DIGITIZE_AIRFLOW_PRELOAD": preload,
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "True"
