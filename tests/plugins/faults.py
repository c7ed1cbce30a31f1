"""Fault injector: kills the process, or fills the scratch disk, when a document reaches a stage boundary.

Load it with ``DIGITIZE_PLUGINS=<absolute path of this file>``; it is inert until ``DIGITIZE_TEST_FAULT``
names a fault. That variable is read here, at every boundary, never by the library, so a test can
set and clear it in-process, and a child process gets it through its environment:

- ``DIGITIZE_TEST_FAULT=<stage>``: SIGKILL when this process reaches ``<stage>`` (a worker dying
  mid-document);
- ``DIGITIZE_TEST_FAULT=<stage>:enospc``: ENOSPC raised there instead (the scratch disk full).

Stages: ``digitize.pipeline.stages.FAULT_POINTS``.
"""

from __future__ import annotations

import errno
import os
import signal

from digitize.pluginspec import hookimpl

FAULT_SETTING = "DIGITIZE_TEST_FAULT"


@hookimpl
def on_stage(stage: str) -> None:
    point, _, action = os.environ.get(FAULT_SETTING, "").partition(":")
    if point != stage:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"No space left on device (injected by {FAULT_SETTING})")
    os.kill(os.getpid(), signal.SIGKILL)
