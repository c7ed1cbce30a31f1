"""Batch digitization of administrative-procedure documents: scan → OCR → PDF/A → code → sign → archive → coverage."""

from __future__ import annotations

__version__ = "0.1.0"
