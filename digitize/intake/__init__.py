"""Intake: batches in the inbox (folder or S3 prefix), their manifest, and page loading.

What leaves this package is plain typed values: batch plans, planned documents, page images, and what a page
shows of a cover sheet (the codes read before any OCR).
"""

from __future__ import annotations

from digitize.intake.inbox import BatchSource, LocalBatch, client_s3, find_batches, open_batch
from digitize.intake.manifest import BatchPlan, PlannedDocument, RowError, discover_batches, read_manifest
from digitize.intake.page_info import MAX_PIXELS, EncodedImage, PageInfo, PageLimits
from digitize.intake.pages import encode_for_pdf, load_image, scan_document, scan_pages, sniff_format
from digitize.intake.planned import read_planned
from digitize.intake.sheets import SheetDetection, detect_sheet

__all__ = [
    "MAX_PIXELS",
    "BatchPlan",
    "BatchSource",
    "EncodedImage",
    "LocalBatch",
    "PageInfo",
    "PageLimits",
    "PlannedDocument",
    "RowError",
    "SheetDetection",
    "client_s3",
    "detect_sheet",
    "discover_batches",
    "encode_for_pdf",
    "find_batches",
    "load_image",
    "open_batch",
    "read_manifest",
    "read_planned",
    "scan_document",
    "scan_pages",
    "sniff_format",
]
