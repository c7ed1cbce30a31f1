"""The stamp and the QR code never cover the page's ink, and the stamp's text stays out of the header's lines.

Measured on rendered pages (poppler's pdftoppm) of the real pipeline's results for ``samples/batch``: page 1
is rendered before signing (the signed file's first revision) and after, and the stamp's and the QR code's
rectangles must hold no dark pixel of the original. The QR code must decode with zxing-cpp from a 200-dpi
render; pdftotext must keep the national motto's line whole. A page with no free space is still signed,
with the stamp in its corner, and is flagged for review in the catalog and the sidecar.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import img2pdf
import numpy as np
import pikepdf
import pytest
from pdfsig import pdfsig_check
from PIL import Image, ImageDraw, ImageFont
from robustness_support import record

from digitize.signing import STAMP_COVERS_INK, AgencySigner, DocumentQr, SigningOptions, verify_pdf

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
MOTTO = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
INK = 128  # a pixel darker than this (0-255) is ink, or than 0.6 x the paper's level on a dim photo
INK_ALLOWED = 12  # dark pixels (at 100 dpi) a rectangle may hold: a few dust specks, never a glyph or a line


@dataclasses.dataclass
class Result:
    name: str
    kind: str
    signed: bytes
    sidecar: dict[str, Any]
    needs_review: bool


def _run_batch(root: Path, batch: Path, endpoint: str, bucket: str, pki: Any) -> tuple[Any, list[Result]]:
    """Every document of ``batch`` through the real pipeline, visible stamp on; the archived results."""
    from digitize.config import load_settings
    from digitize.intake.manifest import read_manifest
    from digitize.pipeline import PipelineContext, process_documents, register_batch

    settings = dataclasses.replace(
        load_settings(), catalog_url=f"sqlite:///{root / 'catalog.db'}", s3_endpoint_url=endpoint, s3_bucket=bucket,
        signing_pkcs12=pki.pkcs12, signing_passphrase=pki.passphrase, trust_roots=(pki.root_cert,),
        signing_level="B-B", tsa_url=None, signing_stamp=True, ocr_jobs=2, quiet_seconds=0, move_done=False,
    )
    ctx = PipelineContext(settings)
    ctx.catalog.upgrade()
    ctx.catalog.import_agencies(SAMPLES / "agencies.csv")
    ctx.catalog.import_register(SAMPLES / "register.csv")
    ctx.archive.ensure_bucket()
    process_documents(ctx, register_batch(ctx.catalog, read_manifest(batch)).to_process, batch)
    results = []
    for doc in ctx.catalog.documents(status="ARCHIVED"):
        sidecar = json.loads(ctx.archive.get(doc.sidecar_key))
        name = next(f["original_name"] for f in sidecar["files"] if f["role"] == "original")
        results.append(Result(name, doc.kind, ctx.archive.get(doc.pdf_key), sidecar, doc.needs_review))
    return ctx, sorted(results, key=lambda r: r.name)


@pytest.fixture(scope="module")
def sample_results(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> list[Result]:
    root = tmp_path_factory.mktemp("stamp-batch")
    batch = root / "batch"
    shutil.copytree(SAMPLES / "batch", batch)
    _, results = _run_batch(root, batch, s3_server, "stamp-samples", demo_pki)
    assert {r.name for r in results} >= {"ly-lich-tu-phap.jpg", "quyen-su-dung-dat.png", "ket-hon.tif"}
    return results


def _first_revision(signed: bytes) -> bytes:
    """The PDF as it was before signing: signing appends an incremental update after its last %%EOF."""
    end = signed.rfind(b"%%EOF", 0, signed.index(b"/ByteRange")) + len(b"%%EOF")
    return signed[:end] + b"\n"


def _render(pdf: bytes, tmp: Path, name: str, dpi: int) -> Image.Image:
    path = tmp / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-cropbox", "-f", "1", "-l", "1", "-singlefile", "-png",
                    str(path), str(tmp / name)], check=True)
    with Image.open(tmp / f"{name}.png") as img:
        return img.convert("L")


def _rects(signed: bytes) -> tuple[dict[str, tuple[float, ...]], tuple[float, ...]]:
    """Rectangles of the stamp (signature widget) and of the QR code (stamp annotation), and the crop box."""
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        page = pdf.pages[0]
        box = tuple(float(v) for v in page.get("/CropBox", page.MediaBox))
        found = {}
        for annot in page.get("/Annots", []):
            kind = {"/Widget": "stamp", "/Stamp": "qr"}.get(str(annot.Subtype))
            if kind:
                found[kind] = tuple(float(v) for v in annot.Rect)
    return found, box


def _dark_pixels(image: Image.Image, rect: tuple[float, ...], box: tuple[float, ...], dpi: int) -> int:
    scale = dpi / 72
    x0, y0, x1, y1 = rect
    left, right = int((x0 - box[0]) * scale), int(np.ceil((x1 - box[0]) * scale))
    top, bottom = int((box[3] - y1) * scale), int(np.ceil((box[3] - y0) * scale))
    pixels = np.asarray(image)
    return int((pixels[top:bottom, left:right] < min(INK, 0.6 * float(np.median(pixels)))).sum())


def _check_no_ink_covered(signed: bytes, tmp: Path, *, with_qr: bool) -> None:
    rects, box = _rects(signed)
    assert set(rects) == ({"stamp", "qr"} if with_qr else {"stamp"}), rects
    before = _render(_first_revision(signed), tmp, "before", 100)
    after = _render(signed, tmp, "after", 100)
    for kind, rect in rects.items():
        assert _dark_pixels(before, rect, box, 100) <= INK_ALLOWED, (kind, rect)
        assert _dark_pixels(after, rect, box, 100) > 50, (kind, rect)  # and the stamp or the code is drawn there
    stamp = rects["stamp"]
    assert stamp[0] > (box[0] + box[2]) / 2 and stamp[3] > box[1] + (box[3] - box[1]) * 0.6  # top right
    if with_qr:
        assert rects["qr"][3] > box[1] + (box[3] - box[1]) / 2  # a top corner here (top left, by preference)


def test_no_sample_page_needs_review(sample_results: list[Result]) -> None:
    for result in sample_results:
        assert not result.needs_review, (result.name, result.sidecar["review_reasons"])
        assert result.sidecar["review_reasons"] == [] and result.sidecar["needs_review"] is False


def test_stamp_and_qr_cover_no_ink_on_the_sample_results(sample_results: list[Result], tmp_path: Path) -> None:
    for result in sample_results:
        _check_no_ink_covered(result.signed, tmp_path, with_qr=result.kind == "KQ")


def test_qr_decodes_from_a_200_dpi_render(sample_results: list[Result], tmp_path: Path) -> None:
    import zxingcpp

    results = [r for r in sample_results if r.kind == "KQ"]
    assert results
    for result in results:
        found = zxingcpp.read_barcodes(_render(result.signed, tmp_path, "qr", 200))
        assert len(found) == 1, result.name
        payload = json.loads(found[0].text)
        assert payload["ma_tai_lieu"] == result.sidecar["code"] and payload["ten_giay_to"] == result.sidecar["title"]
        rects, _ = _rects(result.signed)
        assert rects["qr"][2] - rects["qr"][0] < 75  # ~26 mm, not the 30 mm it used to take


def test_header_line_stays_intact_and_the_stamp_has_its_own_lines(sample_results: list[Result],
                                                                   tmp_path: Path) -> None:
    for result in sample_results:
        path = tmp_path / "t.pdf"
        path.write_bytes(result.signed)
        text = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
        lines = [line.strip() for line in text.splitlines()]
        assert MOTTO in lines, (result.name, text[:300])
        assert "SAO Y" in lines, (result.name, text[:300])
        assert any(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", line) for line in lines), text[:300]


def test_sample_signatures_verify_and_stay_pdfa(sample_results: list[Result], demo_pki: Any, tmp_path: Path) -> None:
    for result in sample_results:
        assert verify_pdf(result.signed, [demo_pki.root_cert]).valid, result.name
        with pikepdf.open(io.BytesIO(result.signed)) as pdf:
            meta = pdf.open_metadata()
            assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("2", "B")
    path = tmp_path / "one.pdf"
    path.write_bytes(sample_results[0].signed)
    sig = pdfsig_check(path, demo_pki.root_cert, tmp_path / "nss").signatures[0]
    assert sig.valid and sig.trusted, sig.raw


CORPUS = Path("/work/shared/corpus")


def _corpus_pages() -> list[Path]:
    return sorted(CORPUS.glob("dev_*.*")) if CORPUS.is_dir() else []


@pytest.mark.parametrize("source", _corpus_pages(), ids=lambda p: p.name)
def test_development_corpus_pages_need_no_review(source: Path, demo_pki: Any, tmp_path: Path) -> None:
    """Page 1 of each scan of the development corpus (dust, dark borders, show-through, a phone photo), OCR'd."""
    from digitize.ocr import OcrOptions, make_searchable_pdf

    page = source
    if source.suffix == ".tif":  # several pages: the stamp goes on the first
        with Image.open(source) as img:
            img.save(tmp_path / "page.tif", dpi=img.info["dpi"])
        page = tmp_path / "page.tif"
    make_searchable_pdf([page], tmp_path / "ocr.pdf", OcrOptions(jobs=2))
    pdf = (tmp_path / "ocr.pdf").read_bytes()
    signer = AgencySigner.from_options(SigningOptions(demo_pki.pkcs12, demo_pki.passphrase.encode(), visible=True))
    qr = DocumentQr("H99-1", "1.000110", "079123456789", "Giấy tờ", "Hệ thống", dt.datetime(2024, 1, 2, 9, 0))
    signed, _, flags = signer.sign_checked(pdf, document_code="000.00.12.H99.2024.KQ.000001", title="x", qr=qr)
    assert flags == ()
    _check_no_ink_covered(signed, tmp_path, with_qr=True)


