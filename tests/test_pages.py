"""pages.py: real file types, lazy page streaming, original image bytes kept, bad input refused."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import imagegen
import numpy as np
import pikepdf
import pytest
from PIL import Image

from digitize.errors import (
    AlreadySigned,
    CorruptFile,
    EmptyFile,
    EncryptedPdf,
    ImageTooLarge,
    LowResolution,
    MissingFile,
    UnsupportedFormat,
)
from digitize.intake.page_info import PageLimits
from digitize.intake.pages import encode_for_pdf, iter_pages, load_image, scan_pages, sniff_format


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    return imagegen.render_page(dpi=200)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_sniff_format_reads_magic_bytes_not_the_name(tmp_path: Path, page: np.ndarray) -> None:
    png_named_jpg = imagegen.save(page, tmp_path / "scan.jpg", fmt="PNG")
    jpeg_named_pdf = imagegen.save(page, tmp_path / "scan.pdf", fmt="JPEG")
    tiff = imagegen.save_tiff([page], tmp_path / "scan.png")
    pdf = imagegen.image_only_pdf(page, tmp_path / "scan.tif")
    assert sniff_format(png_named_jpg) == "png"
    assert sniff_format(jpeg_named_pdf) == "jpeg"
    assert sniff_format(tiff) == "tiff"
    assert sniff_format(pdf) == "pdf"


def test_sniff_format_refuses_empty_missing_and_other_files(tmp_path: Path, page: np.ndarray) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(EmptyFile):
        sniff_format(empty)
    with pytest.raises(MissingFile):
        sniff_format(tmp_path / "absent.pdf")
    text = tmp_path / "notes.pdf"
    text.write_text("Biên bản họp", encoding="utf-8")
    with pytest.raises(UnsupportedFormat):
        sniff_format(text)
    gif = imagegen.save(page, tmp_path / "scan.png", fmt="GIF")
    with pytest.raises(UnsupportedFormat, match="GIF"):
        list(scan_pages(gif))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_single_image_page_keeps_its_bytes(tmp_path: Path, page: np.ndarray, fmt: str) -> None:
    path = imagegen.save(page, tmp_path / f"scan.{fmt.lower()}", dpi=200, fmt=fmt)
    (info,) = scan_pages(path)
    assert (info.width, info.height) == (page.shape[1], page.shape[0])
    assert info.dpi == pytest.approx((200, 200), abs=0.1)
    image = load_image(info)
    assert image.dtype == np.uint8 and image.shape == page.shape
    if fmt == "PNG":
        assert np.array_equal(image, page)
    encoded = encode_for_pdf(info)
    assert encoded.passthrough
    if fmt == "JPEG":
        assert encoded.filter == "DCTDecode" and encoded.data == path.read_bytes()
    else:
        assert encoded.filter == "FlateDecode" and ("Predictor", 15) in encoded.decode_parms
        # the IDAT stream, undone by zlib, holds one filter byte per row plus the pixels
        assert len(zlib.decompress(encoded.data)) == page.shape[0] * (page.shape[1] + 1)


def test_colour_jpeg_decodes_to_bgr(tmp_path: Path, page: np.ndarray) -> None:
    bgr = np.dstack([page // 2, page, page])  # yellowish paper: the blue channel is darker
    path = imagegen.save(bgr, tmp_path / "colour.jpg", fmt="JPEG", quality=95)
    (info,) = scan_pages(path)
    image = load_image(info)
    assert image.ndim == 3 and image.shape[2] == 3
    assert image[:, :, 0].mean() < image[:, :, 2].mean()  # channel 0 is blue (BGR)
    assert encode_for_pdf(info).color_space == "DeviceRGB"


def test_multipage_g4_tiff_streams_pages_and_stays_bilevel(tmp_path: Path, page: np.ndarray) -> None:
    pages = [page, imagegen.blank_page(), imagegen.rotate_cw(page, 90)]
    path = imagegen.save_tiff(pages, tmp_path / "scan.tif", dpi=300)
    infos = list(scan_pages(path))
    assert [i.index for i in infos] == [0, 1, 2]
    assert (infos[2].width, infos[2].height) == (page.shape[0], page.shape[1])
    assert infos[0].dpi == (300.0, 300.0)
    for info, original in zip(infos, pages, strict=True):
        image = load_image(info)
        assert np.array_equal(image > 127, original > 127)
        encoded = encode_for_pdf(info, image=image)
        assert encoded.filter == "CCITTFaxDecode" and encoded.bits_per_component == 1
        assert dict(encoded.decode_parms)["K"] == -1


def test_single_strip_g4_is_copied_byte_for_byte(tmp_path: Path, page: np.ndarray) -> None:
    from PIL import TiffImagePlugin

    path = tmp_path / "one-strip.tif"
    saved = TiffImagePlugin.STRIP_SIZE
    TiffImagePlugin.STRIP_SIZE = 1 << 24
    try:
        Image.fromarray(page).convert("1").save(path, compression="group4", dpi=(200, 200))
    finally:
        TiffImagePlugin.STRIP_SIZE = saved
    (info,) = scan_pages(path)
    encoded = encode_for_pdf(info)
    with TiffImagePlugin.TiffImageFile(path) as img:
        (offset,), (count,) = img.tag_v2[273], img.tag_v2[279]
    assert encoded.passthrough
    assert encoded.data == path.read_bytes()[offset : offset + count]


def test_image_only_pdf_yields_its_embedded_jpeg(tmp_path: Path, page: np.ndarray) -> None:
    path = imagegen.image_only_pdf(page, tmp_path / "scan.pdf", dpi=200)
    (info,) = scan_pages(path)
    assert not info.has_text_layer and not info.rasterize
    assert info.dpi == pytest.approx((200, 200), abs=0.5)
    encoded = encode_for_pdf(info)
    with pikepdf.open(path) as pdf:
        (raw,) = [x.read_raw_bytes() for x in pdf.pages[0].obj.Resources.XObject.values()]
    assert encoded.filter == "DCTDecode" and encoded.data == raw
    assert np.abs(load_image(info).astype(int) - page).mean() < 8


def test_pdf_with_text_layer_is_exposed(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(300, 200))
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    pdf.pages[0].obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    pdf.pages[0].obj.Contents = pdf.make_stream(b"BT /F1 12 Tf 20 100 Td (Ke hoach) Tj ET")
    path = tmp_path / "born-digital.pdf"
    pdf.save(path)
    (info,) = scan_pages(path)
    assert info.has_text_layer


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_truncated_files_are_corrupt(tmp_path: Path, page: np.ndarray) -> None:
    for fmt in ("PNG", "JPEG"):
        path = imagegen.save(page, tmp_path / f"scan.{fmt.lower()}", fmt=fmt)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.raises(CorruptFile):
            for info in scan_pages(path):
                load_image(info)
    tiff = imagegen.save_tiff([page, page], tmp_path / "scan.tif", bilevel=False)
    tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 3])
    with pytest.raises(CorruptFile):
        for info in scan_pages(tiff):
            load_image(info)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ngarbage\n")
    with pytest.raises(CorruptFile):
        for info in scan_pages(broken):
            load_image(info)


def test_encrypted_pdf_is_refused(tmp_path: Path, page: np.ndarray) -> None:
    source = imagegen.image_only_pdf(page, tmp_path / "plain.pdf")
    for user in ("secret", ""):
        path = tmp_path / f"locked-{len(user)}.pdf"
        with pikepdf.open(source) as pdf:
            pdf.save(path, encryption=pikepdf.Encryption(owner="owner", user=user))
        with pytest.raises(EncryptedPdf):
            list(scan_pages(path))


def test_signed_pdf_is_refused(tmp_path: Path, page: np.ndarray) -> None:
    path = imagegen.image_only_pdf(page, tmp_path / "signed.pdf")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        value = pikepdf.Dictionary(Type=pikepdf.Name.Sig, Filter=pikepdf.Name("/Adobe.PPKLite"),
                                   ByteRange=[0, 100, 200, 300], Contents=pikepdf.String(b"\x00" * 64))
        field = pdf.make_indirect(pikepdf.Dictionary(FT=pikepdf.Name.Sig, T="Sig1", V=pdf.make_indirect(value)))
        pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[field], SigFlags=3)
        pdf.save(path)
    with pytest.raises(AlreadySigned):
        list(scan_pages(path))


def _append_catalog_without_acroform(path: Path) -> None:
    """An incremental update that replaces the catalog by one without /AcroForm: the signature's objects
    stay in the file's earlier revision, referenced by nothing."""
    data = path.read_bytes()
    with pikepdf.open(path) as pdf:
        num, gen = pdf.Root.objgen
        size = int(pdf.trailer.Size)
        body = pikepdf.Dictionary({k: v for k, v in pdf.Root.items() if k != "/AcroForm"}).unparse()
    prev = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    obj = b"%d %d obj\n" % (num, gen) + body + b"\nendobj\n"
    xref = b"xref\n%d 1\n%010d %05d n \n" % (num, len(data), gen)
    trailer = b"trailer\n<< /Size %d /Root %d %d R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        size, num, gen, prev, len(data) + len(obj))
    path.write_bytes(data + obj + xref + trailer)


