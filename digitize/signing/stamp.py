"""What a signed copy shows: the Decree 30/2020 Appendix I stamp and the Circular 01/2023 QR code.

The stamp (copy form, agency, signing time) sits at the top right of page 1, in a TrueType font
with Vietnamese glyphs that fontTools subsets and rescales once per process (:func:`prepared_font`).
It is the signature widget's appearance: its own text object, drawn after the page's content.
:class:`DocumentQr` is what the QR code of a result carries; the code is a separate annotation
(:func:`add_qr`), since Circular 01/2023 wants it at the top left. Where both go is
:mod:`digitize.signing.placement`'s business.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.font.basic import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import CIDFontType2, GlyphAccumulator
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter, init_xobject_dictionary
from pyhanko.stamp import TextStampStyle

from digitize.errors import ConfigurationError

# fontTools logs each table it prunes while pyHanko subsets the stamp's font, at INFO: a hundred lines a
# document in Airflow's task logs and the demo's output, none for a person. Its warnings still show.
logging.getLogger("fontTools").setLevel(logging.WARNING)

if TYPE_CHECKING:
    from digitize.signing.signer import SigningOptions

VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")
"""Viet Nam time (+07:00), in which Decree 30/2020 Appendix I writes the signing time."""

DEFAULT_STAMP_FONT = Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf")
"""Liberation Serif 2.x: metric twin of Times New Roman with Vietnamese glyphs (Debian fonts-liberation2)."""


@dataclass(frozen=True)
class DocumentQr:
    """What Circular 01/2023/TT-VPCP asks the QR code (TCVN 7322 = ISO/IEC 18004) of a result to carry."""

    dossier_code: str
    """Dossier code (Circular 01/2018 Art. 19), e.g. ``000.00.00.H49-210617-0001``."""

    procedure_code: str
    """Procedure code in the national TTHC database, e.g. ``1.000110``."""

    holder_id: str
    """Identifier of the person (citizen id) or organisation (tax code) the result is for."""

    document_name: str
    """Name of the document (Vietnamese, UTF-8)."""

    source_system: str
    """System that issued the result (e.g. the provincial one-stop information system)."""

    issued_at: dt.datetime
    """Issue time of the result."""

    valid_until: dt.date | None = None
    """End of validity of the result; ``None`` means no limit."""

    def payload(self, document_code: str) -> str:
        """The QR text: compact UTF-8 JSON, keys as in Circular 01/2023's list, plus the document code."""
        data = {
            "ma_tai_lieu": document_code,
            "ma_ho_so": self.dossier_code,
            "ma_thu_tuc": self.procedure_code,
            "ma_dinh_danh": self.holder_id,
            "ten_giay_to": self.document_name,
            "he_thong": self.source_system,
            "thoi_gian_cap": iso_vn(self.issued_at),
            "hieu_luc": self.valid_until.isoformat() if self.valid_until else "không thời hạn",
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def iso_vn(moment: dt.datetime) -> str:
    """ISO 8601 with +07:00, as Decree 30/2020 Appendix I writes times."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=VN_TZ)
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")


def _stamp_charset() -> str:
    """Printable ASCII, Latin-1 and the Vietnamese blocks: what a stamp can contain."""
    chars = {chr(c) for c in range(0x20, 0x7F)} | {chr(c) for c in range(0xA0, 0x180)}
    chars |= {chr(c) for c in range(0x1EA0, 0x1EFA)} | {chr(c) for c in range(0x1A0, 0x1B1)}
    chars |= {chr(c) for c in range(0x300, 0x324)}  # combining marks, in case text is NFD
    chars |= set("–—‘’“”…•")
    return "".join(sorted(chars))


@lru_cache(maxsize=4)
def prepared_font(path: Path) -> bytes:
    """The stamp font subset to the Vietnamese charset and rescaled to 1000 units per em, once per process.

    pyHanko 0.38 writes glyph widths in raw font units, so a 2048-upem font (Liberation, DejaVu) is
    spaced wrongly unless rescaled; subsetting here makes the per-document parse and subset cheap.
    """
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem

    try:
        font = TTFont(str(path))
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the stamp font {path}: {exc.strerror}.",
            hint="Install fonts-liberation2 (Debian) or point stamp_font to a TrueType font with Vietnamese glyphs.",
        ) from None
    options = subset.Options()
    options.drop_tables += ["FFTM"]  # FontForge timestamps: not needed, and fontTools warns about them
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=_stamp_charset())
    subsetter.subset(font)
    if font["head"].unitsPerEm != 1000:
        scale_upem(font, 1000)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class _PreparedFontFactory(FontEngineFactory):
    """Creates pyHanko glyph accumulators from the cached, prepared font bytes (no file I/O per document)."""

    font_bytes: bytes = field(repr=False)
    font_size: int = 10

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: Any = None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return _StampFont(writer, self.font_bytes, self.font_size, obj_stream)


_SUBSETS: dict[tuple[bytes, frozenset[int]], bytes] = {}
"""Font programs cut for the stamps so far, by font and glyph set."""
_SUBSETS_KEPT = 256  # a signer's stamps differ by the digits of their time only: a few dozen sets in practice
_SUBSETS_LOCK = threading.Lock()


class _StampFont(GlyphAccumulator):
    """A glyph accumulator that embeds the subset an earlier stamp with the same glyphs had cut.

    pyHanko cuts and saves the font's subset at every signature (~5 ms); the same glyphs make the same
    subset, so each glyph set's is cut once per process (by pyHanko, with its options) and kept, and every
    document still embeds exactly the glyphs its own stamp shows. Hooks into pyHanko 0.38's internals
    (``_extract_subset``, the TrueType ``CIDFontType2``'s ``_tt``), pinned in requirements.txt; a CFF font is
    cut every time, as pyHanko does.
    """

    def __init__(self, writer: BasePdfFileWriter, font_bytes: bytes, font_size: int, obj_stream: Any) -> None:
        super().__init__(writer=writer, font_handle=io.BytesIO(font_bytes), font_size=font_size,
                         bcp47_lang_code="vi", obj_stream=obj_stream)
        self._font_bytes = font_bytes

    def _extract_subset(self, options: Any = None) -> None:
        from fontTools.ttLib import TTFont

        if not isinstance(self.cidfont_obj, CIDFontType2):  # CFF: pyHanko embeds the CFF table it cut
            super()._extract_subset(options)
            return
        key = (self._font_bytes, frozenset(self._glyphs))
        with _SUBSETS_LOCK:
            program = _SUBSETS.get(key)
        if program is not None:
            self.cidfont_obj._tt = TTFont(io.BytesIO(program))  # what pyHanko's CIDFontType2 saves into the PDF
            return
        super()._extract_subset(options)
        out = io.BytesIO()
        self.tt.save(out)
        with _SUBSETS_LOCK:
            if len(_SUBSETS) >= _SUBSETS_KEPT:
                _SUBSETS.pop(next(iter(_SUBSETS)))  # the oldest
            _SUBSETS[key] = out.getvalue()


_STAMP_TEXT = "%(copy_form)s\n%(agency)s\n%(signed_at)s"

_LEADING = 1.1  # line spacing in ems: three 10-pt lines in 33 pt, so the stamp fits most top margins
_PAD = layout.Margins(left=1, right=1, top=1, bottom=3)  # room for diacritics above and descenders below
_QR_QUIET_ZONE = 4  # modules of blank border ISO/IEC 18004 asks for around the symbol


def warm_up() -> None:
    """Prepare the default stamp font (~0.5 s of CPU) so that processes forked afterwards start with it.

    Needs no key: the parent of Airflow's tasks never holds the agency's secrets. A missing font is
    left for the signer to report, with its hint, when a task starts.
    """
    if DEFAULT_STAMP_FONT.is_file():
        prepared_font(DEFAULT_STAMP_FONT)
        _advance_widths(DEFAULT_STAMP_FONT)


@lru_cache(maxsize=4)
def _advance_widths(path: Path) -> tuple[dict[int, int], int]:
    """Advance widths (1000 units per em) by code point, and the fallback width, of the prepared font."""
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(prepared_font(path)))
    hmtx = font["hmtx"].metrics
    widths = {code: hmtx[name][0] for code, name in font.getBestCmap().items()}
    return widths, hmtx[".notdef"][0]


def _text_width(options: SigningOptions, text: str) -> float:
    """Width of one line at the stamp's size in points (kerning ignored: a few points of slack cover it)."""
    widths, missing = _advance_widths(options.stamp_font)
    return sum(widths.get(ord(ch), missing) for ch in text) * options.stamp_font_size / 1000


def stamp_style(options: SigningOptions) -> TextStampStyle:
    """Text at exactly the configured size (never shrunk to fit), top-right aligned, no border, no image."""
    font = _PreparedFontFactory(font_bytes=prepared_font(options.stamp_font), font_size=options.stamp_font_size)
    text_box = TextBoxStyle(
        font=font, font_size=options.stamp_font_size, leading=round(options.stamp_font_size * _LEADING),
        box_layout_rule=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MAX, y_align=layout.AxisAlignment.ALIGN_MAX, margins=_PAD),
    )
    no_scaling = layout.SimpleBoxLayoutRule(
        x_align=layout.AxisAlignment.ALIGN_MAX,
        y_align=layout.AxisAlignment.ALIGN_MAX,
        inner_content_scaling=layout.InnerScaling.NO_SCALING,
    )
    return TextStampStyle(
        stamp_text=_STAMP_TEXT,
        text_box_style=text_box,
        border_width=0,
        background=None,
        inner_content_layout=no_scaling,
    )


def page_geometry(writer: IncrementalPdfFileWriter) -> tuple[tuple[float, float, float, float], int]:
    """Visible area of page 1 (CropBox, else MediaBox) and its /Rotate, following inheritance up the page tree."""
    page_ref, _ = writer.find_page_for_modification(0)
    found: dict[str, Any] = {}
    for key in ("/CropBox", "/MediaBox", "/Rotate"):
        node: Any = page_ref.get_object()
        while node is not None and key not in found:
            if key in node:
                found[key] = node[key]
            parent = node.get("/Parent")
            node = parent.get_object() if parent is not None else None
    x0, y0, x1, y1 = (float(v) for v in found.get("/CropBox", found.get("/MediaBox", (0, 0, 595, 842))))
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), int(found.get("/Rotate", 0))


