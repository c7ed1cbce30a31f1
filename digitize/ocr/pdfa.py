"""Assemble a searchable PDF/A-2b: the original scan on each page, an invisible text layer on top.

Why not OCRmyPDF's renderer: OCRmyPDF 17 is not thread-safe, re-encodes JPEGs when it deskews and
its hOCR/fpdf renderers are internal modules (``ocrmypdf.hocrtransform``, ``ocrmypdf.fpdf_renderer``)
whose API changes between releases. What we need is small, so it is written here against pikepdf:

- each page shows the stored image unchanged (JPEG stays DCT, G4 stays CCITT, PNG keeps its zlib
  stream; a JPEG that deflates by 1 % or more is stored deflated, its bytes intact inside, as
  OCRmyPDF's ``--optimize 1`` does: 13 % smaller for a 300 dpi A4 text page written with standard
  Huffman tables, 0.2-3 % on the corpus's JPEGs, ~30 ms of CPU per A4 page); the page size comes
  from the effective dpi, and a quarter-turned or skewed scan is shown upright and straight by
  turning the image in its placement matrix, the page growing to hold it (the pixels are never
  resampled: OCRmyPDF re-encodes the JPEGs it deskews). Quarter turns are not left to the page's
  ``/Rotate``: viewers turn annotations with the page, so the visible signature stamp that Decree
  30/2020 puts at the top right of page 1 would come out sideways or upside down in the wrong
  corner; with the turn in the matrix the page *is* upright;
- the text layer uses Tesseract's own "glyphless font" idea: a tiny embedded TrueType font whose
  one empty glyph every character code maps to, with code = UTF-16 code unit and an identity
  ToUnicode CMap, so any Vietnamese text extracts exactly as Tesseract read it (text render mode 3,
  invisible; PDF/A does not require glyphs for text that is never rendered);
- each word gets its own text matrix, built from three points of its box mapped back into the
  stored image (baseline start and end, top), so the word's width matches its box whatever the
  rotation, skew or scale between the OCR image and the stored one;
- PDF/A-2b conformance (XMP with ``pdfaid``, sRGB output intent, no encryption or transparency)
  is declared and then *validated on the bytes written* by ``pikepdf.pdfa.save``: a file that
  does not pass is never left at the destination.
"""

from __future__ import annotations

import io
import math
import subprocess
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType

import numpy as np
import pikepdf
import pikepdf.pdfa
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

from digitize import __version__
from digitize.errors import PdfaInvalid
from digitize.intake import EncodedImage

FLAVOUR = "2b"
"""PDF/A part 2, conformance level B (visual appearance), as Decree 30/2020 practice expects."""

CHUNK_PAGES = 32
"""Pages held in memory by :class:`SearchablePdfWriter` before they are spooled to a scratch file."""

_FONT_NAME = "GlyphLessFont"
_GLYPH_ADVANCE = 500  # font units (1000 per em): every character is half an em wide
_PRODUCER = f"digitize {__version__} (pikepdf {pikepdf.__version__})"


@dataclass(frozen=True)
class TextWord:
    """One recognised word placed on the stored image: three points in its pixel coordinates."""

    text: str
    """The word, NFC."""

    origin: tuple[float, float]
    """Start of the word's baseline (x, y), stored-image pixels, y down."""

    end: tuple[float, float]
    """End of the word's baseline."""

    top: tuple[float, float]
    """The point one line height above :attr:`origin` (sets the text height and its up direction)."""


@dataclass(frozen=True)
class PdfPage:
    """Everything one output page needs."""

    image: EncodedImage | None
    """Stored image drawn over the whole page; ``None`` only with :attr:`copy_from`."""

    dpi: tuple[float, float]
    """Resolution (x, y) used for the page size: width in points = pixels × 72 / dpi."""

    rotate: int = 0
    """Quarter turn (0/90/180/270, clockwise on display) that shows the scan upright; applied in the
    placement matrix, so the written page is upright with no ``/Rotate``."""

    words: tuple[TextWord, ...] = ()
    """Invisible text layer."""

    copy_from: tuple[Path, int] | None = None
    """(PDF, 0-based page) to copy as it is: a page that already has a text layer."""

    deskew_deg: float = 0.0
    """Show the image turned by this angle (degrees, counter-clockwise as seen, about its centre) so a
    skewed scan displays straight without touching its pixels; the page grows to hold the turned image,
    and the words (given in stored-image pixels) are turned with it."""


