"""Intake: batches in the inbox (folder or S3 prefix), their manifest, and page loading.

What leaves this package is plain typed values: batch plans, planned documents, page images, what a page
shows of a cover sheet (the codes read before any OCR), and for stack batches (no manifest: see ``stacks``)
their stacks and the blank-page test.
"""

from __future__ import annotations

from digitize.intake.inbox import BatchSource, LocalBatch, client_s3, find_batches, open_batch, why_no_batches
from digitize.intake.manifest import BatchPlan, PlannedDocument, RowError, discover_batches, named_batch, read_manifest
from digitize.intake.page_info import MAX_PIXELS, EncodedImage, PageInfo, PageLimits
from digitize.intake.pages import (
    count_pages,
    encode_for_pdf,
    file_pixels,
    load_image,
    scan_document,
    scan_pages,
    sniff_format,
    stored_gray,
)
from digitize.intake.planned import read_planned
from digitize.intake.sheets import SheetDetection, detect_sheet
from digitize.intake.stacks import (
    UNIT_FILE,
    StackFiles,
    StackNoUnit,
    cut_pages,
    ink_fraction,
    is_blank,
    is_stack_batch,
    stack_files,
    stack_unit,
)

__all__ = [
    "MAX_PIXELS",
    "UNIT_FILE",
    "BatchPlan",
    "BatchSource",
    "EncodedImage",
    "LocalBatch",
    "PageInfo",
    "PageLimits",
    "PlannedDocument",
    "RowError",
    "SheetDetection",
    "StackFiles",
    "StackNoUnit",
    "client_s3",
    "count_pages",
    "cut_pages",
    "detect_sheet",
    "discover_batches",
    "encode_for_pdf",
    "file_pixels",
    "find_batches",
    "ink_fraction",
    "is_blank",
    "is_stack_batch",
    "load_image",
    "named_batch",
    "open_batch",
    "read_manifest",
    "read_planned",
    "scan_document",
    "scan_pages",
    "sniff_format",
    "stack_files",
    "stack_unit",
    "stored_gray",
    "why_no_batches",
]