@pytest.mark.parametrize("hiding", ["no AcroForm", "direct value in a page widget", "unreferenced",
                                    "document timestamp only"])
def test_signature_is_found_by_its_dictionary_wherever_it_hides(hiding: str, tmp_path: Path,
                                                                 page: np.ndarray) -> None:
    """Removing /AcroForm does not unsign a PDF: its signature dictionaries are still in the file."""
    path = imagegen.image_only_pdf(page, tmp_path / "signed.pdf")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        kind = pikepdf.Name.DocTimeStamp if hiding == "document timestamp only" else pikepdf.Name.Sig
        value = pikepdf.Dictionary(Type=kind, Filter=pikepdf.Name("/Adobe.PPKLite"),
                                   ByteRange=[0, 100, 200, 300], Contents=pikepdf.String(b"\x00" * 64))
        if hiding == "direct value in a page widget":
            del value["/Type"]  # only the /ByteRange and /Contents pair tells
            widget = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget,
                                                          Rect=[0, 0, 0, 0], V=value))
            pdf.pages[0].Annots = pdf.make_indirect(pikepdf.Array([widget]))
        elif hiding == "unreferenced":
            pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[pdf.make_indirect(pikepdf.Dictionary(
                FT=pikepdf.Name.Sig, T="Sig1", V=pdf.make_indirect(value)))], SigFlags=3)
        else:
            pdf.pages[0].Annots = pikepdf.Array([pdf.make_indirect(pikepdf.Dictionary(
                Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, Rect=[0, 0, 0, 0], V=pdf.make_indirect(value)))])
        pdf.save(path, object_stream_mode=pikepdf.ObjectStreamMode.disable if hiding == "unreferenced"
                 else pikepdf.ObjectStreamMode.generate)
    if hiding == "unreferenced":
        _append_catalog_without_acroform(path)
    with pikepdf.open(path) as pdf:
        assert "/AcroForm" not in pdf.Root
    with pytest.raises(AlreadySigned):
        list(scan_pages(path))


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageTooLarge):
        list(scan_pages(bomb))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 30_000, 30_000, 1) + b"\x01\x11\x00"
    jpeg = tmp_path / "bomb.jpg"
    jpeg.write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    with pytest.raises(ImageTooLarge):
        list(scan_pages(jpeg))
    small = imagegen.save(imagegen.blank_page(), tmp_path / "small.png", fmt="PNG")
    with pytest.raises(ImageTooLarge):
        list(scan_pages(small, PageLimits(max_pixels=1000)))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_tiff_pages_are_read_lazily(tmp_path: Path) -> None:
    """A 200-page TIFF is walked one page at a time: cutting the file after page 1 was read breaks a later page."""
    tiny = imagegen.blank_page(dpi=50, width_in=1.0, height_in=1.0)
    path = imagegen.save_tiff([tiny] * 200, tmp_path / "long.tif", bilevel=False)
    pages = iter_pages(path)
    first = next(pages)
    assert first.info.index == 0 and first.image.shape == tiny.shape
    data = path.read_bytes()
    with open(path, "r+b") as handle:  # the open generator keeps its file handle; the IFD chain is cut
        handle.truncate(len(data) // 2)
    with pytest.raises(CorruptFile):
        for _ in pages:
            pass


def test_pil_written_rgba_png_is_flattened_and_reencoded(tmp_path: Path, page: np.ndarray) -> None:
    rgba = Image.fromarray(page).convert("RGBA")
    rgba.putalpha(200)
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    path = tmp_path / "alpha.png"
    path.write_bytes(buffer.getvalue())
    (info,) = scan_pages(path)
    encoded = encode_for_pdf(info)
    assert not encoded.passthrough and encoded.filter in ("FlateDecode", "CCITTFaxDecode")


def test_thumbnails_are_not_pages(tmp_path: Path) -> None:
    icon = imagegen.save(np.full((20, 300), 255, np.uint8), tmp_path / "icon.png", fmt="PNG")
    with pytest.raises(LowResolution):
        list(scan_pages(icon))


def test_pdf_image_pikepdf_cannot_decode_is_rendered_pixel_for_pixel(tmp_path: Path, page: np.ndarray,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A JBIG2 scan on a machine without jbig2dec: poppler decodes it instead, at the image's own size."""
    path = imagegen.image_only_pdf(page, tmp_path / "scan.pdf", dpi=200)
    (info,) = scan_pages(path)

    def no_decoder(self: pikepdf.PdfImage) -> Image.Image:
        raise pikepdf.DependencyError("jbig2dec - not installed")

    monkeypatch.setattr(pikepdf.PdfImage, "as_pil_image", no_decoder)
    image = load_image(info)
    assert image.shape == page.shape
    assert np.abs(image.astype(int) - page).mean() < 8


def test_logo_on_a_born_digital_page_is_not_taken_for_the_scan(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(595, 842))
    logo = pikepdf.Stream(pdf, bytes(64 * 64))
    logo.Type, logo.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    logo.Width, logo.Height, logo.BitsPerComponent, logo.ColorSpace = 64, 64, 8, pikepdf.Name.DeviceGray
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Logo=logo),
                                            Font=pikepdf.Dictionary(F1=font))
    page.obj.Contents = pdf.make_stream(b"q 64 0 0 64 72 720 cm /Logo Do Q BT /F1 14 Tf 72 650 Td (Quyet dinh) Tj ET")
    path = tmp_path / "letter.pdf"
    pdf.save(path)
    (info,) = scan_pages(path)
    assert info.has_text_layer and info.rasterize  # the whole page is rendered if it must be OCR'd
    assert (info.width, info.height) == (round(595 / 72 * 300), round(842 / 72 * 300))


