"""PDF pages: open a PDF safely, read its pages' facts, decode or render a page, copy its scan's stream.

A page that is one full-page scanned image keeps that image (decoded by pikepdf, or copied as-is into
the output PDF); any other page (vector drawing, several images, a text layer) is rendered with poppler's
``pdftoppm`` at :data:`PDF_RASTER_DPI`. Encrypted and already-signed PDFs are refused: rewriting them would
drop the encryption or break the signature.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pikepdf
from pikepdf.models.image import UnsupportedImageTypeError
from PIL import Image

from digitize.errors import AlreadySigned, CorruptFile, EncryptedPdf, TooManyPages
from digitize.intake.page_info import EncodedImage, PageInfo, PageLimits, check_decoded, check_size
from digitize.intake.pdf_limits import StreamBudget, child_forms

PDF_RASTER_DPI = 300
"""Resolution used when a PDF page is not a single scanned image and must be rasterised."""

_TEXT_OPERATORS = {"Tj", "TJ", "'", '"'}


def pdf_page_infos(path: Path, limits: PageLimits) -> Iterator[PageInfo]:
    """The pages of a PDF, from its page tree, image headers and capped decoding of its streams only (see
    :mod:`digitize.intake.pdf_limits`); bad PDFs raise :class:`InputError`s."""
    with _open_pdf(path) as pdf:
        if pdf.is_encrypted:
            raise EncryptedPdf(f"{path.name}: the PDF is encrypted (even without a password, OCR would drop it)")
        if _is_signed(pdf):
            raise AlreadySigned(f"{path.name}: the PDF carries a digital signature")
        count = _page_count(path, pdf)
        if count > limits.max_pages:
            raise TooManyPages(f"{path.name}: {count} pages, more than the limit of {limits.max_pages} per document "
                               "(DIGITIZE_MAX_PAGES)")
        budget = StreamBudget(path, limits)
        for index in range(count):
            yield _pdf_page_info(path, index, pdf.pages[index], limits, budget)


def pdf_page_count(path: Path) -> int:
    """Pages in the PDF's page tree."""
    with _open_pdf(path) as pdf:
        return _page_count(path, pdf)


def _page_count(path: Path, pdf: pikepdf.Pdf) -> int:
    try:
        count = len(pdf.pages)
    except pikepdf.PdfError as exc:
        raise CorruptFile(f"{path.name}: the PDF page tree is damaged ({exc})") from exc
    if count == 0:
        raise CorruptFile(f"{path.name}: the PDF has no pages")
    return count


def pdf_page_picture(info: PageInfo) -> Image.Image:
    """The page as a PIL image: its scan decoded, or the whole page rendered when it is not one scan."""
    with _open_pdf(info.source) as pdf:
        if info.rasterize:
            return _rasterize_pdf_page(info)
        return _decode_pdf_image(info, _page_image(pdf.pages[info.index]))


def pdf_page_passthrough(info: PageInfo) -> EncodedImage | None:
    """The scan's own image stream when the output PDF can carry it as-is, else ``None`` (re-encode it)."""
    if info.rasterize:
        return None
    with _open_pdf(info.source) as pdf:
        return _pdf_image_passthrough(info, _page_image(pdf.pages[info.index]))


@contextmanager
def _open_pdf(path: Path) -> Iterator[pikepdf.Pdf]:
    """Open a PDF and map pikepdf's failures to the pipeline's input errors."""
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError as exc:
        raise EncryptedPdf(f"{path.name}: the PDF is password-protected") from exc
    except (pikepdf.PdfError, OSError, ValueError) as exc:
        detail = str(exc).replace(str(path), path.name)  # qpdf names the file by its full path: not for officers
        raise CorruptFile(f"{path.name}: the PDF is damaged ({detail})") from exc
    with pdf:
        yield pdf


