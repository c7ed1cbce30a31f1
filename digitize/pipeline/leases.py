"""Processing leases: who holds a document while it goes through the stages, kept alive in the background.

A lease's owner names the machine, the process and a random token, so a lease held by a process
that died on this machine can be taken over at once instead of waiting for it to lapse.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from contextlib import suppress
from typing import TYPE_CHECKING

from digitize.errors import TransientError

if TYPE_CHECKING:
    from digitize.pipeline.context import PipelineContext


def _machine() -> str:
    """This host and PID namespace: PIDs compare only within it (containers on one host share the name)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def new_owner() -> str:
    """Owner of a lease: machine, PID and a random token (each call to process_document is its own claimant)."""
    return f"{_machine()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_local_owner(owner: str | None) -> str | None:
    """``owner`` if it is a process of this machine that no longer exists (its lease may be taken at once)."""
    if not owner:
        return None
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _machine() or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return owner
    except PermissionError:
        return None
    return None


class LeaseLost(Exception):
    """Another worker took the document over (our lease lapsed): stop before touching the archive."""


class Lease:
    """Holds a document's processing lease, renewing it in the background every third of its length."""

    def __init__(self, ctx: PipelineContext, document_id: int, owner: str) -> None:
        self.catalog, self.document_id, self.owner = ctx.catalog, document_id, owner
        self.seconds = max(1, ctx.settings.lease_seconds)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="digitize-lease", daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.catalog.claim(self.document_id, self.owner, self.seconds):
                    self.lost = True
                    return
            except TransientError:
                continue  # the catalog is briefly away: the lease still has two thirds of its time

    def check(self, stage: str) -> None:
        """Stop (:class:`LeaseLost`) if the lease was lost before ``stage``."""
        if self.lost:
            raise LeaseLost(stage)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with suppress(TransientError):  # the lease lapses by itself
            self.catalog.release(self.document_id, self.owner)  # no-op once archived or quarantined