@dataclass(frozen=True)
class DocumentMetadata:
    """Descriptive metadata written to XMP and the document information dictionary."""

    title: str = ""
    """dc:title / /Title."""

    subject: str = ""
    """dc:description / /Subject; the pipeline puts the document code here."""

    keywords: str = ""
    """pdf:Keywords / /Keywords."""

    identifier: str = ""
    """dc:identifier: the uniform document code once assigned."""

    author: str = ""
    """dc:creator / /Author: the agency that holds the document."""

    language: str = "vi-VN"
    """dc:language and the catalog's /Lang."""


@dataclass(frozen=True)
class PdfaCheck:
    """Result of validating a file against PDF/A-2b with pikepdf's validator."""

    passed: bool
    """True when no violation and nothing unchecked was found."""

    findings: tuple[str, ...] = field(default_factory=tuple)
    """One line per finding: rule, where, message."""


class SearchablePdfWriter:
    """Collect pages (in order) and write the PDF/A file on :meth:`close`; use it as a context manager.

    Long documents do not pile up in memory: every ``chunk_pages`` pages are saved to a scratch file,
    the scratch files are merged by qpdf, and the PDF/A file is written from the merged file, its
    image data read from disk as it is written.
    """

    def __init__(self, out_pdf: Path, metadata: DocumentMetadata | None = None, *, work_dir: Path | None = None,
                 chunk_pages: int = CHUNK_PAGES) -> None:
        self.out_pdf = out_pdf
        self.metadata = metadata or DocumentMetadata()
        self._work_dir = work_dir
        self._chunk_pages = max(1, chunk_pages)
        self._spool: tempfile.TemporaryDirectory[str] | None = None
        self._chunks: list[Path] = []
        self._open: list[pikepdf.Pdf] = []  # sources of copied pages, chunks being assembled
        self._pdf = pikepdf.new()
        self._font = _glyphless_font(self._pdf)
        self._closed = False

    def add_page(self, page: PdfPage) -> None:
        """Append one page; the image bytes are embedded as they are."""
        if page.copy_from is not None:
            source = pikepdf.open(page.copy_from[0])
            self._open.append(source)
            self._pdf.pages.append(source.pages[page.copy_from[1]])
        elif page.image is None:
            raise ValueError("a page needs an image or a page to copy")
        else:
            self._pdf.pages.append(self._image_page(page, page.image))
        if len(self._pdf.pages) >= self._chunk_pages:
            self._spill()

    def close(self) -> None:
        """Declare PDF/A-2b, write the file and validate the bytes written (nothing is left on failure)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._chunks:
                if len(self._pdf.pages):
                    self._spill()
                self._pdf.close()
                self._pdf = pikepdf.open(self._merge_chunks())
            _write_metadata(self._pdf, self.metadata, created=True)
            _save_validated(self._pdf, self.out_pdf)
        finally:
            self._release()

    def abort(self) -> None:
        """Drop everything collected; nothing is written."""
        self._closed = True
        self._release()

    def __enter__(self) -> SearchablePdfWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _image_page(self, page: PdfPage, image: EncodedImage) -> pikepdf.Page:
        to_pdf, width_pt, height_pt = _placement(image.width, image.height, page.dpi, page.deskew_deg)
        to_pdf, width_pt, height_pt = _quarter_turn(page.rotate, width_pt, height_pt) @ to_pdf, *(
            (height_pt, width_pt) if page.rotate % 180 else (width_pt, height_pt))
        # the unit square of the image (PDF's image space, y up) -> stored-image pixels -> page points
        unit_to_pixels = np.array([[image.width, 0.0, 0.0], [0.0, -image.height, image.height], [0.0, 0.0, 1.0]])
        m = to_pdf @ unit_to_pixels
        xobject = _image_xobject(self._pdf, image)
        cm = " ".join(_num(v) for v in (m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]))
        content = [f"q {cm} cm /Im0 Do Q"]
        if page.words:
            content.append(_text_layer(page.words, to_pdf))
        stream = pikepdf.Stream(self._pdf, "\n".join(content).encode("ascii"))
        resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=xobject))
        if page.words:
            resources.Font = pikepdf.Dictionary(F1=self._font)
        page_dict = pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, _dec(width_pt), _dec(height_pt)],
            Resources=resources,
            Contents=self._pdf.make_indirect(stream),
        )
        return pikepdf.Page(page_dict)

    def _spill(self) -> None:
        """Save the pages collected so far to a scratch file and start a new chunk."""
        if self._spool is None:
            self._spool = tempfile.TemporaryDirectory(prefix="digitize-pdf-", dir=self._work_dir)
        path = Path(self._spool.name) / f"chunk-{len(self._chunks):05d}.pdf"
        self._pdf.save(path)
        self._chunks.append(path)
        self._pdf.close()
        for source in self._open:
            source.close()
        self._open = []
        self._pdf = pikepdf.new()
        self._font = _glyphless_font(self._pdf)

    def _merge_chunks(self) -> Path:
        """One file from the chunks, by the qpdf tool: pikepdf copies page data between files into memory
        (measured: 150 MB for 300 scanned pages), qpdf streams it (17 MB)."""
        assert self._spool is not None
        merged = Path(self._spool.name) / "merged.pdf"
        cmd = ["qpdf", "--empty", "--pages", *(str(c) for c in self._chunks), "--", str(merged)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 3):  # 3 = warnings only
            raise PdfaInvalid(f"qpdf could not merge the spooled pages: {done.stderr.strip()[:300]}")
        return merged

    def _release(self) -> None:
        self._pdf.close()
        for source in self._open:
            source.close()
        self._open = []
        if self._spool is not None:
            self._spool.cleanup()
            self._spool = None


def write_searchable_pdf(pages: Iterable[PdfPage], out_pdf: Path, metadata: DocumentMetadata | None = None, *,
                         work_dir: Path | None = None) -> None:
    """Write ``pages`` as one searchable PDF/A-2b file."""
    with SearchablePdfWriter(out_pdf, metadata, work_dir=work_dir) as writer:
        for page in pages:
            writer.add_page(page)


def set_document_metadata(pdf_path: Path, *, title: str, document_code: str, agency_code: str) -> None:
    """Store the title and the uniform document code in XMP and /Info, keeping the file PDF/A-2b valid.

    The code goes to dc:identifier and /Subject, the code and agency to /Keywords, the agency to
    dc:creator. Run before signing: the file is rewritten (a signature would be invalidated).
    """
    metadata = DocumentMetadata(
        title=title,
        subject=document_code,
        keywords=f"{document_code}, {agency_code}",
        identifier=document_code,
        author=agency_code,
    )
    with pikepdf.open(pdf_path, allow_overwriting_input=True) as pdf:
        _write_metadata(pdf, metadata, created=False)
        _save_validated(pdf, pdf_path)


def _save_validated(pdf: pikepdf.Pdf, out_pdf: Path) -> None:
    """Save as PDF/A-2b and validate the bytes written; a failure leaves no file and says why."""
    try:
        pikepdf.pdfa.save(pdf, out_pdf, FLAVOUR, output_intent="sRGB")
    except pikepdf.pdfa.PdfaError as exc:
        findings = "; ".join(f"{f.rule} {f.where}: {f.message}" for f in exc.report.findings[:3])
        raise PdfaInvalid(f"{out_pdf.name} is not valid PDF/A-2b: {findings}") from exc


def check_pdfa(pdf_path: Path) -> PdfaCheck:
    """Validate a written file against PDF/A-2b (pikepdf's allowlist validator, veraPDF rule ids)."""
    report = pikepdf.pdfa.validate_written(pdf_path, FLAVOUR)
    findings = tuple(f"{f.rule} {f.where}: {f.message}" for f in report.findings)
    return PdfaCheck(passed=bool(report.passed), findings=findings)


def page_can_be_copied(pdf_path: Path, index: int) -> bool:
    """True when the page, copied as it is into a new file, passes PDF/A-2b (embedded fonts, no transparency…).

    Pages that already carry text are copied rather than re-OCR'd; the ones that would break the
    archive's PDF/A conformance are rasterised and OCR'd instead.
    """
    with pikepdf.open(pdf_path) as source, pikepdf.new() as trial:
        trial.pages.append(source.pages[index])
        pikepdf.pdfa.prepare(trial, FLAVOUR, output_intent="sRGB")
        return bool(pikepdf.pdfa.check(trial, FLAVOUR).passed)


# --- text layer ------------------------------------------------------------------------------------


def _placement(width: int, height: int, dpi: tuple[float, float], deskew_deg: float) -> tuple[np.ndarray, float, float]:
    """Affine map (3x3) from stored-image pixels (y down) to page points (y up), and the page size.

    Without deskew the page is the image at its dpi. With it, the image is turned about its centre
    and the page is the bounding box of the turned image, so nothing of the scan is cut off.
    """
    scale = np.diag([72.0 / dpi[0], 72.0 / dpi[1], 1.0])
    angle = math.radians(deskew_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    # counter-clockwise as seen on a y-down grid, about the centre (in points, so dpi x != y stays right)
    turn = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    centre = scale @ np.array([cx, cy, 1.0])
    to_turned = (np.array([[1.0, 0.0, centre[0]], [0.0, 1.0, centre[1]], [0.0, 0.0, 1.0]]) @ turn
                 @ np.array([[1.0, 0.0, -centre[0]], [0.0, 1.0, -centre[1]], [0.0, 0.0, 1.0]]) @ scale)
    corners = to_turned @ np.array([[0.0, width, width, 0.0], [0.0, 0.0, height, height], [1.0, 1.0, 1.0, 1.0]])
    x_min, y_min = corners[0].min(), corners[1].min()
    width_pt, height_pt = corners[0].max() - x_min, corners[1].max() - y_min
    if abs(deskew_deg) < 1e-9:  # exact page size, no rounding noise
        width_pt, height_pt = width * 72.0 / dpi[0], height * 72.0 / dpi[1]
        x_min = y_min = 0.0
    flip = np.array([[1.0, 0.0, -x_min], [0.0, -1.0, height_pt + y_min], [0.0, 0.0, 1.0]])
    return flip @ to_turned, float(width_pt), float(height_pt)


def _quarter_turn(rotate: int, width_pt: float, height_pt: float) -> np.ndarray:
    """Map points of a ``width_pt`` × ``height_pt`` page to the same page turned ``rotate``° clockwise."""
    turns = {
        0: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        90: [[0.0, 1.0, 0.0], [-1.0, 0.0, width_pt]],
        180: [[-1.0, 0.0, width_pt], [0.0, -1.0, height_pt]],
        270: [[0.0, -1.0, height_pt], [1.0, 0.0, 0.0]],
    }
    return np.array([*turns[rotate % 360], [0.0, 0.0, 1.0]])


def _text_layer(words: Iterable[TextWord], to_pdf: np.ndarray) -> str:
    """``BT … ET`` with one text matrix per word: invisible (3 Tr), font size 1, width fitted to the box."""
    out = ["BT", "3 Tr", "/F1 1 Tf"]
    for word in words:
        codes = _utf16_codes(word.text)
        if not codes:
            continue
        points = to_pdf @ np.array([[word.origin[0], word.end[0], word.top[0]],
                                    [word.origin[1], word.end[1], word.top[1]], [1.0, 1.0, 1.0]])
        (ox, ex, tx), (oy, ey, ty) = points[0], points[1]
        natural = len(codes) * _GLYPH_ADVANCE / 1000.0  # width of the word in text space at size 1
        a, b = (ex - ox) / natural, (ey - oy) / natural
        c, d = tx - ox, ty - oy
        if math.hypot(a, b) < 1e-6 or math.hypot(c, d) < 1e-6:
            continue
        matrix = " ".join(_num(v) for v in (a, b, c, d, ox, oy))
        out.append(f"{matrix} Tm <{''.join(f'{code:04X}' for code in codes)}> Tj")
    out.append("ET")
    return "\n".join(out)


def _utf16_codes(text: str) -> list[int]:
    """Character codes of the glyphless font: UTF-16 code units of the BMP (Vietnamese is all BMP)."""
    return [ord(ch) for ch in text if ord(ch) < 0x10000 and not 0xD800 <= ord(ch) <= 0xDFFF and ch.isprintable()]


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _dec(value: float) -> float:
    return round(value, 4)


# --- fonts and images ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _glyphless_truetype() -> bytes:
    """A TrueType font with one empty glyph, half an em wide (like Tesseract's pdf.ttf), built once."""
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "blank"])
    builder.setupCharacterMap({0x20: "blank"})
    empty = TTGlyphPen(None).glyph()
    builder.setupGlyf({".notdef": empty, "blank": TTGlyphPen(None).glyph()})
    builder.setupHorizontalMetrics({".notdef": (_GLYPH_ADVANCE, 0), "blank": (_GLYPH_ADVANCE, 0)})
    builder.setupHorizontalHeader(ascent=1000, descent=0)
    builder.setupNameTable({"familyName": _FONT_NAME, "styleName": "Regular", "psName": _FONT_NAME})
    builder.setupOS2(sTypoAscender=1000, sTypoDescender=0, usWinAscent=1000, usWinDescent=0)
    builder.setupPost()
    buffer = io.BytesIO()
    builder.save(buffer)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _identity_to_unicode() -> bytes:
    """ToUnicode CMap mapping every 2-byte code (minus surrogates) to the same UTF-16 code unit."""
    ranges = [f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256) if not 0xD8 <= hi <= 0xDF]
    chunks = [ranges[i : i + 100] for i in range(0, len(ranges), 100)]
    body = "\n".join(f"{len(c)} beginbfrange\n" + "\n".join(c) + "\nendbfrange" for c in chunks)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{body}\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _glyphless_font(pdf: pikepdf.Pdf) -> pikepdf.Object:
    """Type0 font over a CIDFontType2 whose every CID draws glyph 1 (empty), with an identity ToUnicode."""
    font_file = pikepdf.Stream(pdf, _glyphless_truetype())
    cid_to_gid = pikepdf.Stream(pdf, b"\x00\x01" * 65536)
    descriptor = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor,
        FontName=pikepdf.Name("/" + _FONT_NAME),
        Flags=5,  # fixed pitch + symbolic
        FontBBox=[0, 0, _GLYPH_ADVANCE, 1000],
        ItalicAngle=0,
        Ascent=1000,
        Descent=0,
        CapHeight=1000,
        StemV=80,
        FontFile2=pdf.make_indirect(font_file),
    ))
    cid_font = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.CIDFontType2,
        BaseFont=pikepdf.Name("/" + _FONT_NAME),
        CIDSystemInfo=pikepdf.Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
        FontDescriptor=descriptor,
        DW=_GLYPH_ADVANCE,
        CIDToGIDMap=pdf.make_indirect(cid_to_gid),
    ))
    return pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type0,
        BaseFont=pikepdf.Name("/" + _FONT_NAME),
        Encoding=pikepdf.Name("/Identity-H"),
        DescendantFonts=[cid_font],
        ToUnicode=pdf.make_indirect(pikepdf.Stream(pdf, _identity_to_unicode())),
    ))