def _pdf_page_info(path: Path, index: int, page: pikepdf.Page, limits: PageLimits, budget: StreamBudget) -> PageInfo:
    try:
        box = [float(v) for v in page.mediabox]
        streams = budget.page_cost(index, page)  # first: nothing below decodes a stream before it is measured
        has_text = _has_text(page.obj)
        image = _page_image(page)
    except (pikepdf.PdfError, ValueError, TypeError) as exc:
        raise CorruptFile(f"{path.name}: PDF page {index + 1} is damaged ({exc})") from exc
    page_w, page_h = abs(box[2] - box[0]) / 72.0, abs(box[3] - box[1]) / 72.0
    if image is None:
        width, height = round(page_w * PDF_RASTER_DPI), round(page_h * PDF_RASTER_DPI)
        check_size(path, width, height, limits.max_pixels, page=index)
        raster = check_decoded(path, width * height * 3, limits, page=index)
        return PageInfo(path, index, "pdf", width, height, (float(PDF_RASTER_DPI),) * 2,
                        has_text_layer=has_text, rasterize=image is None, decoded_bytes=streams + raster)
    width, height = int(image.Width), int(image.Height)
    check_size(path, width, height, limits.max_pixels, page=index)
    if abs(width / height - page_w / page_h) > abs(width / height - page_h / page_w):
        page_w, page_h = page_h, page_w  # image drawn turned a quarter inside the page
    return PageInfo(path, index, "pdf", width, height, (round(width / page_w, 1), round(height / page_h, 1)),
                    has_text_layer=has_text, decoded_bytes=streams)


_SIGNATURE_TYPES = (pikepdf.Name.Sig, pikepdf.Name.DocTimeStamp)


def _is_signature(obj: pikepdf.Object) -> bool:
    """A signature or document timestamp dictionary: by its /Type, or by its /ByteRange and /Contents pair."""
    if not isinstance(obj, pikepdf.Dictionary):
        return False
    return obj.get("/Type") in _SIGNATURE_TYPES or ("/ByteRange" in obj and "/Contents" in obj)


def _is_signed(pdf: pikepdf.Pdf) -> bool:
    """Any signature dictionary in the file, or DocMDP permissions: rewriting the file would break them.

    Every object of the file is looked at, referenced or not (an update can drop /AcroForm and leave the
    signature in the file's earlier revision), with each dictionary's direct values (a field's /V may be
    direct). One flat pass over the object table: no recursion, bounded by the file's size.
    """
    if "/Perms" in pdf.Root:
        return True
    for obj in pdf.objects:
        try:
            if _is_signature(obj) or (isinstance(obj, pikepdf.Dictionary) and any(
                    _is_signature(value) for value in obj.values()
                    if isinstance(value, pikepdf.Dictionary) and not value.is_indirect)):
                return True
        except (pikepdf.PdfError, ValueError, TypeError):
            continue  # a damaged object: the page checks report damage where it matters
    return False


def _has_text(page: pikepdf.Object) -> bool:
    """True when the page (or a form XObject it draws) shows text; walked without recursion."""
    todo, seen = [page], set()
    while todo:
        obj = todo.pop()
        if any(str(i.operator) in _TEXT_OPERATORS for i in pikepdf.parse_content_stream(obj)):
            return True
        for form in child_forms(obj):
            if form.objgen not in seen:
                seen.add(form.objgen)
                todo.append(form)
    return False


def _page_image(page: pikepdf.Page) -> pikepdf.Stream | None:
    """The page's scan: its only image XObject, with the page's shape (either way round), else ``None``.

    An image of another shape is a logo or a photo on a born-digital page, not the page itself.
    """
    xobjects: Any = page.obj.get("/Resources", pikepdf.Dictionary()).get("/XObject", pikepdf.Dictionary())
    images = [x for x in xobjects.values() if x.get("/Subtype") == pikepdf.Name.Image]
    forms = [x for x in xobjects.values() if x.get("/Subtype") == pikepdf.Name.Form]
    if len(images) != 1 or forms or bool(images[0].get("/ImageMask", False)):
        return None
    image: pikepdf.Stream = images[0]
    box = [float(v) for v in page.mediabox]
    page_w, page_h = abs(box[2] - box[0]), abs(box[3] - box[1])
    width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
    if min(page_w, page_h, width, height) <= 0:
        return None
    ratio, page_ratio = width / height, page_w / page_h
    if min(abs(ratio / page_ratio - 1), abs(ratio * page_ratio - 1)) > 0.03:
        return None
    return image


