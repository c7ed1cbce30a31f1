"""The pipeline: stages of one document, leases, the chunk runner both DAGs call, run summaries, and the
splitting of scanned stacks at their cover sheets (``stacks``, ``segments``)."""

from __future__ import annotations

from digitize.pipeline.automatch import auto_match
from digitize.pipeline.chunks import MAX_MAP_LENGTH, chunk_pairs, cut_chunks, finish_chunk, open_chunk, run_chunk
from digitize.pipeline.context import PipelineContext, preload
from digitize.pipeline.parallel import largest_first, process_in_workers
from digitize.pipeline.register import Duplicate, RegisteredBatch, register_batch
from digitize.pipeline.relink import relink_document
from digitize.pipeline.stacks import FAULTS as STACK_FAULTS
from digitize.pipeline.stacks import SplitBatch, StackReport, page_span, split_stack_batch, stack_summaries
from digitize.pipeline.stages import (
    correct_document,
    finish_prepared,
    prepare_document,
    process_document,
    process_documents,
)
from digitize.pipeline.summary import DocumentOutcome, RunSummary, summarize, unfinished_documents

__all__ = [
    "MAX_MAP_LENGTH",
    "STACK_FAULTS",
    "DocumentOutcome",
    "Duplicate",
    "PipelineContext",
    "RegisteredBatch",
    "RunSummary",
    "SplitBatch",
    "StackReport",
    "auto_match",
    "chunk_pairs",
    "correct_document",
    "cut_chunks",
    "finish_chunk",
    "finish_prepared",
    "largest_first",
    "open_chunk",
    "page_span",
    "preload",
    "prepare_document",
    "process_document",
    "process_documents",
    "process_in_workers",
    "register_batch",
    "relink_document",
    "run_chunk",
    "split_stack_batch",
    "stack_summaries",
    "summarize",
    "unfinished_documents",
]
