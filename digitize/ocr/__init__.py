"""OCR: page clean-up (OpenCV), recognition (Tesseract ``vie``) and the searchable PDF/A-2b.

Tesseract is spoken to here only.
"""

from __future__ import annotations

from digitize.ocr.pdfa import set_document_metadata
from digitize.ocr.recognize import OcrOptions, OcrResult, PageResult, make_searchable_pdf

__all__ = ["OcrOptions", "OcrResult", "PageResult", "make_searchable_pdf", "set_document_metadata"]