def _decode_pdf_image(info: PageInfo, stream: pikepdf.Stream | None) -> Image.Image:
    if stream is None:
        raise CorruptFile(f"{info.source.name}: PDF page {info.index + 1} changed while reading")
    try:
        img = pikepdf.PdfImage(stream).as_pil_image()
        img.load()
    except (pikepdf.DependencyError, UnsupportedImageTypeError, NotImplementedError):
        return _render_image_alone(info, stream)  # e.g. JBIG2 without jbig2dec: poppler decodes it itself
    except (pikepdf.PdfError, OSError, ValueError, SyntaxError) as exc:
        raise CorruptFile(f"{info.source.name}: image of PDF page {info.index + 1} cannot be decoded ({exc})") from exc
    return img


def _render_image_alone(info: PageInfo, stream: pikepdf.Stream) -> Image.Image:
    """Decode an image pikepdf cannot by drawing it alone, one pixel per point, and rendering that with poppler."""
    fold = max(1, -(-max(info.width, info.height) // 14_000))  # PDF pages stop at 14,400 pt
    with tempfile.TemporaryDirectory(prefix="digitize-raster-") as tmp:
        alone = Path(tmp) / "image.pdf"
        with pikepdf.new() as pdf:
            page = pdf.add_blank_page(page_size=(info.width / fold, info.height / fold))
            page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.copy_foreign(stream)))
            page.obj.Contents = pdf.make_stream(f"q {info.width / fold} 0 0 {info.height / fold} 0 0 cm /Im0 Do Q"
                                                .encode("ascii"))
            pdf.save(alone)
        gray = stream.get("/ColorSpace") in (None, pikepdf.Name.DeviceGray) or bool(stream.get("/ImageMask", False))
        return _pdftoppm(alone, 0, 72 * fold, f"{info.source.name}: image of PDF page {info.index + 1}", gray=gray)


def _pdf_image_passthrough(info: PageInfo, stream: pikepdf.Stream | None) -> EncodedImage | None:
    """Copy a scanned page's image stream as-is when its filter and colour space are PDF/A-safe."""
    if stream is None:
        return None
    filters = stream.get("/Filter")
    if isinstance(filters, pikepdf.Array):
        if len(filters) != 1:
            return None
        filters = filters[0]
    name = str(filters)[1:] if filters is not None else ""
    color_space = stream.get("/ColorSpace")
    space = str(color_space)[1:] if isinstance(color_space, pikepdf.Name) else ""
    if name not in ("DCTDecode", "CCITTFaxDecode", "FlateDecode") or space not in ("DeviceGray", "DeviceRGB"):
        if not (name == "CCITTFaxDecode" and color_space is None):
            return None
        space = "DeviceGray"
    parms_obj = stream.get("/DecodeParms")
    if isinstance(parms_obj, pikepdf.Array):
        parms_obj = parms_obj[0] if len(parms_obj) == 1 else None
    parms: list[tuple[str, int | bool]] = []
    if isinstance(parms_obj, pikepdf.Dictionary):
        for key, value in parms_obj.items():
            if not isinstance(value, (bool, int)):
                return None  # e.g. JBIG2 globals: decode instead
            parms.append((key[1:], value))
    decode = stream.get("/Decode")
    try:
        data = stream.read_raw_bytes()
    except pikepdf.PdfError as exc:
        raise CorruptFile(f"{info.source.name}: image of PDF page {info.index + 1} is damaged ({exc})") from exc
    return EncodedImage(data, name, info.width, info.height, int(stream.get("/BitsPerComponent", 1)), space,
                        tuple(parms), tuple(float(v) for v in decode) if decode is not None else None)


def _rasterize_pdf_page(info: PageInfo) -> Image.Image:
    """Render a page that is not a single scan with poppler (vector pages, several images, text layers)."""
    return _pdftoppm(info.source, info.index, PDF_RASTER_DPI, f"{info.source.name}: PDF page {info.index + 1}")


def _pdftoppm(path: Path, index: int, dpi: int, what: str, *, gray: bool = False) -> Image.Image:
    with tempfile.TemporaryDirectory(prefix="digitize-raster-") as tmp:
        prefix = Path(tmp) / "page"
        page = str(index + 1)
        cmd = ["pdftoppm", "-r", str(dpi), "-f", page, "-l", page, "-singlefile", "-png", str(path), str(prefix)]
        done = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
        out = prefix.with_suffix(".png")
        if done.returncode != 0 or not out.exists():
            message = done.stderr.decode("utf-8", "replace").strip()[:200]
            raise CorruptFile(f"{what} cannot be rendered ({message})")
        with Image.open(out) as img:
            img.load()
            return img.convert("L") if gray else img.copy()