# --------------------------------------------------------------------------- limits measured before decoding


def _tiff_strip(image: Image.Image, compression: str, monkeypatch: pytest.MonkeyPatch) -> bytes:
    from PIL import TiffImagePlugin

    monkeypatch.setattr(TiffImagePlugin, "STRIP_SIZE", 1 << 24)  # one strip
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF", compression=compression)
    buffer.seek(0)
    with Image.open(buffer) as tiff:
        tags = tiff.tag_v2
        (offset,), (count,) = tags[273], tags[279]
    return buffer.getvalue()[offset : offset + count]


@pytest.mark.parametrize(("compression", "name"), [("tiff_lzw", "/LZWDecode"), ("packbits", "/RunLengthDecode"),
                                                   ("tiff_adobe_deflate", "/FlateDecode")])
def test_capped_decoders_agree_with_qpdf(page: np.ndarray, compression: str, name: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The byte-counting decoders give the size qpdf's own decoders give, and stop at the cap."""
    from digitize.intake.pdf_limits import _Over, decoded_size

    gray = Image.fromarray(page[:400, :600])
    with pikepdf.new() as pdf:
        stream = pdf.make_stream(b"")
        stream.write(_tiff_strip(gray, compression, monkeypatch), filter=pikepdf.Name(name))
        specialized = pikepdf.StreamDecodeLevel.specialized  # RunLength is "specialized" to qpdf
        expected = len(stream.read_bytes(specialized))
        assert expected == 400 * 600
        assert decoded_size(stream, 10 * expected) == expected
        with pytest.raises(_Over):
            decoded_size(stream, expected - 1)
        chained = pdf.make_stream(b"")
        chained.write(zlib.compress(stream.read_raw_bytes()), filter=pikepdf.Array([pikepdf.Name.FlateDecode,
                                                                                      pikepdf.Name(name)]))
        assert decoded_size(chained, 10 * expected) == len(chained.read_bytes(specialized)) == expected


def _one_page_pdf(tmp: Path, build: object) -> Path:
    path = tmp / "made.pdf"
    with pikepdf.new() as pdf:
        page = pdf.add_blank_page(page_size=(360, 360))
        build(pdf, page)  # type: ignore[operator]
        pdf.save(path)
    return path


def test_a_form_that_draws_itself_is_refused_without_recursion(tmp_path: Path) -> None:
    from digitize.errors import PdfTooComplex

    def build(pdf: pikepdf.Pdf, page: pikepdf.Page) -> None:
        form = pdf.make_indirect(pdf.make_stream(b"/F Do"))
        form.stream_dict.update({"/Type": pikepdf.Name.XObject, "/Subtype": pikepdf.Name.Form,
                                 "/BBox": pikepdf.Array([0, 0, 10, 10])})
        form.stream_dict.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(F=form))
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(F=form))
        page.obj.Contents = pdf.make_stream(b"/F Do")

    with pytest.raises(PdfTooComplex, match="draws itself"):
        list(scan_pages(_one_page_pdf(tmp_path, build)))


