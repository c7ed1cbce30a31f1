"""Page 1's ink read from the scan itself holds all the ink poppler's render shows, and its words match pdftotext.

The stamp is placed from a map of page 1 (:mod:`digitize.signing.placement`). For the pipeline's own
pages the map now comes from the page's image (:mod:`digitize.signing.inkmap`) instead of a
``pdftoppm`` render; these tests compare the two on real pipeline output of every kind of scan
(colour JPEG, gray PNG, G4 TIFF, a skewed and a quarter-turned page), and check that any page the
shortcut cannot read exactly (vector drawing, visible text, annotations, ``/Rotate``) goes to the renderer.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import imagegen
import numpy as np
import pikepdf
import pytest
from PIL import Image
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from digitize.ocr import OcrOptions, make_searchable_pdf, set_document_metadata
from digitize.signing import placement
from digitize.signing.inkmap import read_scanned_page
from digitize.signing.stamp import page_geometry

KINDS = ("jpeg-colour", "png-gray", "tiff-g4", "skewed", "quarter-turned")


def _scan(kind: str, path: Path) -> Path:
    page = imagegen.render_page(imagegen.LINES[:4] + imagegen.PARAGRAPH[:3], dpi=300, width_in=6.0, height_in=5.0,
                                font_pt=11.0)
    if kind == "jpeg-colour":
        rgb = np.stack([page * 0.93, page * 0.97, page], axis=-1).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(path.with_suffix(".jpg"), format="JPEG", quality=85, dpi=(300, 300))
        return path.with_suffix(".jpg")
    if kind == "tiff-g4":
        return imagegen.save_tiff([page], path.with_suffix(".tif"), dpi=300)
    if kind == "tiff-lzw-bilevel":  # 1-bit but LZW: the OCR path makes the G4 stream
        Image.fromarray(page).convert("1").save(path.with_suffix(".tif"), format="TIFF", compression="tiff_lzw",
                                               dpi=(300, 300))
        return path.with_suffix(".tif")
    if kind == "skewed":
        centre = (page.shape[1] / 2, page.shape[0] / 2)
        turn = cv2.getRotationMatrix2D(centre, 3.0, 1.0)
        page = cv2.warpAffine(page, turn, (page.shape[1], page.shape[0]), borderValue=255)
    elif kind == "quarter-turned":
        page = imagegen.rotate_cw(page, 90)
    Image.fromarray(page).save(path.with_suffix(".png"), format="PNG", dpi=(300, 300))
    return path.with_suffix(".png")


@pytest.fixture(scope="module")
def pipeline_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each kind of scan through the real OCR path: the unsigned PDF/A the signer receives."""
    root = tmp_path_factory.mktemp("inkmap")
    out = {}
    for kind in KINDS:
        pdf = root / f"{kind}.pdf"
        make_searchable_pdf([_scan(kind, root / kind)], pdf, OcrOptions(jobs=1))
        out[kind] = pdf.read_bytes()
    return out


def _geometry(pdf: bytes) -> tuple[tuple[float, float, float, float], int]:
    return page_geometry(IncrementalPdfFileWriter(io.BytesIO(pdf)))


@pytest.mark.parametrize("kind", KINDS)
def test_scanned_page_map_holds_all_the_rendered_ink(pipeline_pages: dict[str, bytes], kind: str) -> None:
    pdf = pipeline_pages[kind]
    box, rotate = _geometry(pdf)
    scanned = read_scanned_page(pdf, box, rotate)
    assert scanned is not None, "the pipeline's own page must not need a render"
    fast = placement._fit(placement._ink_cells(scanned.gray), box)
    rendered, words = placement._rendered_page(pdf)
    rendered = placement._fit(rendered, box)
    # a cell the render shows dark is dark in the map or next to a dark cell (sub-pixel offsets between
    # the two resamplings; the stamp keeps 3 points of clearance), and the map is not just "all ink"
    grown = cv2.dilate(fast.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert int((rendered & ~grown).sum()) == 0
    assert rendered.sum() > 500
    assert fast.sum() < 2 * rendered.sum()
    assert len(scanned.words) == len(words) > 10
    for ours, theirs in zip(scanned.words, words, strict=True):
        assert ours == pytest.approx(theirs, abs=0.05)


def test_placement_from_the_scan_keeps_clear_of_the_rendered_ink(pipeline_pages: dict[str, bytes]) -> None:
    """The stamp's and the QR code's rectangles, placed from the scan, hold no cell of the render's ink."""
    for kind, pdf in pipeline_pages.items():
        box, rotate = _geometry(pdf)
        spot = placement.plan(pdf, box, rotate, (110.0, 40.0), [40.0], 6.0)
        assert spot.flags == (), kind  # the page has room: a free spot must be found
        rendered = placement._fit(placement._rendered_page(pdf)[0], box)
        for rect in (spot.stamp, spot.qr):
            assert rect is not None
            x0, y0, x1, y1 = (round(v) for v in rect)
            top, bottom, left, right = round(box[3]) - y1, round(box[3]) - y0, x0 - round(box[0]), x1 - round(box[0])
            assert not rendered[max(0, top):bottom, max(0, left):right].any(), (kind, rect, spot.flags)


def _with(pdf: bytes, change: str) -> bytes:
    doc = pikepdf.open(io.BytesIO(pdf))
    page = doc.pages[0]
    if change == "vector drawing":
        page.contents_add(pikepdf.Stream(doc, b"q 2 w 10 10 m 200 10 l S Q"), prepend=False)
    elif change == "visible text":
        page.contents_add(pikepdf.Stream(doc, b"BT 0 Tr /F1 12 Tf 1 0 0 1 20 20 Tm <0041> Tj ET"), prepend=False)
    elif change == "annotation":
        page.obj.Annots = doc.make_indirect(pikepdf.Array([doc.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Square, Rect=[10, 10, 60, 60]))]))
    elif change == "/Rotate":
        page.obj.Rotate = 90
    elif change == "second image":
        page.contents_add(pikepdf.Stream(doc, b"q 50 0 0 50 0 0 cm /Im0 Do Q"), prepend=False)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


