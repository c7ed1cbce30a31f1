"""Tesseract, with each recognition's process and interval appended to ``DIGITIZE_TEST_OCR_LOG``.

For tests of how many documents a run OCRs at a time, and in which order (``process --workers``): one
line per page, ``pid start end pixels cv_threads`` (``time.time()``; the page's width × height; OpenCV's
thread count in that process), written with a single append so processes do not interleave.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from digitize.ocr.recognize import OcrText, TesseractEngine
from digitize.pluginspec import hookimpl


class TimedEngine(TesseractEngine):
    """The real engine, timed."""

    def recognize(self, image: np.ndarray, *, dpi: float, language: str, psm: int, timeout: float,
                  work_dir: Path | None) -> OcrText:
        start = time.time()
        try:
            return super().recognize(image, dpi=dpi, language=language, psm=psm, timeout=timeout,
                                     work_dir=work_dir)
        finally:
            with open(os.environ["DIGITIZE_TEST_OCR_LOG"], "a", encoding="ascii") as log:
                pixels = image.shape[0] * image.shape[1]
                log.write(f"{os.getpid()} {start} {time.time()} {pixels} {cv2.getNumThreads()}\n")


ENGINE = TimedEngine()


@hookimpl
def get_ocr_engine() -> TimedEngine:
    return ENGINE
