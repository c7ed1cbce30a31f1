"""pdfa.py: original images kept, invisible Vietnamese text layer, PDF/A-2b declarations, upright display."""

from __future__ import annotations

import re
import subprocess
import zlib
from pathlib import Path

import imagegen
import numpy as np
import pikepdf
import pytest
from PIL import Image

from digitize.intake.pages import encode_for_pdf as encode
from digitize.intake.pages import scan_pages
from digitize.ocr.pdfa import (
    DocumentMetadata,
    PdfPage,
    TextWord,
    check_pdfa,
    set_document_metadata,
    write_searchable_pdf,
)

WORDS = ("Cộng", "hòa", "xã", "hội", "chủ", "nghĩa", "Việt", "Nam")


def _line(words: tuple[str, ...], *, x0: float, baseline: float, height: float, word_px: float) -> list[TextWord]:
    """Words laid left to right on one horizontal line of an upright stored image."""
    out = []
    x = x0
    for word in words:
        out.append(TextWord(word, (x, baseline), (x + word_px, baseline), (x, baseline - height)))
        x += word_px + height / 3
    return out


def _pdftotext(path: Path, *args: str) -> str:
    done = subprocess.run(["pdftotext", *args, "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
    return done.stdout.decode("utf-8")


def _render(path: Path, page: int, dpi: int = 50) -> np.ndarray:
    out = path.parent / f"render-{page}"
    subprocess.run(["pdftoppm", "-f", str(page), "-l", str(page), "-r", str(dpi), "-gray", "-singlefile",
                    str(path), str(out)], check=True)
    with Image.open(out.with_suffix(".pgm")) as img:
        return np.asarray(img).copy()


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    return imagegen.render_page(dpi=200)


@pytest.fixture(scope="module")
def pdf_file(tmp_path_factory: pytest.TempPathFactory, upright: np.ndarray) -> tuple[Path, dict[str, bytes]]:
    """A two-page PDF/A: an upright JPEG page and a G4 page stored turned 90° clockwise."""
    tmp = tmp_path_factory.mktemp("pdfa")
    jpeg = imagegen.save(upright, tmp / "p1.jpg", dpi=200, fmt="JPEG", quality=90)
    turned = imagegen.save_tiff([imagegen.rotate_cw(upright, 90)], tmp / "p2.tif", dpi=200)
    (info1,), (info2,) = scan_pages(jpeg), scan_pages(turned)
    enc1, enc2 = encode(info1), encode(info2)
    h = upright.shape[0]
    # page 2: the stored image is the upright page turned 90° clockwise; an upright point (x, y) is at (h-1-y, x)
    words2 = []
    for word in _line(WORDS, x0=80, baseline=300, height=40, word_px=90):
        words2.append(TextWord(word.text, *(((h - 1 - p[1]), p[0]) for p in (word.origin, word.end, word.top))))
    pages = [
        PdfPage(enc1, (200.0, 200.0), 0, tuple(_line(WORDS, x0=80, baseline=120, height=40, word_px=90))),
        PdfPage(enc2, (200.0, 200.0), 270, tuple(words2)),
    ]
    out = tmp / "out.pdf"
    write_searchable_pdf(pages, out, DocumentMetadata(title="Kế hoạch số hóa"))
    return out, {"jpeg": jpeg.read_bytes(), "g4": enc2.data}


def test_pdfa_declarations_and_validation(pdf_file: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = pdf_file
    assert check_pdfa(path).passed, check_pdfa(path).findings
    with pikepdf.open(path) as pdf:
        assert not pdf.is_encrypted
        meta = pdf.open_metadata()
        assert meta["pdfaid:part"] == "2" and meta["pdfaid:conformance"] == "B"
        assert meta["dc:title"] == "Kế hoạch số hóa"
        (intent,) = pdf.Root.OutputIntents
        assert intent.S == pikepdf.Name.GTS_PDFA1
        assert int(intent.DestOutputProfile.N) == 3
        assert len(pdf.trailer.ID) == 2
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    font_rows = fonts.splitlines()[2:]
    assert font_rows and all(re.search(r"\byes\s+\w+\s+yes\b", row) for row in font_rows), fonts  # emb, uni


def test_original_images_are_embedded_unchanged(pdf_file: tuple[Path, dict[str, bytes]],
                                               upright: np.ndarray) -> None:
    path, originals = pdf_file
    with pikepdf.open(path) as pdf:
        images = [next(iter(p.obj.Resources.XObject.values())) for p in pdf.pages]
        jpeg = images[0].read_raw_bytes()
        if isinstance(images[0].Filter, pikepdf.Array):  # deflated when that saves 1 %: the JPEG intact inside
            assert list(images[0].Filter) == [pikepdf.Name.FlateDecode, pikepdf.Name.DCTDecode]
            jpeg = zlib.decompress(jpeg)
        else:
            assert images[0].Filter == pikepdf.Name.DCTDecode
        assert jpeg == originals["jpeg"]
        assert images[1].Filter == pikepdf.Name.CCITTFaxDecode
        assert images[1].read_raw_bytes() == originals["g4"]
        # page size from the dpi: 1000 px at 200 dpi = 5 in = 360 pt
        w_pt, h_pt = (float(v) for v in pdf.pages[0].mediabox[2:])
        assert (w_pt, h_pt) == pytest.approx((upright.shape[1] * 72 / 200, upright.shape[0] * 72 / 200))
        # the quarter-turned G4 page is turned in its placement matrix: upright page, no /Rotate
        assert all("/Rotate" not in page.obj for page in pdf.pages)
        assert [float(v) for v in pdf.pages[1].mediabox] == pytest.approx([float(v) for v in pdf.pages[0].mediabox])


def test_text_layer_extracts_vietnamese_on_both_pages(pdf_file: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = pdf_file
    expected = " ".join(WORDS)
    for page in ("1", "2"):
        text = _pdftotext(path, "-layout", "-f", page, "-l", page)
        assert re.sub(r"\s+", " ", text).strip() == expected


def test_text_is_invisible_and_words_fill_their_boxes(pdf_file: tuple[Path, dict[str, bytes]],
                                                     upright: np.ndarray) -> None:
    path, _ = pdf_file
    bbox = _pdftotext(path, "-bbox", "-f", "1", "-l", "1")
    boxes = [tuple(float(v) for v in m.groups()) for m in re.finditer(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', bbox)]
    assert len(boxes) == len(WORDS)
    scale = 72 / 200
    x = 80.0
    for x_min, y_min, x_max, y_max in boxes:
        assert x_min == pytest.approx(x * scale, abs=0.5)
        assert x_max - x_min == pytest.approx(90 * scale, abs=0.5)
        assert y_min < 120 * scale < y_max  # poppler adds its own descent below the baseline
        x += 90 + 40 / 3
    # the text adds no ink: the rendering equals the rendering of the image alone
    rendered = _render(path, 1, dpi=200).astype(int)
    assert rendered.shape == upright.shape
    assert np.abs(rendered - upright).mean() < 4


def test_quarter_turned_page_displays_upright(pdf_file: tuple[Path, dict[str, bytes]], upright: np.ndarray) -> None:
    path, _ = pdf_file
    rendered = _render(path, 2, dpi=200)
    assert rendered.shape == upright.shape  # portrait again, as the upright page
    match = np.abs(rendered.astype(int) - upright).mean()
    turned_back = np.abs(np.rot90(rendered, 2).astype(int) - upright).mean()
    assert match < 4 < turned_back


def test_set_document_metadata_keeps_pdfa(pdf_file: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    source, _ = pdf_file
    path = tmp_path / "coded.pdf"
    path.write_bytes(source.read_bytes())
    set_document_metadata(path, title="Giấy chứng nhận quyền sử dụng đất", document_code="000.00.00.H49.2021.KQ.000123",
                          agency_code="000.00.00.H49")
    assert check_pdfa(path).passed
    with pikepdf.open(path) as pdf:
        info = pdf.docinfo
        assert str(info.Title) == "Giấy chứng nhận quyền sử dụng đất"
        assert str(info.Subject) == "000.00.00.H49.2021.KQ.000123"
        assert "000.00.00.H49" in str(info.Keywords)
        meta = pdf.open_metadata()
        assert meta["dc:identifier"] == "000.00.00.H49.2021.KQ.000123"
        assert meta["pdfaid:part"] == "2"
    # images and text are untouched
    assert _pdftotext(path, "-f", "1", "-l", "1").split() == list(WORDS)


def test_check_pdfa_finds_a_non_conforming_file(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    plain = tmp_path / "plain.pdf"
    pdf.save(plain)
    assert not check_pdfa(plain).passed


def test_long_documents_are_spooled_in_chunks_and_keep_page_order(tmp_path: Path, upright: np.ndarray) -> None:
    from digitize.ocr.pdfa import SearchablePdfWriter

    jpeg = imagegen.save(upright, tmp_path / "p.jpg", dpi=200, fmt="JPEG")
    (info,) = scan_pages(jpeg)
    image = encode(info)
    out = tmp_path / "long.pdf"
    with SearchablePdfWriter(out, DocumentMetadata(title="Dài"), work_dir=tmp_path, chunk_pages=2) as writer:
        for n in range(5):
            writer.add_page(PdfPage(image, (200.0, 200.0), 0, (TextWord(f"Trang{n}", (80, 120), (300, 120),
                                                                        (80, 80)),)))
    assert check_pdfa(out).passed
    assert [_pdftotext(out, "-f", str(n + 1), "-l", str(n + 1)).strip() for n in range(5)] == [
        f"Trang{n}" for n in range(5)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("digitize-pdf-")] == []  # scratch removed


def test_a_file_that_would_not_be_pdfa_is_refused_and_not_written(tmp_path: Path) -> None:
    from digitize.errors import PdfaInvalid
    from digitize.ocr.pdfa import page_can_be_copied

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))  # not embedded
    pdf.pages[0].obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    pdf.pages[0].obj.Contents = pdf.make_stream(b"BT /F1 14 Tf 72 700 Td (Ke hoach) Tj ET")
    source = tmp_path / "born-digital.pdf"
    pdf.save(source)
    assert not page_can_be_copied(source, 0)
    out = tmp_path / "out.pdf"
    with pytest.raises(PdfaInvalid, match=re.escape("6.2.11.4.1")):
        write_searchable_pdf([PdfPage(None, (72.0, 72.0), copy_from=(source, 0))], out)
    assert not out.exists()
