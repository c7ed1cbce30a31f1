"""OCR stage benchmark: this project vs raw Tesseract vs OCRmyPDF 17, on the same files in one run.

    .venv/bin/python -m bench.ocr_bench [CORPUS] [--no-ablation] [--out bench/results/ocr.md]

(a) project: ``digitize.ocr.recognize.make_searchable_pdf`` per file, two files at a time (one Tesseract each);
(b) raw ``tesseract FILE - -l vie``, two processes (image-only PDFs: their stored images, extracted first);
(c) ``ocrmypdf -l vie --rotate-pages --deskew --output-type pdfa --jobs 1``, two files at a time.
The PDFs of (a) and (c) are scored on ``pdftotext -layout -f N -l N`` one page at a time; (b) on its text
output (pages split at form feeds). A refused file counts as 100 % errors for each of its pages. Then each
preprocessing step is switched off in turn (ablation, through the project's pipeline). Peak memory is the
largest sum of resident memory of this process's children, sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import psutil

from bench.corpus import DEFAULT_CORPUS, CorpusPage, load_images, load_manifest
from bench.score import Score, refused, score, total
from digitize.ocr.cleanup import PreprocessOptions, prepare_page
from digitize.ocr.recognize import OcrOptions, make_searchable_pdf
from digitize.ocr.tesseract import tesseract_version

ROOT = Path(__file__).resolve().parent.parent
OCRMYPDF = str(Path(sys.executable).with_name("ocrmypdf"))
ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}
JOBS = 2
ABLATION = ("orientation", "deskew", "perspective", "normalize_background", "despeckle", "remove_borders",
            "binarize")


@dataclass
class SystemRun:
    """Outcome of one system on the corpus."""

    name: str
    seconds: float
    peak_rss: int
    texts: dict[str, str | None]  # page_id -> text, None = file refused
    notes: list[str] = dataclasses.field(default_factory=list)

    def scores(self, pages: Sequence[CorpusPage]) -> dict[str, Score]:
        return {p.page_id: (refused(p.truth) if self.texts.get(p.page_id) is None
                            else score(self.texts[p.page_id] or "", p.truth)) for p in pages}


class PeakMemory:
    """Largest total RSS of all descendants of this process while the block runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a child may end while we look
                    rss += child.memory_info().rss
            self.peak = max(self.peak, rss)
            self._stop.wait(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pdf_page_texts(pdf: Path) -> list[str]:
    """``pdftotext -layout`` of each page, one call per page (as the acceptance check does)."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    n = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    return [subprocess.run(["pdftotext", "-layout", "-f", str(i), "-l", str(i), str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout for i in range(1, n + 1)]


def _by_file(pages: Sequence[CorpusPage]) -> dict[str, list[CorpusPage]]:
    files: dict[str, list[CorpusPage]] = {}
    for p in pages:
        files.setdefault(p.file, []).append(p)
    return files


def _project_file(src: Path, out: Path, preprocess: PreprocessOptions) -> list[str] | str:
    """Page texts of the project's PDF, or the refusal reason."""
    from digitize.errors import InputError

    try:
        make_searchable_pdf([src], out, OcrOptions(jobs=1, preprocess=preprocess))
    except InputError as exc:
        return exc.reason
    return pdf_page_texts(out)


def run_project(corpus: Path, pages: Sequence[CorpusPage], work: Path,
                preprocess: PreprocessOptions | None = None, name: str = "project") -> SystemRun:
    files = _by_file(pages)
    prep = preprocess or PreprocessOptions()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with PeakMemory() as mem, ProcessPoolExecutor(JOBS) as pool:
        futures = {f: pool.submit(_project_file, corpus / f, work / f"{Path(f).stem}.pdf", prep) for f in files}
        outcomes = {f: fut.result() for f, fut in futures.items()}
    return _collect(name, time.perf_counter() - t0, mem.peak, files, outcomes)


def _collect(name: str, seconds: float, peak: int, files: dict[str, list[CorpusPage]],
             outcomes: dict[str, list[str] | str]) -> SystemRun:
    run = SystemRun(name, seconds, peak, {})
    for f, out in outcomes.items():
        if isinstance(out, str):
            run.notes.append(f"{f} refused: {out}")
            out = []
        for p in files[f]:
            run.texts[p.page_id] = out[p.index_in_file] if p.index_in_file < len(out) else None
    return run


def _raw_tesseract(src: Path) -> list[str] | str:
    done = subprocess.run(["tesseract", str(src), "-", "-l", "vie"], capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "tesseract failed"
    parts = done.stdout.split("\f")  # tesseract ends every page with a form feed
    return parts[:-1] if len(parts) > 1 and not parts[-1].strip() else parts


def run_raw(corpus: Path, pages: Sequence[CorpusPage], work: Path) -> SystemRun:
    files = _by_file(pages)
    inputs: dict[str, list[Path]] = {}
    for f in files:  # tesseract cannot read PDFs: give it the stored page images
        if f.lower().endswith(".pdf"):
            inputs[f] = []
            for i, (img, _) in enumerate(load_images(corpus / f)):
                path = work / f"{Path(f).stem}-{i}.png"
                cv2.imwrite(str(path), img)
                inputs[f].append(path)
        else:
            inputs[f] = [corpus / f]
    jobs = [(f, p) for f, paths in inputs.items() for p in paths]
    t0 = time.perf_counter()
    with PeakMemory() as mem, ThreadPoolExecutor(JOBS) as pool:
        results = list(pool.map(lambda job: _raw_tesseract(job[1]), jobs))
    outcomes: dict[str, list[str] | str] = {}
    for (f, _), res in zip(jobs, results, strict=True):
        prev = outcomes.setdefault(f, [])
        if isinstance(res, str):
            outcomes[f] = res
        elif isinstance(prev, list):
            prev.extend(res)
    return _collect("raw tesseract", time.perf_counter() - t0, mem.peak, files, outcomes)


def _ocrmypdf(src: Path, out: Path) -> list[str] | str:
    done = subprocess.run([OCRMYPDF, "-l", "vie", "--rotate-pages", "--deskew", "--output-type", "pdfa", "--jobs",
                           "1", str(src), str(out)], capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()]
        return f"exit {done.returncode}: {last[-1][:120] if last else ''}"
    return pdf_page_texts(out)


def run_ocrmypdf(corpus: Path, pages: Sequence[CorpusPage], work: Path) -> SystemRun:
    files = _by_file(pages)
    t0 = time.perf_counter()
    with PeakMemory() as mem, ThreadPoolExecutor(JOBS) as pool:
        futures = {f: pool.submit(_ocrmypdf, corpus / f, work / f"{Path(f).stem}.ocrmypdf.pdf") for f in files}
        outcomes = {f: fut.result() for f, fut in futures.items()}
    return _collect("OCRmyPDF 17", time.perf_counter() - t0, mem.peak, files, outcomes)


def preprocess_cpu(corpus: Path, pages: Sequence[CorpusPage]) -> list[tuple[str, float, int, tuple[str, ...]]]:
    """CPU seconds of ``prepare_page`` per page (best of 3, OSD answered instantly and counted apart)."""
    rows = []
    for p in pages:
        img, dpi = load_images(corpus / p.file)[p.index_in_file]
        osd_calls = 0

        def osd(_: np.ndarray) -> tuple[int, float]:
            nonlocal osd_calls
            osd_calls += 1
            return 0, 0.0

        best = float("inf")
        prepared = None
        for _ in range(3):
            osd_calls = 0
            t0 = time.process_time()
            prepared = prepare_page(img, dpi, PreprocessOptions(), osd)
            best = min(best, time.process_time() - t0)
        assert prepared is not None
        rows.append((p.page_id, best, osd_calls, prepared.steps))
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {mem:.1f} GiB RAM, {platform.system()} {platform.release()}"


def report(corpus: Path, pages: Sequence[CorpusPage], runs: Sequence[SystemRun],
           ablation: Sequence[tuple[str, SystemRun]], prep: Sequence[tuple[str, float, int, tuple[str, ...]]]) -> str:
    n = len(pages)
    ocrmypdf = next((r for r in runs if r.name.startswith("OCRmyPDF")), None)
    ref_rate = n / ocrmypdf.seconds * 60 if ocrmypdf else None
    out = [
        "# OCR stage benchmark",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}; load average at the end: {os.getloadavg()[0]:.2f}",
        f"- project: Tesseract {tesseract_version()} (tesserocr, one helper per process); raw tesseract and "
        f"OCRmyPDF: the {subprocess.run(['tesseract', '--version'], capture_output=True, text=True).stdout.split()[1]} "
        "CLI; `vie` fast model; OCRmyPDF "
        f"{subprocess.run([OCRMYPDF, '--version'], capture_output=True, text=True).stdout.strip()}, "
        f"Python {platform.python_version()}",
        f"- corpus: `{corpus}` ({n} pages, {sum(len(p.truth) for p in pages)} ground-truth characters)",
        f"- command: `.venv/bin/python -m bench.ocr_bench {' '.join(sys.argv[1:])}`",
        "- CER/WER: Levenshtein after NFC and whitespace collapsing (bench/score.py), summed over pages; project "
        "and OCRmyPDF scored on `pdftotext -layout` of their PDF page by page, raw Tesseract on its text output. "
        "A refused file counts as 100 % errors on its pages. Two jobs at once for every system (2 cores).",
        "",
        "## Overall",
        "",
        "| system | CER % | WER % | pages/min | × OCRmyPDF | peak RSS MiB | refused |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        t = total(list(r.scores(pages).values()))
        rate = n / r.seconds * 60
        ratio = f"{rate / ref_rate:.2f}" if ref_rate else "-"
        out.append(f"| {r.name} | {_pct(t.cer)} | {_pct(t.wer)} | {rate:.1f} | {ratio} | {r.peak_rss / 2**20:.0f} | "
                   f"{'; '.join(r.notes) or 'none'} |")
    tags = sorted({t for p in pages for t in p.tags})
    out += ["", "## By degradation tag (CER % / WER %)", "",
            "| tag | pages | " + " | ".join(r.name for r in runs) + " |",
            "|---|---:|" + "---|" * len(runs)]
    for tag in tags:
        sel = [p for p in pages if tag in p.tags]
        cells = []
        for r in runs:
            sc = r.scores(sel)
            if tag == "blank":
                invented = sum(s.char_errors for s in sc.values())
                cells.append(f"{invented} chars invented")
            else:
                t = total(list(sc.values()))
                cells.append(f"{_pct(t.cer)} / {_pct(t.wer)}")
        out.append(f"| {tag} | {len(sel)} | " + " | ".join(cells) + " |")
    out += ["", "## By page (CER % / WER %)", "", "| page | file | tags | " + " | ".join(r.name for r in runs) + " |",
            "|---|---|---|" + "---|" * len(runs)]
    all_scores = [r.scores(pages) for r in runs]
    for p in pages:
        cells = [f"{_pct(s[p.page_id].cer)} / {_pct(s[p.page_id].wer)}" if p.truth.strip()
                 else f"{s[p.page_id].char_errors} chars" for s in all_scores]
        out.append(f"| {p.page_id} | {p.file} | {', '.join(p.tags)} | " + " | ".join(cells) + " |")
    if ablation:
        base = total(list(runs[0].scores(pages).values()))
        out += ["", "## Preprocessing ablation (project pipeline, one step off at a time)", "",
                "| step switched off | CER % | WER % | ΔCER points | ΔWER points | pages/min |",
                "|---|---:|---:|---:|---:|---:|",
                f"| none (all steps) | {_pct(base.cer)} | {_pct(base.wer)} | 0 | 0 | {n / runs[0].seconds * 60:.1f} |"]
        for step, r in ablation:
            t = total(list(r.scores(pages).values()))
            out.append(f"| {step} | {_pct(t.cer)} | {_pct(t.wer)} | {_pct(t.cer - base.cer)} | "
                       f"{_pct(t.wer - base.wer)} | {n / r.seconds * 60:.1f} |" + (f" {'; '.join(r.notes)}"
                                                                                   if r.notes else ""))
    if prep:
        times = sorted(t for _, t, _, _ in prep)
        out += ["", "## Preprocessing cost (`prepare_page`, CPU seconds per page, best of 3, one thread)", "",
                f"Median {times[len(times) // 2]:.3f} s, max {times[-1]:.3f} s; Tesseract OSD (~0.7 s) was needed on "
                f"{sum(1 for _, _, n, _ in prep if n)} of {len(prep)} pages (not included).", "",
                "| page | CPU s | OSD calls | steps |", "|---|---:|---:|---|"]
        out += [f"| {pid} | {t:.3f} | {n} | {', '.join(steps)} |" for pid, t, n, steps in prep]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--no-ablation", action="store_true", help="skip switching each preprocessing step off")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ocr.md")
    parser.add_argument("--keep", type=Path, help="keep the output PDFs in this folder")
    args = parser.parse_args(argv)
    if shutil.which("pdftotext") is None:
        parser.error("pdftotext (poppler-utils) is needed")
    pages = load_manifest(args.corpus)
    tmp = tempfile.TemporaryDirectory()
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    steps: list[tuple[str, Callable[[], SystemRun]]] = [
        ("project", lambda: run_project(args.corpus, pages, work / "project")),
        ("raw", lambda: run_raw(args.corpus, pages, work)),
        ("ocrmypdf", lambda: run_ocrmypdf(args.corpus, pages, work)),
    ]
    runs = []
    for label, step in steps:
        print(f"running {label} ...", file=sys.stderr, flush=True)
        runs.append(step())
        print(f"  {runs[-1].seconds:.1f} s", file=sys.stderr, flush=True)
    ablation = []
    if not args.no_ablation:
        for name in ABLATION:
            print(f"ablation: {name} off ...", file=sys.stderr, flush=True)
            prep = dataclasses.replace(PreprocessOptions(), **{name: False})  # type: ignore[arg-type]
            ablation.append((name, run_project(args.corpus, pages, work / f"off-{name}", prep, f"without {name}")))
    print("preprocessing cost ...", file=sys.stderr, flush=True)
    text = report(args.corpus, pages, runs, ablation, preprocess_cpu(args.corpus, pages))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
