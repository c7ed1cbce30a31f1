"""Wall time and CPU per pipeline stage, the same fixed stages everywhere (CLI, Airflow, benchmarks).

A document's work is split into :data:`STAGES`. The pipeline opens one :class:`StageTimes` per
document (:func:`recording`); any code below it, OCR included, marks its part with :func:`stage`
without knowing who records. Stages nest: each one counts only its own time, not that of the stages
opened inside it, so the document's base stage (``catalog``: claims, events, sidecar, bookkeeping)
gets what no other stage claimed and the stages add up to the document's time.

CPU is that of the process tree: the thread's own CPU (``RUSAGE_THREAD``), the CPU the Tesseract helper
reports for each page it reads for the thread (:func:`add_cpu`), and the CPU of other child processes
(qpdf, pdftoppm) reaped meanwhile (``RUSAGE_CHILDREN``). Those children's CPU is handed out once, to the
stage that ends first after they exit, so totals are exact; with page threads, two concurrent pages may
swap it.
Threads a library starts for itself are not counted: ``process --workers`` and chunk tasks run OpenCV
without its thread pool for that reason (:mod:`digitize.pipeline.parallel`).
"""

from __future__ import annotations

import contextvars
import resource
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES = ("load", "cleanup", "orientation", "ocr", "pdf", "code", "sign", "archive", "catalog", "index")
"""The fixed stage boundaries: reading and decoding the originals (``load``), preprocessing (``cleanup``),
orientation detection beyond the cheap test (``orientation``: Tesseract OSD), recognition (``ocr``),
text layer and PDF/A (``pdf``), the code (``code``), signing and verifying (``sign``), archive puts and
read-backs (``archive``), catalog and bookkeeping (``catalog``), the search index (``index``)."""

OCR_STAGES = ("load", "cleanup", "orientation", "ocr", "pdf")
"""The stages of making the searchable PDF (``digitize ocr`` alone)."""


@dataclass
class StageTimes:
    """Per-stage wall seconds and CPU seconds of one document (or of a whole run, once added up)."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, wall: float, cpu: float) -> None:
        with self._lock:
            self.wall[name] = self.wall.get(name, 0.0) + wall
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def merge(self, wall: Mapping[str, float], cpu: Mapping[str, float]) -> None:
        """Add another record's figures (e.g. a document's outcome) to these."""
        for name in set(wall) | set(cpu):
            self.add(name, wall.get(name, 0.0), cpu.get(name, 0.0))

    def rounded(self) -> tuple[dict[str, float], dict[str, float]]:
        """(wall, cpu) in milliseconds' precision, in :data:`STAGES` order: what outcomes and XCom carry."""
        order = [s for s in STAGES if s in self.wall] + sorted(set(self.wall) - set(STAGES))
        return ({s: round(self.wall[s], 3) for s in order}, {s: round(self.cpu.get(s, 0.0), 3) for s in order})


_current: contextvars.ContextVar[StageTimes | None] = contextvars.ContextVar("digitize_stage_times", default=None)
_local = threading.local()
_children_lock = threading.Lock()
_children_seen = [0.0]


def _children_cpu() -> float:
    """CPU of reaped children not yet handed to a stage (each second is handed out once per process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    with _children_lock:
        fresh = max(0.0, total - _children_seen[0])
        _children_seen[0] = max(total, _children_seen[0])
    return fresh


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


class _Open:
    """A stage open in this thread: its own time since it was last resumed."""

    __slots__ = ("cpu", "name", "times", "wall")

    def __init__(self, name: str, times: StageTimes) -> None:
        self.name, self.times = name, times
        self.wall, self.cpu = time.perf_counter(), _thread_cpu()

    def flush(self) -> None:
        """Count the time since the last resume, and the children reaped meanwhile, to this stage."""
        wall, cpu = time.perf_counter(), _thread_cpu()
        self.times.add(self.name, wall - self.wall, cpu - self.cpu + _children_cpu())
        self.wall, self.cpu = wall, cpu


def _stack() -> list[_Open]:
    stack: list[_Open] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


@contextmanager
def recording(times: StageTimes, base: str = "catalog") -> Iterator[StageTimes]:
    """Record the stages opened in this block (in this thread and in threads given its context) into ``times``.

    The block itself counts as ``base``. Children reaped before the block are not counted in it.
    """
    token = _current.set(times)
    _children_cpu()
    try:
        with stage(base):
            yield times
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count this block as stage ``name`` (one of :data:`STAGES`); nothing happens when nobody records."""
    times = _current.get()
    if times is None:
        yield
        return
    stack = _stack()
    if stack:
        stack[-1].flush()
    opened = _Open(name, times)
    stack.append(opened)
    try:
        yield
    finally:
        opened.flush()
        stack.pop()
        if stack:
            stack[-1].wall, stack[-1].cpu = opened.wall, opened.cpu  # the enclosing stage resumes now


def add_cpu(seconds: float) -> None:
    """Count CPU a long-lived helper process spent for this thread to its open stage (the Tesseract helper:
    not reaped after each page, its CPU would reach no stage); nothing happens when nobody records."""
    stack = _stack() if _current.get() is not None else []
    if stack and seconds > 0:
        stack[-1].times.add(stack[-1].name, 0.0, seconds)


def counted_already(seconds: float) -> None:
    """A helper whose CPU went to stages through :func:`add_cpu` was reaped: do not hand those seconds out
    again with the reaped children's."""
    with _children_lock:
        _children_seen[0] += seconds


@contextmanager
def waiting() -> Iterator[None]:
    """This thread waits for work other threads record (a document's page threads): the wait is not the
    enclosing stage's time, or a document OCR'd by two page threads would show its OCR as ``pdf``."""
    stack = _stack() if _current.get() is not None else []
    if not stack:
        yield
        return
    stack[-1].flush()
    try:
        yield
    finally:
        stack[-1].wall, stack[-1].cpu = time.perf_counter(), _thread_cpu()