JPEG_DEFLATE_KEEP = 0.99
"""A JPEG is stored deflated (``[/FlateDecode /DCTDecode]``, its bytes intact inside) only if that saves 1 %."""


def _image_xobject(pdf: pikepdf.Pdf, image: EncodedImage) -> pikepdf.Object:
    """Image XObject carrying the encoded bytes untouched (qpdf is told they are already filtered)."""
    stream = pikepdf.Stream(pdf, b"")
    color_space: pikepdf.Object
    if image.color_space == "Indexed":
        palette = image.palette or b""
        color_space = pikepdf.Array([pikepdf.Name.Indexed, pikepdf.Name.DeviceRGB, len(palette) // 3 - 1,
                                     pikepdf.String(palette)])
    else:
        color_space = pikepdf.Name("/" + image.color_space)
    parms = pikepdf.Dictionary({f"/{key}": value for key, value in image.decode_parms}) if image.decode_parms else None
    deflated = zlib.compress(image.data, 6) if image.filter == "DCTDecode" and parms is None else None
    if deflated is not None and len(deflated) <= JPEG_DEFLATE_KEEP * len(image.data):
        stream.write(deflated, filter=pikepdf.Array([pikepdf.Name.FlateDecode, pikepdf.Name.DCTDecode]))
    else:
        stream.write(image.data, filter=pikepdf.Name("/" + image.filter), decode_parms=parms)
    stream.Type = pikepdf.Name.XObject
    stream.Subtype = pikepdf.Name.Image
    stream.Width = image.width
    stream.Height = image.height
    stream.ColorSpace = color_space
    stream.BitsPerComponent = image.bits_per_component
    if image.decode is not None:
        stream.Decode = pikepdf.Array(list(image.decode))
    return pdf.make_indirect(stream)


# --- metadata --------------------------------------------------------------------------------------


def _write_metadata(pdf: pikepdf.Pdf, metadata: DocumentMetadata, *, created: bool) -> None:
    """Fill XMP (the /Info dictionary follows it); ``pikepdf.pdfa`` adds the PDF/A declaration on save."""
    now = datetime.now(UTC).replace(microsecond=0)
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        if metadata.title:
            meta["dc:title"] = metadata.title
        if metadata.subject:
            meta["dc:description"] = metadata.subject
        if metadata.keywords:
            meta["pdf:Keywords"] = metadata.keywords
        if metadata.identifier:
            meta["dc:identifier"] = metadata.identifier
        if metadata.author:
            meta["dc:creator"] = [metadata.author]
        meta["pdf:Producer"] = _PRODUCER
        meta["xmp:CreatorTool"] = _PRODUCER
        if created:
            meta["xmp:CreateDate"] = now.isoformat()
        meta["xmp:ModifyDate"] = now.isoformat()
    if metadata.language:
        pdf.Root.Lang = pikepdf.String(metadata.language)