@pytest.mark.parametrize("change", ["vector drawing", "visible text", "annotation", "/Rotate", "second image"])
def test_a_page_that_draws_more_than_a_scan_is_rendered(pipeline_pages: dict[str, bytes], change: str) -> None:
    pdf = _with(pipeline_pages["png-gray"], change)
    box, rotate = _geometry(pdf)
    assert read_scanned_page(pdf, box, rotate) is None
    placement.plan(pdf, box, rotate, (110.0, 40.0), [], 6.0)  # and the renderer still places the stamp


KEPT = {"png-gray": True, "png-rgb": True, "quarter-turned": True, "jpeg-colour": False, "tiff-g4": True,
        "tiff-lzw-bilevel": True, "png-transparent": False}
"""Scans whose page 1 the OCR path keeps as gray samples for signing (lossless 8-bit gray or RGB, CCITT G4 of a
bilevel page, copied or made), and the rest."""


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, Any]]:
    """Each kind through the real OCR path: the unsigned PDF and the page-1 samples its maker kept."""
    root = tmp_path_factory.mktemp("kept")
    out = {}
    for kind in KEPT:
        if kind in ("png-rgb", "png-transparent"):
            page = imagegen.render_page(imagegen.LINES[:4], dpi=300, width_in=6.0, height_in=5.0, font_pt=11.0)
            scan = root / f"{kind}.png"
            if kind == "png-rgb":
                rgb = np.stack([page * 0.93, page * 0.97, page], axis=-1).clip(0, 255).astype(np.uint8)
                Image.fromarray(rgb).save(scan, format="PNG", dpi=(300, 300))
            else:  # a tRNS chunk: load_image flattens it, a PDF reader shows the samples
                Image.fromarray(page).save(scan, format="PNG", dpi=(300, 300), transparency=255)
        else:
            scan = _scan(kind, root / kind)
        result = make_searchable_pdf([scan], root / f"{kind}.pdf", OcrOptions(jobs=1))
        # as the pipeline does before signing: the PDF is saved again, its image streams as they were
        set_document_metadata(root / f"{kind}.pdf", title="x", document_code="000.00.12.H99.2026.KQ.000001",
                              agency_code="000.00.12.H99")
        out[kind] = ((root / f"{kind}.pdf").read_bytes(), result.page_one_gray)
    return out


@pytest.mark.parametrize("kind", KEPT)
def test_page_one_samples_kept_by_the_pdfs_maker_are_what_its_image_decodes_to(
        kept: dict[str, tuple[bytes, Any]], kind: str) -> None:
    """Signing in the process that made the PDF reads page 1's ink from them instead of decoding the image:
    the very same pixels, so the very same stamp place; kept only where they are exact."""
    pdf, known = kept[kind]
    assert bool(known) is KEPT[kind]
    box, rotate = _geometry(pdf)
    decoded, given = read_scanned_page(pdf, box, rotate), read_scanned_page(pdf, box, rotate, known)
    assert decoded is not None and given is not None
    assert np.array_equal(decoded.gray, given.gray) and decoded.words == given.words


def test_kept_samples_are_used_only_for_the_stream_they_decode(kept: dict[str, tuple[bytes, Any]]) -> None:
    pdf, known = kept["png-gray"]
    box, rotate = _geometry(pdf)
    ((key, gray),) = known.items()
    inked = read_scanned_page(pdf, box, rotate, {key: np.zeros_like(gray)})  # all ink: shows they were read
    assert inked is not None and inked.gray.max() < 128
    other = read_scanned_page(pdf, box, rotate, {bytes(16): np.zeros_like(gray)})
    decoded = read_scanned_page(pdf, box, rotate)
    assert other is not None and decoded is not None and np.array_equal(other.gray, decoded.gray)
