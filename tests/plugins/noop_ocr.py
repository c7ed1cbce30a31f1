"""A no-op OCR engine: Tesseract's identity without recognition, for benchmarks and tests of everything but OCR.

Load it with ``DIGITIZE_PLUGINS=<absolute path of this file>`` (``bench/airflow_overhead.py`` and the
robustness tests do). Pages then come out with no text (flagged NO_TEXT_FOUND) and no orientation
found; events and sidecars still name Tesseract and its version, as production ones do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitize.ocr.recognize import OcrText, TesseractEngine
from digitize.pluginspec import hookimpl


class NoopEngine(TesseractEngine):
    """Recognises nothing, instantly."""

    def recognize(self, image: np.ndarray, *, dpi: float, language: str, psm: int, timeout: float,
                  work_dir: Path | None) -> OcrText:
        return OcrText((), "")

    def orientation(self, image: np.ndarray, *, dpi: float) -> tuple[int, float]:
        return 0, 0.0


ENGINE = NoopEngine()


@hookimpl
def get_ocr_engine() -> NoopEngine:
    return ENGINE
