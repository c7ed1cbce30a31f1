"""Tesseract OCR of scanned pages and the searchable PDF/A of one document (the only module running Tesseract).

For every page: load it (:mod:`digitize.intake.pages`), prepare it (:func:`digitize.ocr.cleanup.prepare_page`:
orientation, deskew, cleaning, blank check), OCR the prepared image unless it is blank, map each
word box back to the stored image through the page's inverse transform, and add the page to the
PDF (:mod:`digitize.ocr.pdfa`) with the stored image untouched and the text invisible on top.

Pages of one document run ``OcrOptions.jobs`` at a time, each driving one single-thread Tesseract
helper (``OMP_THREAD_LIMIT=1``): more threads than cores makes OCR many times slower. At most
``2 × jobs`` pages are in flight, so a 300-page TIFF never needs 300 page images in memory; results
come back in page order. The pages run in threads, not worker processes: the heavy work happens in
Tesseract's own process and in OpenCV/numpy/PIL, which release the GIL, while a process pool would
need pickling, a start-up per document, a ``__main__`` guard in every caller, and cannot start at
all inside daemonic workers (Celery's prefork pool).

The engine is a plugin's (:mod:`digitize.ocr.engine`): Tesseract, the built-in plugin registered
here, unless ``DIGITIZE_PLUGINS`` brings another. Tesseract is loaded once per helper process and fed
the page's grey pixels (:mod:`digitize.ocr.tesseract`), not started per page as a CLI.
"""

from __future__ import annotations

import contextvars
import dataclasses
import subprocess
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pikepdf

from digitize.checksums import content_key
from digitize.errors import OcrFailed
from digitize.intake import PageInfo, PageLimits, encode_for_pdf, load_image, scan_document, stored_gray
from digitize.ocr import tesseract
from digitize.ocr.cleanup import PreparedPage, PreprocessOptions, prepare_page
from digitize.ocr.engine import OcrEngine, ocr_engine
from digitize.ocr.pdfa import DocumentMetadata, PdfPage, SearchablePdfWriter, page_can_be_copied
from digitize.ocr.placement import display_deskew, group_rows, map_words
from digitize.plugin_manager import register_builtin
from digitize.pluginspec import hookimpl
from digitize.stageclock import stage, waiting

OSD_TIMEOUT_SECONDS = 60.0
OSD_RETRY_BELOW = 3.0
"""OSD confidence below which orientation is detected again on a lightly blurred copy."""

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class OcrOptions:
    """How one document is OCR'd."""

    language: str = "vie"
    """Tesseract language(s), e.g. ``vie`` or ``vie+eng``."""

    jobs: int = 1
    """Pages of one document OCR'd at once, each by one single-thread Tesseract process (keep ≤ cores)."""

    min_dpi: int = 200
    """Pages below this effective resolution are flagged LOW_RESOLUTION (Decree 30/2020 asks for 200)."""

    low_confidence: float = 70.0
    """Pages whose mean word confidence (0–100) is below this are flagged LOW_CONFIDENCE."""

    work_dir: Path | None = None
    """Scratch folder for temporary files (rasterised PDF pages, the PDF's spilled chunks; an engine from a plugin
    may use it too); ``None`` = system's."""

    page_timeout: float = 300.0
    """Seconds Tesseract may spend on one page before the document fails with OCR_FAILED."""

    psm: int = 3
    """Tesseract page segmentation mode (3 = automatic layout)."""

    limits: PageLimits = field(default_factory=PageLimits)
    """Largest page, most pages and most decoded bytes per stream and per document, checked before decoding."""

    title: str = ""
    """Title written to the PDF's metadata."""

    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)
    """Image preparation before OCR (``min_dpi`` above overrides its own)."""


@dataclass(frozen=True)
class PageResult:
    """What OCR found on one output page."""

    index: int
    """0-based position in the output PDF."""

    source_file: str
    """Name of the input file the page came from."""

    text: str
    """OCR text, NFC, one line per visual text row (side-by-side blocks share a row); '' for blank pages."""

    mean_confidence: float | None
    """Mean word confidence 0..100; ``None`` when not OCR'd (blank page, existing text layer)."""

    blank: bool
    """The page has no text and was not OCR'd."""

    dpi: float
    """Effective resolution (estimated when the file lies, e.g. a photo claiming 72 dpi)."""

    flags: tuple[str, ...]
    """Quality findings: LOW_RESOLUTION, LOW_CONFIDENCE, BLANK, PHOTO, DPI_ESTIMATED, NO_TEXT_FOUND, TEXT_LAYER
    (existing text kept), TEXT_LAYER_REPLACED (existing text not PDF/A-safe: page rendered and OCR'd), …"""

    word_count: int = 0
    """Words recognised (weights the document's mean confidence)."""

    rotation_cw: int = 0
    """How far the stored image is turned clockwise (the PDF page's /Rotate undoes it)."""

    skew_deg: float = 0.0
    """Skew corrected before OCR, degrees."""

    steps: tuple[str, ...] = ()
    """Preparation steps applied (for events and benchmarks)."""


