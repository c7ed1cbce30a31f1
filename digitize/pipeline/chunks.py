"""The chunk runner both DAGs call: a chunk is a few documents that one task takes through a stage.

A DAG cuts its documents into chunks (:func:`cut_chunks`) and maps one task over them; each task
opens its chunk's batches (:func:`open_chunk`) and runs them (:func:`run_chunk`). With a signing
queue, a second task finishes what the first prepared (:func:`finish_chunk`). What a task returns,
one outcome dict per document, is small and free of personal data (it goes to XCom).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
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


def cut_chunks(work: Sequence[tuple[str, int]], chunk_size: int, weights: Mapping[int, int] | None = None, *,
               at_once: int = 1) -> list[dict[str, Any]]:
    """(batch uri, document id) pairs → chunks of at most ``chunk_size`` documents, never more than ``MAX_MAP_LENGTH``.

    The size grows with the backlog instead. A chunk may span batches (each batch names its uri once), so the
    number of batches cannot push the count over the limit. Only uris and ids go to XCom: a chunk is
    ``{"label", "batches": [uri, …], "items": [[batch index, document id], …]}``, read back by
    :func:`chunk_pairs`. Without ``weights`` the chunks follow ``work``'s order and hold as even a number of
    documents as possible (60 documents at 50 per task make two of 30, not 50 and 10, which would leave one
    slot idle while the other works five times as long).

    With ``weights`` (each document's pixels, :meth:`Catalog.document_pixels`: the OCR work it holds; a
    document without one counts as nothing) the chunks are cut by work, for ``at_once`` chunk tasks running
    side by side: the documents are sorted heaviest first and taken ``at_once`` full chunks at a time (a
    wave); within a wave they are dealt heaviest first, each to the chunk with the least work that has room
    (longest-processing-time-first). So the chunks that run together are even, each wave is lighter than
    the one before (the run ends on light chunks, not on one slot finishing the dossiers while the others
    idle), and each chunk lists its heaviest first, the order its workers take them in. Equal documents
    still split evenly. Pixels, not bytes: ``bench/pipeline.py``'s A4 page takes 54 KB as bilevel G4 and
    889 KB as colour JPEG, for the same OCR.
    """
    if not work:
        return []
    size = max(chunk_size, math.ceil(len(work) / MAX_MAP_LENGTH))
    if weights is None:
        count = math.ceil(len(work) / size)
        base, longer = divmod(len(work), count)
        bounds = [0, *itertools.accumulate(base + (index < longer) for index in range(count))]
        groups = [list(work[start:end]) for start, end in itertools.pairwise(bounds)]
    else:
        heaviest_first = sorted(work, key=lambda pair: -weights.get(pair[1], 0))  # stable: ties keep their order
        wave = size * max(1, at_once)
        groups = [group for start in range(0, len(work), wave)
                  for group in _deal(heaviest_first[start:start + wave], size, weights)]
    count = len(groups)
    chunks: list[dict[str, Any]] = []
    for index, group in enumerate(groups):
        batches = list(dict.fromkeys(uri for uri, _ in group))
        position = {uri: n for n, uri in enumerate(batches)}
        first = batches[0].rstrip("/").rsplit("/", 1)[-1] + (" +" if len(batches) > 1 else "")
        chunks.append({"label": f"{first} {index + 1}/{count} ({len(group)} doc{'' if len(group) == 1 else 's'})",
                       "batches": batches, "items": [[position[uri], document_id] for uri, document_id in group]})
    return chunks


def _deal(wave: Sequence[tuple[str, int]], size: int, weights: Mapping[int, int]) -> list[list[tuple[str, int]]]:
    """One wave's documents, heaviest first, dealt to as few chunks of ``size`` as hold them: each to the least
    loaded chunk with room."""
    groups: list[list[tuple[str, int]]] = [[] for _ in range(math.ceil(len(wave) / size))]
    lightest = [(0, index) for index in range(len(groups))]  # (work so far, chunk): a heap of those with room
    for item in wave:
        load, index = heapq.heappop(lightest)
        groups[index].append(item)
        if len(groups[index]) < size:
            heapq.heappush(lightest, (load + weights.get(item[1], 0), index))
    return groups


def chunk_pairs(chunk: Mapping[str, Any]) -> list[tuple[str, int]]:
    """A chunk as XCom carries it (:func:`cut_chunks`) → its (batch uri, document id) pairs, in the order to run."""
    batches = chunk["batches"]
    return [(str(batches[batch]), int(document_id)) for batch, document_id in chunk["items"]]


def open_chunk(chunk: Mapping[str, Any], s3: Callable[[str], Any] | None = None) -> list[ChunkItem]:
    """A chunk as XCom carries it → the items to run, one source per batch.

    Opening a batch reads nothing (an S3 batch fetches each original only when its document runs).
    """
    sources: dict[str, BatchSource] = {}
    items: list[ChunkItem] = []
    for uri, document_id in chunk_pairs(chunk):
        if uri not in sources:
            sources[uri] = open_batch(uri, s3=s3)
        items.append((sources[uri], document_id))
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

