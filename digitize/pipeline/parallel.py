"""Several documents at a time, each in its own process: how ``process --workers`` and chunk tasks keep cores busy.

One document at a time with page threads leaves cores idle on one-page documents and between
pages (signing, archiving, catalog work run on one core while Tesseract waits). The parent
imports and warms up what documents need (:func:`preload`, made to be forked: it opens no
connection and starts no thread), then forks the workers, so that cost is paid once, not once per
worker (~3 s of CPU each when spawned). Each worker gets its own :class:`PipelineContext`
(:meth:`PipelineContext.for_worker`: the parent's catalog engine is forgotten by forked children)
and takes documents one by one with one Tesseract.

There are two processes per OCR slot: ``workers`` documents are OCR'd at a time while up to as many
others are signed, archived and catalogued, so those stages' waits (fsync, S3, the catalog's write
turn) overlap another document's Tesseract instead of idling its core. Memory stays bounded: at most
``2 × workers`` documents are in flight, ``workers`` of them in OCR, each with its pages in a window.

The CLI hands the documents over largest first (:func:`largest_first`), so that the run does not end
on one busy core finishing a big document started last. A chunk task keeps its chunk's order, which the
DAG's plan made heaviest first by the pixels registration recorded (:func:`cut_chunks`): its originals may
be in S3, where their headers cannot be read again without fetching them.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from digitize.config import Settings
from digitize.intake import BatchSource
from digitize.pipeline.context import PipelineContext, Slots, preload
from digitize.pipeline.stages import process_document
from digitize.pipeline.summary import DocumentOutcome

if TYPE_CHECKING:
    from digitize.catalog import Catalog

PROCESSES_PER_SLOT = 2
"""Documents in flight per OCR slot: one in OCR, one in the stages after it."""

DocumentStep = Callable[[PipelineContext, int, Path | BatchSource], DocumentOutcome]
"""What a worker does with one document: :func:`process_document`, or a chunk's ``prepare_document``."""

Job = tuple[DocumentStep, int, Path | BatchSource]
"""One document to run: the step, its catalog id, and the batch its originals are read from."""

_worker: list[PipelineContext] = []
_jobs: list[Job] = []


def _start_worker(ctx: PipelineContext, ocr_slots: Slots, jobs: Sequence[Job]) -> None:
    """A forked worker's set-up. The jobs come with the fork, not through a pipe: an S3 batch holds a client,
    which does not pickle. SIGTERM kills the worker outright: Airflow ends a task by signalling its
    process group, and the handler the task runner installed would fail the document in hand instead
    (its lease expires and the next run takes it up)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker.append(ctx.for_worker(ocr_slots))
    _jobs.extend(jobs)


def _run(index: int) -> DocumentOutcome:
    step, document_id, source = _jobs[index]
    return step(_worker[0], document_id, source)


@contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """Fork the workers with OpenCV set to one thread, and give this process its own setting back afterwards.

    The cores are kept busy by the documents, and the threads of OpenCV's own pool would hide their CPU from
    the stage clock, which reads the calling thread's (clean-up showed ~30 % less CPU than it used); the
    process tree's CPU and the run's wall time were the same both ways (six alternating ad-hoc runs on
    ``bench/pipeline.py``'s 25 pages, 4 Dec; ``bench/results/pipeline.md``, run 15). It is set here,
    before the fork: a forked child that changes
    it waits forever for pool threads its parent started, which it does not have (an Airflow task that
    split a stack before its chunk hung so).
    """
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


@contextmanager
def _allowed_children() -> Iterator[None]:
    """Let this process start workers even when marked daemonic, as a Celery task's process is.

    Celery's prefork pool marks its processes daemonic and Airflow forks each task from one, so
    ``multiprocessing`` would refuse: "daemonic processes are not allowed to have children". The rule
    keeps a daemon's children from outliving it. Here they do not: Airflow signals a task's whole
    process group, the workers die on SIGTERM (:func:`_start_worker`), and the pool is shut down and
    joined before this returns. The flag is ``multiprocessing``'s own (``_config``), put back after.
    """
    config: dict[str, object] = getattr(multiprocessing.current_process(), "_config")  # noqa: B009
    daemon = config.get("daemon")
    config["daemon"] = False
    try:
        yield
    finally:
        if daemon is None:
            config.pop("daemon", None)
        else:
            config["daemon"] = daemon


def run_in_workers(ctx: PipelineContext, jobs: Sequence[Job], workers: int,
                   on_done: Callable[[DocumentOutcome], None] | None = None) -> list[DocumentOutcome]:
    """Run jobs with ``workers`` Tesseracts at a time, in twice as many processes (one Tesseract each).

    ``ctx`` is forked into every worker (:meth:`PipelineContext.for_worker`), so its archive must not
    have been used yet (a used S3 client's open connections would be shared). Outcomes come in the
    order documents finish. A transient or configuration error in a worker stops the run as it does in
    one process: documents not started stay as they were for the next run.
    """
    outcomes: list[DocumentOutcome] = []
    preload()
    fork = multiprocessing.get_context("fork")
    in_flight = min(PROCESSES_PER_SLOT * workers, len(jobs))
    with _single_threaded_opencv(), _allowed_children(), ProcessPoolExecutor(
            max_workers=max(1, in_flight), mp_context=fork, initializer=_start_worker,
            initargs=(ctx, fork.BoundedSemaphore(workers), jobs)) as pool:
        todo = list(range(len(jobs)))[::-1]
        running: set[Future[DocumentOutcome]] = set()
        try:
            while todo or running:
                while todo and len(running) < in_flight:
                    running.add(pool.submit(_run, todo.pop()))
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    outcome = future.result()
                    outcomes.append(outcome)
                    if on_done is not None:
                        on_done(outcome)
        finally:
            for future in running:
                future.cancel()
    return outcomes


def process_in_workers(settings: Settings, document_ids: Sequence[int], batch_root: Path | BatchSource, workers: int,
                       on_done: Callable[[DocumentOutcome], None] | None = None) -> list[DocumentOutcome]:
    """``process --workers``: :func:`run_in_workers` over one batch, each worker opening its own archive."""
    jobs: list[Job] = [(process_document, document_id, batch_root) for document_id in document_ids]
    return run_in_workers(PipelineContext(settings), jobs, workers, on_done)


def largest_first(catalog: Catalog, document_ids: Sequence[int]) -> list[int]:
    """The documents ordered by the pixels of their pages, most first (equal ones keep their order).

    Workers take documents one by one, so a big document started last runs alone at the end while the
    other cores idle; started first, it overlaps the small ones (longest-processing-time-first
    scheduling). Pixels stand for the work, as clean-up, OCR and the PDF grow with them; registration
    read them from the files' headers (:meth:`Catalog.document_pixels`), so nothing is read again here.
    A file that could not be read counts as nothing: it is quarantined quickly.
    """
    weight = catalog.document_pixels(document_ids)
    return sorted(document_ids, key=lambda document_id: -weight.get(document_id, 0))
