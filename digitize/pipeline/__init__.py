"""The pipeline: stages of one document, leases, the chunk runner both DAGs call, run summaries."""

from __future__ import annotations

from digitize.pipeline.stages import (
    SIDECAR_SCHEMA,
    DocumentOutcome,
    PipelineContext,
    correct_document,
    finish_prepared,
    preload,
    prepare_document,
    process_document,
    process_documents,
    register_batch,
    sha256_bytes,
    sha256_file,
    sidecar_validator,
    summarize,
)

__all__ = [
    "SIDECAR_SCHEMA",
    "DocumentOutcome",
    "PipelineContext",
    "correct_document",
    "finish_prepared",
    "preload",
    "prepare_document",
    "process_document",
    "process_documents",
    "register_batch",
    "sha256_bytes",
    "sha256_file",
    "sidecar_validator",
    "summarize",
]