# --- A page with no free space ------------------------------------------------------------------------------


def _full_page(path: Path) -> None:
    """An A4 page at 200 dpi written edge to edge with text: there is nowhere to put the stamp."""
    img = Image.new("L", (1654, 2339), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf", 36)
    for y in range(0, 2339, 40):
        draw.text((0, y), "Văn bản kín trang " * 12, fill=0, font=font)
    img.save(path, dpi=(200, 200))


def test_page_without_free_space_is_signed_and_flagged(demo_pki: Any, tmp_path: Path) -> None:
    _full_page(tmp_path / "full.png")
    pdf = img2pdf.convert(str(tmp_path / "full.png"))
    signer = AgencySigner.from_options(SigningOptions(demo_pki.pkcs12, demo_pki.passphrase.encode(), visible=True))
    qr = DocumentQr("H99-1", "1.000110", "079123456789", "Giấy tờ", "Hệ thống", dt.datetime(2024, 1, 2, 9, 0))
    signed, verdict, flags = signer.sign_checked(pdf, document_code="000.00.12.H99.2024.KQ.000001", title="x", qr=qr)
    assert flags == (STAMP_COVERS_INK,) and verdict.valid
    rects, box = _rects(signed)
    stamp = rects["stamp"]
    assert box[2] - stamp[2] < 20 and box[3] - stamp[3] < 20  # kept in its corner (Decree 30/2020)


def test_page_without_free_space_is_flagged_in_the_catalog_and_sidecar(tmp_path: Path, s3_server: str,
                                                                       demo_pki: Any) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    _full_page(batch / "kin-trang.png")
    with (batch / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "agency_code", "kind", "title", "issued_date"])
        writer.writerow(["kin-trang.png", "000.01.31.H99", "TP", "Tờ khai kín trang", "2024-05-06"])
    ctx, results = _run_batch(tmp_path, batch, s3_server, "stamp-full", demo_pki)
    [result] = results
    assert result.needs_review and result.sidecar["needs_review"] is True
    assert STAMP_COVERS_INK in result.sidecar["review_reasons"]
    [doc] = ctx.catalog.documents(status="ARCHIVED")
    signature = [e for e in ctx.catalog.events(doc.id) if e.event_type == "signature"]
    assert signature[-1].outcome == "warning" and STAMP_COVERS_INK in (signature[-1].detail or "")
    assert verify_pdf(result.signed, [demo_pki.root_cert]).valid
    record("bad input", "page written to its edges: no free space for the stamp", "ARCHIVED", None,
           f"signed, stamp in its corner; needs_review, review_reasons: {', '.join(result.sidecar['review_reasons'])}")