def test_document_limits_count_every_file_of_the_document(tmp_path: Path, page: np.ndarray) -> None:
    from digitize.errors import DecodedTooLarge, TooManyPages
    from digitize.intake import scan_document

    files = [imagegen.save(page, tmp_path / f"p{i}.png", fmt="PNG") for i in range(3)]
    size = page.shape[0] * page.shape[1] * (page.shape[2] if page.ndim == 3 else 1)
    assert len(list(scan_document(files, PageLimits(max_pages=3)))) == 3
    with pytest.raises(TooManyPages, match="DIGITIZE_MAX_PAGES"):
        next(scan_document(files, PageLimits(max_pages=2)))  # refused before the first page
    with pytest.raises(DecodedTooLarge, match="DIGITIZE_MAX_DECODED_MB"):
        list(scan_document(files, PageLimits(max_decoded_bytes=3 * size - 1)))
    with pytest.raises(DecodedTooLarge, match="DIGITIZE_MAX_STREAM_MB"):
        list(scan_document(files, PageLimits(max_stream_bytes=size - 1)))


def test_a_tiff_cut_inside_its_header_is_corrupt_when_pages_are_counted(tmp_path: Path) -> None:
    from digitize.intake import scan_document

    stub = tmp_path / "stub.tif"
    stub.write_bytes(b"II*\x00\x08")
    with pytest.raises(CorruptFile, match=r"stub\.tif"):
        list(scan_document([stub]))