def stamp_size(options: SigningOptions, lines: Sequence[str]) -> tuple[float, float]:
    """Width and height of the stamp, sized to its text so that nothing is shrunk or clipped."""
    width = max(_text_width(options, line) for line in lines) + _PAD.left + _PAD.right + 2
    height = len(lines) * round(options.stamp_font_size * _LEADING) + _PAD.top + _PAD.bottom
    return math.ceil(width), float(height)


def qr_symbol(payload: str) -> tuple[bytes, int]:
    """Drawing commands of the QR code (error correction M, one unit per module) and its side in modules.

    qrcode's symbol, its mask chosen in numpy (:mod:`digitize.signing.qrmask`): ~10 ms less per document.
    """
    import qrcode
    from pyhanko.pdf_utils.qr import PdfStreamQRImage

    from digitize.signing.qrmask import QRCode

    code = QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=_QR_QUIET_ZONE)
    code.add_data(payload)
    code.make(fit=True)
    image = code.make_image(image_factory=PdfStreamQRImage)
    return image.render_command_stream(), code.modules_count + 2 * _QR_QUIET_ZONE


def add_qr(writer: IncrementalPdfFileWriter, rect: tuple[float, float, float, float],
           symbol: tuple[bytes, int]) -> None:
    """Put the QR code on page 1 as a locked, printable stamp annotation of its own (PDF/A-2b allows it).

    Part of the revision the signature covers, so it cannot be moved or removed without breaking it.
    """
    commands, side = symbol
    page_ref, _ = writer.find_page_for_modification(0)
    appearance = writer.add_object(init_xobject_dictionary(commands, side, side))
    annotation = generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Annot"),
        pdf_name("/Subtype"): pdf_name("/Stamp"),
        pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(round(v, 2)) for v in rect),
        pdf_name("/F"): generic.NumberObject(4 | 128 | 512),  # Print, Locked, LockedContents
        pdf_name("/Contents"): generic.TextStringObject("Mã QR (Thông tư 01/2023/TT-VPCP)"),
        pdf_name("/P"): page_ref,
        pdf_name("/AP"): generic.DictionaryObject({pdf_name("/N"): appearance}),
    })
    writer.register_annotation(page_ref, writer.add_object(annotation))
