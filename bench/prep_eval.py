"""Fast evaluation of preprocessing alone: prepare_page -> tesseract CLI -> CER/WER per page.

Used for tuning and for the per-step ablation of bench/ocr_bench.py. Orientation detection calls
``digitize.ocr.recognize.detect_orientation`` when it exists, else a small ``tesseract --psm 0`` call of its own.

    .venv/bin/python -m bench.prep_eval [CORPUS] [--off STEP ...] [--psm 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.corpus import DEFAULT_CORPUS, CorpusPage, load_images, load_manifest
from bench.score import Score, score, total
from digitize.ocr.cleanup import PreprocessOptions, prepare_page

ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}
STEPS = ("orientation", "deskew", "perspective", "normalize_background", "despeckle", "remove_borders", "binarize")


def _tesseract_osd(img: np.ndarray) -> tuple[int, float]:
    """rotation_cw of ``img`` and confidence, from Tesseract OSD (--psm 0)."""
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        cv2.imwrite(f.name, img)
        out = subprocess.run(["tesseract", f.name, "-", "--psm", "0", "--dpi", "100"], capture_output=True,
                             text=True, env=ENV).stdout
    rot = re.search(r"Orientation in degrees: (\d+)", out)
    conf = re.search(r"Orientation confidence: ([\d.]+)", out)
    if not rot or not conf:
        return 0, 0.0
    # "Orientation in degrees" is how far the stored page is turned clockwise ("Rotate" is its complement)
    return int(rot.group(1)) % 360, float(conf.group(1))


def orientation_detector() -> Callable[[np.ndarray], tuple[int, float]]:
    """The project's detector when digitize.ocr.recognize has it, else the local OSD call."""
    try:
        detector = getattr(importlib.import_module("digitize.ocr.recognize"), "detect_orientation", None)
    except ImportError:
        detector = None
    return detector if callable(detector) else _tesseract_osd


@dataclass(frozen=True)
class PageRun:
    """Outcome of one page."""

    page: CorpusPage
    score: Score
    seconds_prep: float
    seconds_ocr: float
    rotation_cw: int
    skew_deg: float
    blank: bool
    dpi: float
    flags: tuple[str, ...]


def ocr_image(img: np.ndarray, dpi: float, psm: int) -> str:
    """Text of a prepared image through the tesseract CLI (one thread)."""
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        cv2.imwrite(f.name, img)
        return subprocess.run(["tesseract", f.name, "-", "-l", "vie", "--psm", str(psm), "--dpi", str(round(dpi)),
                               "-c", "preserve_interword_spaces=1"], capture_output=True, text=True, env=ENV,
                              check=True).stdout


def run_page(corpus: Path, page: CorpusPage, options: PreprocessOptions, psm: int, keep: Path | None) -> PageRun:
    """Prepare and OCR one page of the corpus."""
    img, dpi = load_images(corpus / page.file)[page.index_in_file]
    t0 = time.perf_counter()
    prepared = prepare_page(img, dpi, options, orientation_detector() if options.orientation else None)
    t1 = time.perf_counter()
    text = "" if prepared.blank else ocr_image(prepared.ocr_image, prepared.ocr_dpi, psm)
    t2 = time.perf_counter()
    if keep:
        cv2.imwrite(str(keep / f"{page.page_id}.png"), prepared.ocr_image)
        (keep / f"{page.page_id}.txt").write_text(text, encoding="utf-8")
    return PageRun(page, score(text, page.truth), t1 - t0, t2 - t1, prepared.rotation_cw, prepared.skew_deg,
                   prepared.blank, prepared.effective_dpi, prepared.flags)


def run_corpus(corpus: Path, options: PreprocessOptions, psm: int = 3, jobs: int = 2,
               keep: Path | None = None) -> list[PageRun]:
    """All pages, ``jobs`` at a time."""
    pages = load_manifest(corpus)
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(run_page, [corpus] * len(pages), pages, [options] * len(pages), [psm] * len(pages),
                             [keep] * len(pages)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--off", action="append", default=[], choices=STEPS)
    parser.add_argument("--set", action="append", default=[], help="option=value (float)")
    parser.add_argument("--psm", type=int, default=3)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args(argv)
    changes: dict[str, object] = {name: False for name in args.off}
    for item in args.set:
        key, value = item.split("=", 1)
        changes[key] = float(value)
    options = dataclasses.replace(PreprocessOptions(), **changes)  # type: ignore[arg-type]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs = run_corpus(args.corpus, options, args.psm, keep=args.keep)
    print(f"{'page':5} {'CER%':>6} {'WER%':>6} {'rot':>4}/{'true':<4} {'skew':>6}/{'true':<6} {'prep s':>6} "
          f"{'ocr s':>6} dpi  flags  tags")
    for r in runs:
        print(f"{r.page.page_id:5} {100 * r.score.cer:6.2f} {100 * r.score.wer:6.2f} {r.rotation_cw:4}/"
              f"{r.page.rotation_cw:<4} {r.skew_deg:6.2f}/{r.page.skew_deg:<6} {r.seconds_prep:6.2f} "
              f"{r.seconds_ocr:6.2f} {r.dpi:4.0f} {','.join(r.flags)}  {','.join(r.page.tags)}")
    t = total([r.score for r in runs])
    print(f"ALL   CER {100 * t.cer:.2f} %  WER {100 * t.wer:.2f} %  ({t.char_errors}/{t.chars} chars, "
          f"{t.word_errors}/{t.words} words)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