@dataclass(frozen=True)
class OcrResult:
    """The searchable PDF of one document and what OCR found on each page."""

    pdf_path: Path
    """Searchable PDF/A-2b written here."""

    pages: tuple[PageResult, ...]
    """One entry per output page, in order."""

    tool_versions: Mapping[str, str]
    """Versions of the tools that made the file (tesseract, opencv, pikepdf, language data)."""

    page_one_gray: Mapping[bytes, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    """Page 1's stored image as gray samples, keyed by :func:`~digitize.checksums.content_key` of its stream's
    bytes, when the page decoded to them losslessly (:func:`~digitize.intake.stored_gray`): signing in this
    process finds the stamp's place without decoding that stream again. Empty otherwise, and never staged."""

    @property
    def mean_confidence(self) -> float | None:
        """Mean word confidence over all OCR'd pages, weighted by their word counts."""
        scored = [(p.mean_confidence, p.word_count) for p in self.pages if p.mean_confidence is not None]
        words = sum(n for _, n in scored)
        if not scored:
            return None
        if words == 0:
            return sum(c for c, _ in scored) / len(scored)
        return sum(c * n for c, n in scored) / words

    @property
    def text(self) -> str:
        """Text of all pages, pages separated by form feeds."""
        return "\n\f".join(p.text for p in self.pages)


@dataclass(frozen=True)
class OcrWord:
    """One word as Tesseract found it on the image it was given."""

    text: str
    """The word, NFC."""

    confidence: float
    """0..100."""

    box: tuple[int, int, int, int]
    """left, top, right, bottom in pixels of the OCR image."""

    line_box: tuple[int, int, int, int]
    """Box of the word's text line (the text layer uses its height for every word of the line)."""


@dataclass(frozen=True)
class OcrText:
    """Tesseract's reading of one image."""

    words: tuple[OcrWord, ...]
    """Recognised words in reading order."""

    text: str
    """NFC text, one line per visual row."""

    @property
    def mean_confidence(self) -> float | None:
        """Mean word confidence, ``None`` when no word was found."""
        return sum(w.confidence for w in self.words) / len(self.words) if self.words else None


# --- Tesseract -------------------------------------------------------------------------------------


def recognize(image: np.ndarray, *, dpi: float, language: str = "vie", psm: int = 3, timeout: float = 300.0,
              work_dir: Path | None = None) -> OcrText:
    """OCR one image (gray or BGR) with the engine the plugins chose; words with boxes and confidences."""
    return ocr_engine().recognize(image, dpi=dpi, language=language, psm=psm, timeout=timeout, work_dir=work_dir)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def parse_tsv(tsv: str) -> OcrText:
    """Words and visual rows from Tesseract's TSV output."""
    lines: dict[tuple[int, int, int], tuple[int, int, int, int]] = {}
    words: list[tuple[tuple[int, int, int], str, float, tuple[int, int, int, int]]] = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12:
            continue
        level = int(cols[0])
        key = (int(cols[2]), int(cols[3]), int(cols[4]))
        left, top, width, height = (int(v) for v in cols[6:10])
        box = (left, top, left + width, top + height)
        if level == 4:
            lines[key] = box
        elif level == 5:
            text = unicodedata.normalize("NFC", cols[11]).strip()
            conf = float(cols[10])
            if text and conf >= 0:
                words.append((key, text, conf, box))
    ocr_words = tuple(OcrWord(text, conf, box, lines.get(key, box)) for key, text, conf, box in words)
    return OcrText(ocr_words, _visual_rows(ocr_words))


def _visual_rows(words: Sequence[OcrWord]) -> str:
    """Text with one line per visual row, the parts of a row left to right."""
    return "\n".join(" ".join(w.text for line in row for w in line) for row in group_rows(words))


def detect_orientation(image: np.ndarray, *, dpi: float = 150.0) -> tuple[int, float]:
    """(How far the content is turned clockwise: 0/90/180/270, confidence) by the engine the plugins chose."""
    with stage("orientation"):  # the cheap test before it counts as clean-up
        return ocr_engine().orientation(image, dpi=dpi)


def _tesseract_orientation(image: np.ndarray, *, dpi: float) -> tuple[int, float]:
    """Tesseract OSD: (how far the content is turned clockwise: 0/90/180/270, confidence); (0, 0.0) if unsure.

    A page with too little text makes OSD give up: that is an answer of no confidence, not an error, and
    so is a helper that fails on it. Thin, broken strokes (a bilevel scan shrunk for analysis) make OSD
    unsure although the page is plain text: below :data:`OSD_RETRY_BELOW` it looks again at a lightly
    blurred copy and keeps the more confident answer (measured: 0.2 → 7 on a G4 page turned upside down).
    """
    rotation, confidence = _osd(image, dpi)
    if confidence < OSD_RETRY_BELOW:
        retry = _osd(cv2.GaussianBlur(image, (3, 3), 0), dpi)
        if retry[1] > confidence:
            return retry
    return rotation, confidence


def _osd(image: np.ndarray, dpi: float) -> tuple[int, float]:
    try:
        return tesseract.orientation(_gray(image), dpi=dpi, timeout=OSD_TIMEOUT_SECONDS)
    except OcrFailed:
        return 0, 0.0


# --- the built-in engine: Tesseract, unless a plugin supplies another ------------------------------


class TesseractEngine:
    """The built-in engine: Tesseract loaded once in a helper process (:mod:`digitize.ocr.tesseract`)."""

    name = "tesseract"

    def version(self) -> str:
        return tesseract.tesseract_version()

    def recognize(self, image: np.ndarray, *, dpi: float, language: str, psm: int, timeout: float,
                  work_dir: Path | None) -> OcrText:
        return parse_tsv(tesseract.recognize_tsv(_gray(image), dpi=max(1.0, dpi), language=language, psm=psm,
                                                 timeout=timeout))

    def orientation(self, image: np.ndarray, *, dpi: float) -> tuple[int, float]:
        return _tesseract_orientation(image, dpi=dpi)


class _TesseractPlugin:
    """The built-in plugin: answers ``get_ocr_engine`` last, so an engine from any other plugin replaces it."""

    engine = TesseractEngine()

    @hookimpl(trylast=True)
    def get_ocr_engine(self) -> OcrEngine:
        return self.engine


register_builtin(_TesseractPlugin(), name="digitize.ocr.tesseract")  # here, so plugin_manager never imports ocr


# --- one page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PageTask:
    position: int
    info: PageInfo
    options: OcrOptions


@dataclass(frozen=True)
class _PageOutcome:
    result: PageResult
    pdf_page: PdfPage
    page_one_gray: Mapping[bytes, np.ndarray] = field(default_factory=dict)
    """For the document's page 1: its gray samples by the key of its stored image (:attr:`OcrResult.page_one_gray`)."""


def _page_dpi(info: PageInfo, prepared: PreparedPage) -> tuple[float, float]:
    """Resolution for the PDF page size: the file's claim unless preprocessing had to estimate it."""
    claimed = info.dpi
    if "DPI_ESTIMATED" in prepared.flags or min(claimed) <= 0:
        return (prepared.effective_dpi, prepared.effective_dpi)
    return claimed


def _existing_text(info: PageInfo, options: OcrOptions) -> _PageOutcome:
    """A PDF page that already has text: keep it as it is and report its text (poppler's reading)."""
    page = str(info.index + 1)
    with stage("ocr"):
        done = subprocess.run(["pdftotext", "-f", page, "-l", page, "-enc", "UTF-8", str(info.source), "-"],
                              capture_output=True, timeout=options.page_timeout, check=False)
    lines = [ln.strip() for ln in done.stdout.decode("utf-8", "replace").replace("\f", "").splitlines()]
    text = unicodedata.normalize("NFC", "\n".join(ln for ln in lines if ln))
    result = PageResult(0, info.source.name, text, None, not text, min(info.dpi), ("TEXT_LAYER",))
    return _PageOutcome(result, PdfPage(None, info.dpi, copy_from=(info.source, info.index)))


def process_page(info: PageInfo, options: OcrOptions) -> tuple[PageResult, PdfPage]:
    """Load, prepare and OCR one page; what the PDF needs and what OCR found (``index`` is left at 0)."""
    outcome = _process(info, options)
    return outcome.result, outcome.pdf_page


def _process(info: PageInfo, options: OcrOptions, *, first: bool = False) -> _PageOutcome:
    extra_flags: tuple[str, ...] = ()
    if info.has_text_layer:
        if page_can_be_copied(info.source, info.index):
            return _existing_text(info, options)
        info = dataclasses.replace(info, has_text_layer=False)  # not PDF/A as it is: OCR its scan or rendering
        extra_flags = ("TEXT_LAYER_REPLACED",)
    with stage("load"):
        image = load_image(info)
    with stage("pdf"):
        encoded = encode_for_pdf(info, image=image)
        gray = stored_gray(encoded, image) if first else None
        known = {content_key(encoded.data): gray} if gray is not None else {}
    claimed = (info.dpi[0] + info.dpi[1]) / 2.0
    prep_options = dataclasses.replace(options.preprocess, min_dpi=float(options.min_dpi))
    with stage("cleanup"):
        prepared = prepare_page(image, claimed, prep_options, detect_orientation)
    del image
    ocr = OcrText((), "")
    if not prepared.blank:
        with stage("ocr"):
            ocr = recognize(prepared.ocr_image, dpi=prepared.ocr_dpi, language=options.language, psm=options.psm,
                            timeout=options.page_timeout, work_dir=options.work_dir)
    flags = [*prepared.flags, *extra_flags]
    confidence = ocr.mean_confidence
    if confidence is not None and confidence < options.low_confidence:
        flags.append("LOW_CONFIDENCE")
    if not prepared.blank and not ocr.words:
        flags.append("NO_TEXT_FOUND")
    result = PageResult(
        index=0,
        source_file=info.source.name,
        text=ocr.text,
        mean_confidence=confidence,
        blank=prepared.blank,
        dpi=prepared.effective_dpi,
        flags=tuple(flags),
        word_count=len(ocr.words),
        rotation_cw=prepared.rotation_cw,
        skew_deg=prepared.skew_deg,
        steps=prepared.steps,
    )
    deskew = display_deskew(prepared.to_original)
    with stage("pdf"):
        words = map_words(ocr.words, prepared.to_original, straighten=deskew is None)
    pdf_page = PdfPage(encoded, _page_dpi(info, prepared), (360 - prepared.rotation_cw) % 360, words,
                       deskew_deg=deskew or 0.0)
    return _PageOutcome(result, pdf_page, known)


def _run_task(task: _PageTask) -> _PageOutcome:
    outcome = _process(task.info, task.options, first=task.position == 0)
    return dataclasses.replace(outcome, result=dataclasses.replace(outcome.result, index=task.position))


# --- one document ----------------------------------------------------------------------------------


def _tasks(sources: Sequence[Path], options: OcrOptions) -> Iterator[_PageTask]:
    for position, info in enumerate(scan_document(sources, options.limits)):
        yield _PageTask(position, info, options)


def _ordered(pool: Executor | None, func: Callable[[_T], _R], items: Iterator[_T],
             window: int) -> Iterator[_R]:
    """``map`` with at most ``window`` items in flight, results in input order; in-process without a pool."""
    if pool is None:
        for item in items:
            yield func(item)
        return
    pending: deque[Future[_R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(contextvars.copy_context().run, func, item))  # stages are recorded
            if len(pending) >= window:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        for future in pending:
            future.cancel()


def _result(future: Future[_R]) -> _R:
    with waiting():  # the page's own stages are recorded in its thread
        return future.result()


def _pool(jobs: int) -> Executor | None:
    """Threads for the pages of one document; ``None`` (run in the caller's thread) for one job."""
    if jobs <= 1:
        return None
    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="digitize-ocr")


def tool_versions() -> dict[str, str]:
    """Versions recorded with every OCR result (PREMIS events, sidecar)."""
    engine = ocr_engine()
    return {
        engine.name: engine.version(),
        "opencv": cv2.__version__,
        "pikepdf": pikepdf.__version__,
        "qpdf": pikepdf.__libqpdf_version__,
    }


def make_searchable_pdf(sources: Sequence[Path], out_pdf: Path, options: OcrOptions) -> OcrResult:
    """OCR the files of ONE document (in order, each possibly multi-page) into one searchable PDF/A-2b.

    Bad input raises the :class:`~digitize.errors.InputError` subclasses (EmptyFile, UnsupportedFormat,
    CorruptFile, EncryptedPdf, AlreadySigned, ImageTooLarge, TooManyPages, DecodedTooLarge, PdfTooComplex,
    OcrFailed); ``out_pdf`` is then not written.
    """
    if not sources:
        raise ValueError("a document needs at least one file")
    versions = {**tool_versions(), "tesseract_language": options.language}
    jobs = max(1, options.jobs)
    results: list[PageResult] = []
    page_one_gray: Mapping[bytes, np.ndarray] = {}
    pool = _pool(jobs)
    try:
        with SearchablePdfWriter(out_pdf, DocumentMetadata(title=options.title), work_dir=options.work_dir) as writer:
            for outcome in _ordered(pool, _run_task, _tasks(sources, options), window=2 * jobs):
                with stage("pdf"):
                    writer.add_page(outcome.pdf_page)
                results.append(outcome.result)
                page_one_gray = page_one_gray or outcome.page_one_gray
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return OcrResult(out_pdf, tuple(results), versions, page_one_gray)
