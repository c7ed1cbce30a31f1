"""The chunk runner both DAGs call: a chunk is a few documents that one task takes through a stage.

A DAG cuts its documents into chunks (:func:`cut_chunks`) and maps one task over them; each task
opens its chunk's batches (:func:`open_chunk`) and runs them (:func:`run_chunk`). With a signing
queue, a second task finishes what the first prepared (:func:`finish_chunk`). What a task returns,
one outcome dict per document, is small and free of personal data (it goes to XCom).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from digitize.intake import BatchSource, open_batch
from digitize.pipeline.context import PipelineContext
from digitize.pipeline.parallel import run_in_workers
from digitize.pipeline.stages import finish_prepared, prepare_document, process_document
from digitize.pipeline.summary import DocumentOutcome

MAX_MAP_LENGTH = 1024
"""Most tasks one mapped task may expand to (Airflow's ``[core] max_map_length``)."""

ChunkItem = tuple[BatchSource, int]
"""One document of a chunk: the batch its originals are read from, and its catalog id."""

OnDone = Callable[[DocumentOutcome], None]


def cut_chunks(work: list[tuple[str, int]], chunk_size: int) -> list[dict[str, Any]]:
    """(batch uri, document id) pairs → chunks of at most ``chunk_size`` documents, never more than ``MAX_MAP_LENGTH``.

    The size grows with the backlog instead. The chunks are as even as possible (60 documents at 50 per
    task make two of 30, not 50 and 10, which would leave one slot idle while the other works five times
    as long). A chunk may span batches (one part per batch), so the number of batches cannot push the
    count over the limit. Only uris and ids go to XCom.
    """
    if not work:
        return []
    count = math.ceil(len(work) / max(chunk_size, math.ceil(len(work) / MAX_MAP_LENGTH)))
    base, longer = divmod(len(work), count)
    chunks: list[dict[str, Any]] = []
    start = 0
    for index in range(count):
        end = start + base + (index < longer)
        parts: list[dict[str, Any]] = []
        for uri, document_id in work[start:end]:
            if not parts or parts[-1]["batch"] != uri:
                parts.append({"batch": uri, "ids": []})
            parts[-1]["ids"].append(document_id)
        first = parts[0]["batch"].rstrip("/").rsplit("/", 1)[-1]
        label = f"{first} docs {start + 1}-{end}" + (" +" if len(parts) > 1 else "")
        chunks.append({"label": label, "parts": parts})
        start = end
    return chunks


def open_chunk(pairs: Iterable[Sequence[Any]], s3: Callable[[str], Any] | None = None) -> list[ChunkItem]:
    """(batch uri, document id) pairs as XCom carries them → the items to run, one source per batch.

    Opening a batch reads nothing (an S3 batch fetches each original only when its document runs).
    """
    sources: dict[str, BatchSource] = {}
    items: list[ChunkItem] = []
    for uri, document_id in pairs:
        if uri not in sources:
            sources[uri] = open_batch(str(uri), s3=s3)
        items.append((sources[uri], int(document_id)))
    return items


def run_chunk(ctx: PipelineContext, items: Sequence[ChunkItem], stage: Literal["process", "prepare"], *,
              worker: str, on_done: OnDone | None = None) -> list[dict[str, Any]]:
    """Run one stage (``process``: every step; ``prepare``: up to the signature) over the chunk's documents.

    The task holds ``ctx.settings.ocr_jobs`` OCR slots; its documents run as ``process --workers`` runs
    them (:func:`run_in_workers`): two processes per slot, so a document's signature, archiving and
    catalog waits overlap the next one's Tesseract instead of idling the slot's core. A lone document
    runs here, its pages on every slot. Outcomes come back in the chunk's order. ``worker`` (and the stage)
    is named in the ``processing_worker`` event each claimed document gets with its claim.

    A document failure quarantines that document and the chunk goes on; a transient or configuration
    error propagates, so the task is retried or the run stops.
    """
    run_document = process_document if stage == "process" else prepare_document
    ctx.worker = worker + ("" if stage == "process" else f" ({stage})")
    outcomes: dict[int, dict[str, Any]] = {}

    def done(outcome: DocumentOutcome) -> None:
        if on_done is not None:
            on_done(outcome)
        outcomes[outcome.document_id] = outcome.as_dict()

    if len(items) > 1:
        run_in_workers(ctx, [(run_document, document_id, source) for source, document_id in items],
                       ctx.settings.ocr_jobs, on_done=done)
    else:
        for source, document_id in items:
            done(run_document(ctx, document_id, source))
    return [outcomes[document_id] for _, document_id in items]


def finish_chunk(ctx: PipelineContext, items: Sequence[ChunkItem], prepared: Sequence[dict[str, Any]], *,
                 worker: str, on_done: OnDone | None = None) -> list[dict[str, Any]]:
    """Sign and archive what :func:`run_chunk` prepared; the others keep their outcome (e.g. quarantined).

    The batch is read only for ``DIGITIZE_MOVE_DONE`` (a local folder); nothing is fetched.
    """
    source_of = {document_id: source for source, document_id in items}
    ctx.worker = worker + " (sign)"
    outcomes = []
    for row in prepared:
        outcome = finish_prepared(ctx, row, source_of[int(row["document_id"])])
        if on_done is not None:
            on_done(outcome)
        outcomes.append(outcome.as_dict())
    return outcomes

