"""What cutting the DAGs' chunks by work saves, on a batch that lists its biggest document last.

    .venv/bin/python -m bench.chunking [--a4 12] [--dossier 6] [--rounds 2] [--out FILE]

The batch is ``bench/ordering.py``'s: ``--a4`` one-page A4 300 dpi full-text documents (colour JPEG, gray PNG
and bilevel G4 TIFF in turn) and, last in the manifest, one ``--dossier``-page G4 TIFF dossier. Its chunks are
cut as the DAGs' plan cuts them (:func:`digitize.pipeline.cut_chunks`): in the manifest's order (the DAGs
before 5 Dec 2026) or by the registered pixels, heaviest first, in waves of as many chunks as run side by side
(as now). Each chunk then runs
as a chunk task runs it (:func:`digitize.pipeline.run_chunk`, in a process of its own), without Airflow, so
that only the chunking differs. Two layouts of a 2-core machine:

- **one chunk task holding both OCR slots** (``DIGITIZE_OCR_JOBS=2``, the default deployment; 50 documents
  per task, so the batch is one chunk): only the order inside the chunk changes;
- **two chunk tasks at once, one OCR slot each** (10 documents per task: two chunks): the split changes too.

Each round runs every layout both ways (the order of the two swaps every round), each time on a fresh
SQLite catalog and bucket of the local S3 endpoint. It reports wall time, CPU of the chunk processes and
their workers, and the cores they kept busy.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from bench.ordering import dossier_batch, options, publish
from bench.pipeline import pipeline_env, start_s3

LAYOUTS = {"one task, 2 OCR slots": (50, 2, 1), "two tasks, 1 OCR slot each": (10, 1, 2)}
"""Layout → (documents per task, OCR slots per task, tasks at a time)."""


def cpu_seconds() -> float:
    """User + system CPU of this process's reaped children (the chunk processes, their workers, Tesseracts)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _chunk_task(chunk: dict[str, Any], slots: int) -> None:
    """One chunk, as a chunk task runs it: its own context with ``slots`` OCR slots, the library's runner."""
    from digitize.config import load_settings
    from digitize.pipeline import PipelineContext, open_chunk, run_chunk

    ctx = PipelineContext(dataclasses.replace(load_settings(), ocr_jobs=slots))
    outcomes = run_chunk(ctx, open_chunk(chunk), "process", worker=f"bench:{os.getpid()}")
    if any(o["status"] != "ARCHIVED" for o in outcomes):
        raise SystemExit(f"not archived: {outcomes}")


def one_run(batch: Path, env: dict[str, str], layout: tuple[int, int, int], by_pixels: bool) -> tuple[float, float]:
    """Register the batch on the fresh catalog of ``env``, cut it, run its chunks ``parallel`` at a time."""
    from digitize.catalog import Catalog
    from digitize.config import load_settings
    from digitize.intake import read_manifest
    from digitize.pipeline import PipelineContext, cut_chunks, register_batch

    chunk_size, slots, parallel = layout
    os.environ.update(env)
    PipelineContext(load_settings()).archive.ensure_bucket()
    catalog = Catalog(load_settings().catalog_url)
    catalog.upgrade()
    cpu, start = cpu_seconds(), time.perf_counter()
    work = [(str(batch), document_id) for document_id in register_batch(catalog, read_manifest(batch)).to_process]
    weights = catalog.document_pixels([document_id for _, document_id in work]) if by_pixels else None
    catalog.close()
    chunks = cut_chunks(work, chunk_size, weights, at_once=parallel)
    fork = multiprocessing.get_context("fork")
    waiting, running = list(chunks), []
    while waiting or running:
        while waiting and len(running) < parallel:  # a slot frees: the next chunk starts, as the pool would
            running.append(fork.Process(target=_chunk_task, args=(waiting.pop(0), slots)))
            running[-1].start()
        time.sleep(0.05)
        for process in [p for p in running if not p.is_alive()]:
            process.join()
            if process.exitcode != 0:
                raise RuntimeError(f"a chunk failed (exit {process.exitcode})")
            running.remove(process)
    return time.perf_counter() - start, cpu_seconds() - cpu


def main() -> None:
    args = options(__doc__, corpus=False)
    work, batch, held = dossier_batch("chunking", args)
    s3, url = start_s3(work)
    walls: dict[tuple[str, bool], list[float]] = {}
    rows = ["| round | layout | chunks | wall s | CPU s | cores busy |", "|---|---|---|---|---|---|"]
    try:
        for n in range(args.rounds):
            for name, layout in LAYOUTS.items():
                for by_pixels in ((False, True) if n % 2 == 0 else (True, False)):
                    cut = "by pixels, in waves" if by_pixels else "manifest order"
                    tag = f"{'px' if by_pixels else 'order'}-{layout[2]}-{n}"
                    wall, cpu = one_run(batch, pipeline_env(work / tag, url, f"chunking-{tag}"), layout, by_pixels)
                    walls.setdefault((name, by_pixels), []).append(wall)
                    rows.append(f"| {n + 1} | {name} | {cut} | {wall:.1f} | {cpu:.1f} | {cpu / wall:.2f} |")
                    print(rows[-1], flush=True)
    finally:
        s3.terminate()
    medians = [f"- {name}: **{statistics.median(walls[name, False]):.1f} s in the manifest's order, "
               f"{statistics.median(walls[name, True]):.1f} s by pixels, in waves** "
               f"({statistics.median(walls[name, True]) / statistics.median(walls[name, False]):.2f}×)"
               for name in LAYOUTS]
    publish("Chunks by work", held, rows, ["Median wall time:", "", *medians], args.out)


if __name__ == "__main__":
    main()
