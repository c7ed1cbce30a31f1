"""Bad input: each gets a stable reason code, a clear message, and the run goes on.

One batch holds every bad file at once (and a few good ones) and goes through the real pipeline:
file types are sniffed from bytes, originals are hashed before and after, and nothing outside the
batch is ever read. The no-op OCR engine is used where OCR itself is not the point.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import random
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pikepdf
import pytest
from imagegen import image_only_pdf, render_page
from pdf_tamper import without_acroform
from PIL import Image
from robustness_support import (
    COLUMNS,
    NOOP_OCR,
    SAMPLES,
    blank_png,
    make_context,
    png,
    record,
    register,
    row,
    write_batch,
)

from digitize.errors import ManifestError
from digitize.intake.encodings import encode_legacy
from digitize.intake.manifest import read_manifest

GROUP = "bad input"


def _jpeg(dpi: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(render_page(("GIẤY XÁC NHẬN",), dpi=dpi, width_in=3.0, height_in=1.5)).save(
        buffer, format="JPEG", quality=85, dpi=(dpi, dpi))
    return buffer.getvalue()


def _tiff(pages: int, *, size: int = 200) -> bytes:
    path_buffer = io.BytesIO()
    page = np.full((size, size), 255, dtype=np.uint8)
    page[size // 3: size // 3 + 8, 20: size - 20] = 0  # one dark bar: not blank, nothing to read
    images = [Image.fromarray(page).convert("1") for _ in range(pages)]
    images[0].save(path_buffer, format="TIFF", save_all=True, append_images=images[1:], dpi=(200, 200),
                   compression="group4")
    return path_buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int = 60_000) -> bytes:
    """A 60,000 × 60,000 PNG header with one row of data: 3.6 gigapixels declared, a few bytes on disk."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff" * side)) + _png_chunk(b"IEND", b""))


def _pdf(tmp: Path) -> bytes:
    return image_only_pdf(render_page(("GIẤY XÁC NHẬN",), width_in=3.0, height_in=1.5), tmp / "scan.pdf").read_bytes()


def _encrypted_pdf(tmp: Path) -> bytes:
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(_pdf(tmp))) as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(owner="owner-pw", user="user-pw"))
    return out.getvalue()


def _text_layer_pdf(tmp: Path) -> bytes:
    """A PDF that was OCR'd already (by this very pipeline, with real Tesseract)."""
    from digitize.ocr.recognize import OcrOptions, make_searchable_pdf

    source = tmp / "to-ocr.png"
    source.write_bytes(png(("GIẤY CHỨNG NHẬN", "quyền sử dụng đất"), width_in=4.0))
    saved = os.environ.pop("DIGITIZE_PLUGINS", None)
    try:
        make_searchable_pdf([source], tmp / "ocred.pdf", OcrOptions())
    finally:
        if saved is not None:
            os.environ["DIGITIZE_PLUGINS"] = saved
    return (tmp / "ocred.pdf").read_bytes()


def _zeros_flate(size: int) -> bytes:
    """A zlib stream of ``size`` (whole MiB) zero bytes, ~1/1000 of it on disk, made in no time: one deflate
    block of 1 MiB of zeros repeated (each is self-contained after a full flush), then the Adler-32 of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    return b"\x78\xda" + block * (size >> 20) + b"\x03\x00" + struct.pack(">I", ((size % 65521) << 16) | 1)


def _pdf_with(build: Any) -> bytes:
    """A one-page PDF (5 × 5 in) that ``build(pdf, page)`` fills; streams are written as given, never re-encoded."""
    out = io.BytesIO()
    with pikepdf.new() as pdf:
        page = pdf.add_blank_page(page_size=(360, 360))
        build(pdf, page)
        pdf.save(out, stream_decode_level=pikepdf.StreamDecodeLevel.none, compress_streams=False)
    return out.getvalue()


def _content_bomb_pdf(size: int = 600 << 20) -> bytes:
    """The page's content stream inflates to 600 MiB of zeros (the file is ~600 KB)."""
    def build(pdf: pikepdf.Pdf, page: pikepdf.Page) -> None:
        contents = pdf.make_stream(b"")
        contents.write(_zeros_flate(size), filter=pikepdf.Name.FlateDecode)
        page.obj.Contents = contents
    return _pdf_with(build)


def _image_bomb_pdf(size: int = 300 << 20) -> bytes:
    """A scan declared 1,000 × 1,000 gray (1 MB) whose Flate data inflates to 300 MiB."""
    def build(pdf: pikepdf.Pdf, page: pikepdf.Page) -> None:
        image = pdf.make_stream(b"")
        image.write(_zeros_flate(size), filter=pikepdf.Name.FlateDecode)
        image.stream_dict.update({"/Type": pikepdf.Name.XObject, "/Subtype": pikepdf.Name.Image, "/Width": 1000,
                                  "/Height": 1000, "/BitsPerComponent": 8, "/ColorSpace": pikepdf.Name.DeviceGray})
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.make_indirect(image)))
        page.obj.Contents = pdf.make_stream(b"q 360 0 0 360 0 0 cm /Im0 Do Q")
    return _pdf_with(build)


def _nested_forms_pdf(depth: int = 5000) -> bytes:
    """Form XObjects nested ``depth`` deep, each drawing the next (issue 17: RecursionError, never quarantined)."""
    def build(pdf: pikepdf.Pdf, page: pikepdf.Page) -> None:
        inner: Any = None
        for _ in range(depth):
            form = pdf.make_stream(b"/F Do" if inner is not None else b"0 0 10 10 re f")
            form.stream_dict.update({"/Type": pikepdf.Name.XObject, "/Subtype": pikepdf.Name.Form,
                                     "/BBox": pikepdf.Array([0, 0, 100, 100])})
            if inner is not None:
                form.stream_dict.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(F=inner))
            inner = pdf.make_indirect(form)
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(F=inner))
        page.obj.Contents = pdf.make_stream(b"/F Do")
    return _pdf_with(build)


# file name → (bytes, expected status, expected reason, what the case is)
def _cases(tmp: Path, signer: Any) -> dict[str, tuple[bytes, str, str | None, str]]:
    good = png(("GIẤY XÁC NHẬN", "Số 7/2024"))
    return {
        "zero.png": (b"", "QUARANTINED", "EMPTY_FILE", "zero-byte file"),
        "truncated.png": (good[: len(good) // 2], "QUARANTINED", "CORRUPT_FILE", "truncated PNG"),
        "truncated.jpg": (_jpeg()[:1500], "QUARANTINED", "CORRUPT_FILE", "truncated JPEG"),
        "truncated.tif": (_tiff(3)[:-300], "QUARANTINED", "CORRUPT_FILE", "truncated TIFF"),
        "corrupt.pdf": (b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>>\n" + os.urandom(300), "QUARANTINED",
                        "CORRUPT_FILE", "corrupt PDF"),
        "encrypted.pdf": (_encrypted_pdf(tmp), "QUARANTINED", "ENCRYPTED_PDF", "encrypted PDF"),
        "signed.pdf": (signer.sign(_pdf(tmp), document_code="X", title="t"), "QUARANTINED", "ALREADY_SIGNED",
                       "PDF already digitally signed (not OCR'd over)"),
        "signed-no-acroform.pdf": (without_acroform(signer.sign(_pdf(tmp), document_code="Y", title="t")),
                                   "QUARANTINED", "ALREADY_SIGNED", "signed PDF with its /AcroForm removed (pikepdf)"),
        "bomb.png": (_bomb_png(), "QUARANTINED", "IMAGE_TOO_LARGE", "decompression bomb: PNG declaring 60,000×60,000"),
        "content-bomb.pdf": (_content_bomb_pdf(), "QUARANTINED", "DECODED_TOO_LARGE",
                             "decompression bomb: PDF content stream inflating to 600 MiB (600 KB file)"),
        "image-bomb.pdf": (_image_bomb_pdf(), "QUARANTINED", "DECODED_TOO_LARGE",
                           "decompression bomb: PDF image declared 1,000×1,000 whose data inflates to 300 MiB"),
        "nested-forms.pdf": (_nested_forms_pdf(), "QUARANTINED", "PDF_TOO_COMPLEX",
                             "PDF with 5,000 nested form XObjects (recursion)"),
        "word.png": (b"PK\x03\x04" + os.urandom(200), "QUARANTINED", "UNSUPPORTED_FORMAT",
                     "ZIP/DOCX named .png (extension lies, not an image)"),
        "notes.jpg": ("Ghi chú: không phải ảnh\n".encode() * 20, "QUARANTINED", "UNSUPPORTED_FORMAT",
                      "text file named .jpg"),
        "really-a-png.jpg": (png(("Tệp PNG mang đuôi .jpg",)), "ARCHIVED", None, "PNG whose name says .jpg"),
        "text-layer.pdf": (_text_layer_pdf(tmp), "ARCHIVED", None, "PDF that already has a text layer"),
        "blank.png": (blank_png(), "ARCHIVED", None, "blank page"),
        "low-dpi.png": (png(("Giấy 100 dpi",), dpi=100, width_in=4.0, height_in=2.0), "ARCHIVED", None,
                        "page at 100 dpi, DIGITIZE_LOW_DPI_ACTION=flag"),
        "good.png": (good, "ARCHIVED", None, "good page"),
    }


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, s3_server: str, demo_pki: Any) -> dict[str, Any]:
    from digitize.pipeline.stages import process_documents

    root = tmp_path_factory.mktemp("bad")
    saved = os.environ.get("DIGITIZE_PLUGINS")
    os.environ["DIGITIZE_PLUGINS"] = NOOP_OCR
    try:
        ctx = make_context(root, s3_server, demo_pki, "bad-input")
        cases = _cases(root, ctx.signer)
        rows = [row(name, title=what) for name, (_, _, _, what) in cases.items()]
        rows.append(row("duplicate-of-good.png", title="same bytes as good.png"))
        files = {name: data for name, (data, _, _, _) in cases.items()}
        files["duplicate-of-good.png"] = files["good.png"]
        batch = write_batch(root / "inbox", "batch-bad", files, rows)
        outside = root / "outside.png"
        outside.write_bytes(png(("not yours",)))
        before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in batch.iterdir() if p.is_file()}
        registered = register(ctx, batch)
        outcomes = {ctx.catalog.get_document(o.document_id).files[0].name: o
                    for o in process_documents(ctx, registered.to_process, batch)}
        after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in batch.iterdir() if p.is_file()}
    finally:
        if saved is None:
            os.environ.pop("DIGITIZE_PLUGINS", None)
        else:
            os.environ["DIGITIZE_PLUGINS"] = saved
    return {"ctx": ctx, "cases": cases, "outcomes": outcomes, "registered": registered, "batch": batch,
            "before": before, "after": after, "root": root}


def test_every_bad_file_gets_its_reason_and_the_run_goes_on(bad: dict[str, Any]) -> None:
    catalog = bad["ctx"].catalog
    for name, (_, status, reason, what) in bad["cases"].items():
        outcome = bad["outcomes"][name]
        doc = catalog.get_document(outcome.document_id)
        assert (outcome.status, outcome.reason) == (status, reason), (name, doc.message)
        if status == "QUARANTINED":
            assert name in doc.message and "—" in doc.message, doc.message  # which file, then what to do
            assert str(bad["batch"]) not in doc.message, "a server path in a message for officers"
            note = (doc.message or "").split(" — ")[0][:90]
        else:
            sidecar = json.loads(bad["ctx"].archive.get(doc.sidecar_key))
            flags = sorted({f for page in sidecar["ocr"]["pages"] for f in page["flags"]})
            note = f"{doc.pages} page(s), flags: {', '.join(flags) or 'none'}"
        record(GROUP, what, outcome.status, outcome.reason, note)


def test_sidecar_flags_blank_low_dpi_and_text_layer_pages(bad: dict[str, Any]) -> None:
    ctx = bad["ctx"]
    flags = {}
    for name in ("blank.png", "low-dpi.png", "text-layer.pdf", "really-a-png.jpg"):
        doc = ctx.catalog.get_document(bad["outcomes"][name].document_id)
        sidecar = json.loads(ctx.archive.get(doc.sidecar_key))
        flags[name] = set(sidecar["ocr"]["pages"][0]["flags"])
        if name == "really-a-png.jpg":
            assert doc.original_keys[0].endswith("/originals/00.png")  # type from the bytes, not the name
        if name == "low-dpi.png":
            assert doc.needs_review
    assert "BLANK" in flags["blank.png"]
    assert "LOW_RESOLUTION" in flags["low-dpi.png"]
    assert "TEXT_LAYER" in flags["text-layer.pdf"]


def test_same_file_twice_in_one_batch_and_across_batches(bad: dict[str, Any]) -> None:
    registered = bad["registered"]
    assert [d.key for d in registered.duplicates] == ["duplicate-of-good.png"]
    record(GROUP, "same file twice in one batch", "DUPLICATE (not processed)", None, "reported with the first's code")
    ctx = bad["ctx"]
    files = {"again.png": bad["cases"]["good.png"][0]}
    batch2 = write_batch(bad["root"] / "inbox", "batch-bad-2", files, [row("again.png")])
    again = register(ctx, batch2)
    good = ctx.catalog.get_document(bad["outcomes"]["good.png"].document_id)
    assert again.to_process == () and again.duplicates[0].existing_code == good.code
    record(GROUP, "same file again in a later batch", "DUPLICATE (not processed)", None,
           "reported with the archived document's code")


def test_originals_are_never_modified_moved_or_deleted(bad: dict[str, Any]) -> None:
    assert bad["after"] == bad["before"]


def test_large_tiff_streams(tmp_path: Path, s3_server: str, demo_pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 small pages in one TIFF are archived page by page: the peak memory of the process that
    does it is no larger than for 100 pages (absolute figures depend on the machine and its load)."""
    import json
    import subprocess
    import sys

    from robustness_support import REPO, settings_env

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "big-tiff", ocr_jobs=2)
    script = ("import json, resource, sys\nfrom pathlib import Path\n"
              "from digitize.pipeline.stages import PipelineContext, process_document\n"
              "o = process_document(PipelineContext(), int(sys.argv[2]), Path(sys.argv[1]))\n"
              "print(json.dumps([o.status, o.pages, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    env.update(settings_env(ctx.settings), DIGITIZE_PLUGINS=NOOP_OCR)
    peaks = {}
    for count in (100, 1000):
        name = f"pages-{count}.tif"
        batch = write_batch(tmp_path / "inbox", f"batch-{count}", {name: _tiff(count)}, [row(name)])
        doc_id = register(ctx, batch).to_process[0]
        done = subprocess.run([sys.executable, "-c", script, str(batch), str(doc_id)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        status, pages, max_rss_kb = json.loads(done.stdout.strip().splitlines()[-1])
        assert (status, pages) == ("ARCHIVED", count)
        peaks[count] = max_rss_kb / 1024
    growth = peaks[1000] - peaks[100]
    assert growth < 150, f"peak memory {peaks[100]:.0f} MB for 100 pages, {peaks[1000]:.0f} MB for 1,000: not streamed"
    record(GROUP, "1,000-page TIFF", "ARCHIVED", None,
           f"1000 pages, peak RSS {round(peaks[1000], -1):.0f} MB ({round(peaks[100], -1):.0f} MB for 100 pages)")


def test_bombs_are_refused_quickly_without_decoding_them(tmp_path: Path) -> None:
    """The page loader measures streams with capped decoding: no bomb is inflated in memory, none takes long."""
    import resource
    import time

    from digitize.errors import DecodedTooLarge, PdfTooComplex
    from digitize.intake import scan_document

    for name, data, error in (("content.pdf", _content_bomb_pdf(), DecodedTooLarge),
                              ("image.pdf", _image_bomb_pdf(), DecodedTooLarge),
                              ("nested.pdf", _nested_forms_pdf(), PdfTooComplex)):
        path = tmp_path / name
        path.write_bytes(data)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        with pytest.raises(error) as refused:
            list(scan_document([path]))
        elapsed = time.monotonic() - started
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert elapsed < 10, f"{name}: {elapsed:.1f} s to refuse"
        assert grown_mb < 100, f"{name}: peak memory grew by {grown_mb:.0f} MB"
        assert name in refused.value.message


@pytest.mark.parametrize(("what", "setting", "pages", "reason", "words"), [
    ("5-page TIFF, DIGITIZE_MAX_PAGES=3", ("DIGITIZE_MAX_PAGES", "3"), 5, "TOO_MANY_PAGES", "DIGITIZE_MAX_PAGES"),
    ("40-page TIFF decoding to 1.6 MB, DIGITIZE_MAX_DECODED_MB=1", ("DIGITIZE_MAX_DECODED_MB", "1"), 40,
     "DECODED_TOO_LARGE", "DIGITIZE_MAX_DECODED_MB"),
    ("3-page TIFF, DIGITIZE_MAX_PAGES=3", ("DIGITIZE_MAX_PAGES", "3"), 3, None, ""),
])
def test_document_limits_come_from_the_settings(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                monkeypatch: pytest.MonkeyPatch, what: str, setting: tuple[str, str],
                                                pages: int, reason: str | None, words: str) -> None:
    from digitize.pipeline.stages import process_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    monkeypatch.setenv(*setting)
    ctx = make_context(tmp_path, s3_server, demo_pki, f"limits-{pages}")
    batch = write_batch(tmp_path / "inbox", "batch-limits", {"stack.tif": _tiff(pages)}, [row("stack.tif")])
    outcome = process_document(ctx, register(ctx, batch).to_process[0], batch)
    doc = ctx.catalog.get_document(outcome.document_id)
    if reason is None:
        assert outcome.status == "ARCHIVED", doc.message
        return
    assert (outcome.status, outcome.reason) == ("QUARANTINED", reason), doc.message
    assert words in doc.message and "stack.tif" in doc.message and doc.code is None
    record(GROUP, what, outcome.status, outcome.reason, doc.message.split(" — ")[0][:90])


def test_low_dpi_quarantined_when_configured(tmp_path: Path, s3_server: str, demo_pki: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.pipeline.stages import process_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "low-dpi-q", low_dpi_action="quarantine")
    batch = write_batch(tmp_path / "inbox", "batch-low", {"low.png": png(("Giấy",), dpi=100, width_in=4.0)},
                        [row("low.png")])
    doc_id = register(ctx, batch).to_process[0]
    outcome = process_document(ctx, doc_id, batch)
    doc = ctx.catalog.get_document(doc_id)
    assert (outcome.status, outcome.reason) == ("QUARANTINED", "LOW_RESOLUTION")
    assert "100 dpi" in doc.message and "rescan" in doc.message and doc.code is None
    record(GROUP, "page at 100 dpi, DIGITIZE_LOW_DPI_ACTION=quarantine", outcome.status, outcome.reason,
           "no code allocated")


def test_unknown_agency_is_quarantined(tmp_path: Path, s3_server: str, demo_pki: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.pipeline.stages import process_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "agency-unknown")
    batch = write_batch(tmp_path / "inbox", "batch-agency", {"a.png": png()},
                        [row("a.png", agency_code="000.00.77.H98")])
    outcome = process_document(ctx, register(ctx, batch).to_process[0], batch)
    assert (outcome.status, outcome.reason) == ("QUARANTINED", "AGENCY_UNKNOWN")
    record(GROUP, "well-formed agency code not in the catalog", outcome.status, outcome.reason)


# --------------------------------------------------------------------------- manifests


def _manifest_batch(tmp: Path, lines: list[list[str]], *, files: tuple[str, ...] = ("a.png",),
                    header: list[str] | None = None, encoding: str | None = None, bom: bool = False) -> Path:
    batch = tmp / "batch-m"
    batch.mkdir(parents=True, exist_ok=True)
    for name in files:
        (batch / name).write_bytes(png())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header or list(COLUMNS))
    writer.writerows(lines)
    text = buffer.getvalue()
    raw = encode_legacy(text, encoding) if encoding in ("tcvn3", "vni") else text.encode(encoding or "utf-8")
    (batch / "manifest.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)
    return batch


def _line(file: str = "a.png", *, agency: str = "000.00.12.H99", title: str = "Giấy chứng nhận quyền sử dụng đất",
          issued: str = "2024-03-01") -> list[str]:
    return [file, agency, "KQ", title, issued, "", "", ""]


def test_manifest_problems_are_refused_row_by_row(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(png(("not yours",)))
    batch = _manifest_batch(tmp_path, [
        _line(), _line("b.png", issued="2024-02-30"), _line("c.png", agency="000.0.12.H99"),
        _line("/etc/passwd"), _line("../secret.png"), _line("link.png"), _line("missing.png"),
    ], files=("a.png", "b.png", "c.png", "stray.png"))
    os.symlink(outside, batch / "link.png")
    plan = read_manifest(batch)
    assert [d.files for d in plan.documents] == [("a.png",)]
    by_file = {e.file: e for e in plan.errors}
    cases = {
        "b.png": ("MANIFEST_INVALID", "bad date (2024-02-30)", "issued_date"),
        "c.png": ("MANIFEST_INVALID", "invalid agency code (000.0.12.H99)", "agency_code"),
        "/etc/passwd": ("MANIFEST_INVALID", "absolute path in 'file'", "inside the batch"),
        "../secret.png": ("MANIFEST_INVALID", "'..' in 'file'", "inside the batch"),
        "link.png": ("MANIFEST_INVALID", "symlink leading outside the batch", "outside the batch"),
        "missing.png": ("FILE_MISSING", "row for a file that does not exist", "not in the batch"),
        "stray.png": ("FILE_NOT_IN_MANIFEST", "file with no row", "no manifest row"),
    }
    for file, (reason, what, words) in cases.items():
        error = by_file[file]
        assert error.reason == reason and words in error.message, (file, error)
        record(GROUP, f"manifest: {what}", "ROW REFUSED", reason, error.message[:90])


@pytest.mark.parametrize(("what", "header", "words"), [
    ("missing column (title)", [c for c in COLUMNS if c != "title"], "missing columns"),
    ("unknown column (titel)", [*COLUMNS, "titel"], "titel"),
    ("column named twice (holder_id, the last would win)", [*COLUMNS, "holder_id"], "more than once"),
])
def test_manifest_header_problems_refuse_the_whole_manifest(tmp_path: Path, what: str, header: list[str],
                                                             words: str) -> None:
    line = _line() + ([""] if len(header) > len(COLUMNS) else [])
    if len(header) < len(COLUMNS):
        line = [v for c, v in zip(COLUMNS, line, strict=True) if c in header]
    with pytest.raises(ManifestError) as info:
        read_manifest(_manifest_batch(tmp_path, [line], header=header))
    assert words in info.value.message
    record(GROUP, f"manifest: {what}", "MANIFEST REFUSED", info.value.reason, info.value.message[:90])


TITLE = "Giấy chứng nhận quyền sử dụng đất"


@pytest.mark.parametrize(("what", "encoding", "bom"), [
    ("UTF-8 with BOM", "utf-8", True),
    ("Windows-1258 (cp1258)", "cp1258-decomposed", False),
    ("TCVN3 (ABC)", "tcvn3", False),
    ("VNI-Windows", "vni", False),
])
def test_legacy_encodings_are_recognised_and_converted(tmp_path: Path, what: str, encoding: str, bom: bool) -> None:
    lines = [_line(title=TITLE), _line("b.png", title="Cộng hòa xã hội chủ nghĩa Việt Nam, Người yêu cầu")]
    if encoding == "cp1258-decomposed":
        batch = _manifest_batch(tmp_path, lines, files=("a.png", "b.png"))
        text = (batch / "manifest.csv").read_text(encoding="utf-8")
        (batch / "manifest.csv").write_bytes(_cp1258(text))
    else:
        batch = _manifest_batch(tmp_path, lines, files=("a.png", "b.png"), encoding=encoding, bom=bom)
    plan = read_manifest(batch)
    assert plan.errors == ()
    assert [d.title for d in plan.documents] == [TITLE, "Cộng hòa xã hội chủ nghĩa Việt Nam, Người yêu cầu"]
    assert plan.encoding == {"utf-8": "UTF-8", "cp1258-decomposed": "Windows-1258", "tcvn3": "TCVN3 (ABC)",
                             "vni": "VNI"}[encoding]
    record(GROUP, f"manifest in {what}", "CONVERTED" if encoding != "utf-8" else "ACCEPTED", None,
           f"read as {plan.encoding}; titles exact")


def _cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese Windows writes it: base letters precomposed, tones as combining marks."""
    import unicodedata

    out = []
    for char in unicodedata.normalize("NFC", text):
        parts = unicodedata.normalize("NFD", char)
        tones = "".join(c for c in parts if c in "\u0300\u0301\u0303\u0309\u0323")
        out.append(unicodedata.normalize("NFC", "".join(c for c in parts if c not in tones)) + tones)
    return "".join(out).encode("cp1258")


def test_legacy_encoder_on_real_words() -> None:
    """The tables against well-known legacy spellings (how these files look when opened as Windows-1252)."""
    assert encode_legacy("Cộng hòa xã hội chủ nghĩa Việt Nam", "tcvn3").decode("cp1252") == \
        "Céng hßa x· héi chñ nghÜa ViÖt Nam"
    assert encode_legacy("Độc lập - Tự do - Hạnh phúc", "tcvn3").decode("cp1252") == "§éc lËp - Tù do - H¹nh phóc"
    assert encode_legacy("Giấy chứng nhận quyền sử dụng đất", "vni").decode("cp1252") == \
        "Giaáy chöùng nhaän quyeàn söû duïng ñaát"
    assert encode_legacy("Người", "vni").decode("cp1252") == "Ngöôøi"


@pytest.mark.parametrize(("what", "data"), [
    ("TCVN3 typed with an upper-case font", encode_legacy("a.png,000.00.12.H99,KQ,GIẤY CHỨNG NHẬN,2024-03-01,,,\r\n",
                                                           "tcvn3")),
    ("bytes that are no Vietnamese encoding", "a.png,000.00.12.H99,KQ,Grüße été,2024-03-01,,,\r\n".encode("latin-1")),
])
def test_ambiguous_legacy_encoding_is_refused_with_how_to_save_utf8(tmp_path: Path, what: str, data: bytes) -> None:
    batch = _manifest_batch(tmp_path, [])
    (batch / "manifest.csv").write_bytes(",".join(COLUMNS).encode() + b"\r\n" + data)
    with pytest.raises(ManifestError) as info:
        read_manifest(batch)
    assert "CSV UTF-8" in info.value.hint
    record(GROUP, f"manifest: {what}", "MANIFEST REFUSED", info.value.reason, "hint: Save As 'CSV UTF-8'")


def test_nfd_text_is_normalised_to_nfc(tmp_path: Path) -> None:
    import unicodedata

    plan = read_manifest(_manifest_batch(tmp_path, [_line(title=unicodedata.normalize("NFD", TITLE))]))
    assert plan.documents[0].title == TITLE
    record(GROUP, "manifest text in NFD", "ACCEPTED", None, "normalised to NFC")


def test_manifest_symlinked_outside_is_refused(tmp_path: Path) -> None:
    batch = _manifest_batch(tmp_path, [_line()])
    elsewhere = tmp_path / "elsewhere.csv"
    (batch / "manifest.csv").rename(elsewhere)
    os.symlink(elsewhere, batch / "manifest.csv")
    with pytest.raises(ManifestError, match="outside the batch"):
        read_manifest(batch)
    record(GROUP, "manifest.csv is a symlink leading outside the batch", "MANIFEST REFUSED", "MANIFEST_INVALID")


def _stray_quote_manifest(batch: Path) -> None:
    """A quote opened in a title and never closed: the rest of the file (3,000 rows) reads as one cell."""
    rest = "".join(f"r{i}.png,000.00.12.H99,KQ,Giấy xác nhận số {i},2024-03-01,,,\r\n" for i in range(3_000))
    (batch / "manifest.csv").write_text(",".join(COLUMNS) + '\r\na.png,000.00.12.H99,KQ,"Giấy khai sinh,2024-03-01,,,'
                                        + "\r\n" + rest, encoding="utf-8")


def _oversized_manifest(batch: Path) -> None:
    """A 40 MiB manifest (a sparse file: the header, then zero bytes), over the size limit."""
    with (batch / "manifest.csv").open("wb") as handle:
        handle.write(",".join(COLUMNS).encode() + b"\r\n")
        handle.truncate(40 * 1024 * 1024)


def _xlsx_manifest(batch: Path) -> None:
    """An Excel workbook saved under the name manifest.csv (a ZIP archive of XML parts)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/sharedStrings.xml", "<sst><si><t>Giấy khai sinh 079203001234</t></si></sst>")
    (batch / "manifest.csv").write_bytes(buffer.getvalue())


@pytest.mark.parametrize(("what", "write", "words"), [
    ("a cell over 131,072 characters (a quote never closed)", _stray_quote_manifest, "row 2: a cell is longer"),
    ("a cell of 200,000 characters", lambda batch: (batch / "manifest.csv").write_text(
        ",".join(COLUMNS) + "\r\n" + ",".join(_line(title="x" * 200_000)) + "\r\n", encoding="utf-8"),
     "row 2: a cell is longer"),
    ("file of 40 MiB (over the size limit)", _oversized_manifest, "40 MiB"),
    ("random binary bytes", lambda batch: (batch / "manifest.csv").write_bytes(random.Random(17).randbytes(65_536)),
     "not UTF-8"),
    ("Excel workbook (XLSX) saved as manifest.csv", _xlsx_manifest, "Excel workbook"),
    ("UTF-16 text (Excel 'Unicode Text')", lambda batch: (batch / "manifest.csv").write_bytes(
        (",".join(COLUMNS) + "\r\n" + ",".join(_line()) + "\r\n").encode("utf-16")), "UTF-16"),
])
def test_unreadable_manifest_refuses_its_batch_with_a_message(tmp_path: Path, what: str, write: Any,
                                                              words: str) -> None:
    """Whatever makes a manifest unreadable ends as ManifestError (the DAGs refuse that batch and go on)."""
    batch = _manifest_batch(tmp_path, [])
    write(batch)
    with pytest.raises(ManifestError) as info:
        read_manifest(batch)
    message = info.value.message
    assert words in message and len(message) < 400, message
    assert "\x00" not in message and "079203001234" not in message, message
    assert "manifest.csv" in message and info.value.hint
    record(GROUP, f"manifest: {what}", "MANIFEST REFUSED", info.value.reason, message[:90])


def test_a_bad_manifest_does_not_stop_the_next_batch(tmp_path: Path) -> None:
    """What the DAGs' register step does, batch by batch: the unreadable manifest is refused, the next registered."""
    from digitize.intake import discover_batches
    from digitize.pipeline import register_batch

    inbox = tmp_path / "inbox"
    _stray_quote_manifest(write_batch(inbox, "batch-1-bad", {"a.png": png()}, []))
    write_batch(inbox, "batch-2-good", {"b.png": png(("Giấy xác nhận", "Số 2/2024"))}, [row("b.png")])
    catalog = _catalog(tmp_path)
    refused, registered = [], []
    for batch_dir in discover_batches(inbox, quiet_seconds=0):
        try:
            plan = read_manifest(batch_dir)
        except ManifestError as exc:
            refused.append((batch_dir.name, exc.reason))
            continue
        registered.append((batch_dir.name, len(register_batch(catalog, plan).to_process)))
    assert refused == [("batch-1-bad", "MANIFEST_INVALID")]
    assert registered == [("batch-2-good", 1)]
    record(GROUP, "manifest with a cell over 131,072 characters, next to a good batch", "MANIFEST REFUSED",
           "MANIFEST_INVALID", "the next batch was registered")


def _catalog(tmp: Path) -> Any:
    """A SQLite catalog with the sample agencies: registration needs no S3 nor PKI."""
    from digitize.catalog import Catalog

    catalog = Catalog(f"sqlite:///{tmp / 'catalog.db'}")
    catalog.upgrade()
    catalog.import_agencies(SAMPLES / "agencies.csv")
    return catalog


def test_a_register_with_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    """The last of two holder_id columns would win, and the citizen ID in the first would vanish silently."""
    from digitize.errors import ImportFileError

    catalog = _catalog(tmp_path)
    path = tmp_path / "register.csv"
    path.write_text("register_id,agency_code,title,issued_date,holder_id,Holder_ID\r\n"
                    "REG-9000,000.00.12.H99,Hai cột,2024-01-02,079203001234,\r\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        catalog.import_register(path)
    assert "more than once" in info.value.message and "079203001234" not in str(info.value)
    assert catalog.register_frame().empty
    record(GROUP, "register import: column named twice (holder_id, Holder_ID)", "FILE REFUSED", info.value.reason,
           info.value.message[:90])


HOLDER = "079203001234"


@pytest.mark.parametrize(("what", "column", "value"), [
    ("NUL byte in 'title'", "title", "Giấy khai sinh Nguyễn Văn An\x00"),
    ("NUL byte in 'holder_id'", "holder_id", HOLDER + "\x00"),
    ("NUL byte in 'file'", "file", "a.png\x00.jpg"),
    ("terminal escape (ESC) in 'holder_id'", "holder_id", "\x1b[2J" + HOLDER),
    ("line break inside 'title' (multi-line Excel cell)", "title", "Giấy khai sinh\nNguyễn Văn An"),
    ("carriage return in 'title'", "title", "Giấy khai sinh\rNguyễn Văn An"),
    ("right-to-left override (U+202E) in 'title'", "title", "Giấy khai sinh \u202enA năV nễyugN"),
    ("bidi isolate (U+2066) in 'document_id'", "document_id", "\u2066KS-2024-01"),
    ("DEL (U+007F) in 'register_id'", "register_id", "SO-\x7f01"),
    ("C1 control (U+0085) in 'title'", "title", "Giấy khai sinh\x85Nguyễn Văn An"),
])
def test_control_characters_refuse_the_row_without_echoing_it(tmp_path: Path, what: str, column: str,
                                                              value: str) -> None:
    """The row is refused, naming row and column; the cell (personal data, maybe) is never echoed or stored."""
    from digitize.pipeline import register_batch

    bad = {"file": "a.png", "title": "Giấy khai sinh Nguyễn Văn An", "holder_id": HOLDER, column: value}
    batch = write_batch(tmp_path / "inbox", "batch-ctl", {"a.png": png(), "b.png": png(("Giấy xác nhận",))},
                        [row(bad.pop("file"), **bad), row("b.png")])
    plan = read_manifest(batch)
    assert [d.files for d in plan.documents] == [("b.png",)]
    error = next(e for e in plan.errors if e.row == 2)
    assert error.reason == "MANIFEST_INVALID" and f"'{column}'" in error.message, error
    for text in (error.message, error.file):
        assert HOLDER not in text and "Nguyễn" not in text and "KS-2024" not in text, text
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u202e\u2066" for c in text), text
    catalog = _catalog(tmp_path)
    assert len(register_batch(catalog, plan).to_process) == 1
    details = " ".join(e.detail for e in catalog.batch_events("batch-ctl"))
    assert f"'{column}'" in details and HOLDER not in details and "Nguyễn" not in details
    record(GROUP, f"manifest: {what}", "ROW REFUSED", error.reason, error.message[:90])


def test_file_name_too_long_for_the_file_system_is_a_missing_file(tmp_path: Path) -> None:
    """200 Vietnamese letters fit the schema's 255 characters but not the file system's 255 bytes."""
    long_name = "giấy-khai-sinh-" + "ấ" * 200 + ".png"
    plan = read_manifest(_manifest_batch(tmp_path, [_line(), _line(long_name)]))
    assert [d.files for d in plan.documents] == [("a.png",)]
    error = next(e for e in plan.errors if e.row == 3)
    assert error.reason == "FILE_MISSING", error
    record(GROUP, "manifest: file name longer than the file system allows (200 × 'ấ')", "ROW REFUSED", error.reason,
           "row refused, the other rows go on")


# --------------------------------------------------------------------------- quarantine, resubmission, done/


def test_quarantine_list_then_fixed_resubmission_archives(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from digitize.pipeline.stages import process_document
    from digitize.presentation.cli import main

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "resubmit")
    good = png(("Giấy khai sinh",))
    batch = write_batch(tmp_path / "inbox", "batch-q", {"scan.png": good[:400]}, [row("scan.png")])
    first = process_document(ctx, register(ctx, batch).to_process[0], batch)
    assert first.reason == "CORRUPT_FILE"
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", ctx.settings.catalog_url)
    assert main(["quarantine", "list"]) == 0
    out = capsys.readouterr().out
    assert "[CORRUPT_FILE]" in out and "scan.png" in out and "rescan" in out
    fixed = write_batch(tmp_path / "inbox", "batch-q-fixed", {"scan.png": good}, [row("scan.png")])
    second = process_document(ctx, register(ctx, fixed).to_process[0], fixed)
    assert second.status == "ARCHIVED"
    record(GROUP, "quarantined scan fixed and resubmitted in a new batch", "ARCHIVED", None,
           "`quarantine list` showed [CORRUPT_FILE] with what to do")


def test_verified_originals_move_to_done_only_when_configured(tmp_path: Path, s3_server: str, demo_pki: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.pipeline.stages import process_documents

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "move-done", move_done=True)
    files = {"ok.png": png(), "bad.png": b""}
    batch = write_batch(tmp_path / "inbox", "batch-done", files, [row("ok.png"), row("bad.png", title="Rỗng")])
    outcomes = process_documents(ctx, register(ctx, batch).to_process, batch)
    assert [o.status for o in outcomes] == ["ARCHIVED", "QUARANTINED"]
    assert (batch / "done" / "ok.png").read_bytes() == files["ok.png"] and not (batch / "ok.png").exists()
    assert (batch / "bad.png").exists(), "a quarantined original must stay where it is"
    again = read_manifest(batch)
    assert again.documents[0].files == ("bad.png",) and again.errors == ()
    ctx2 = make_context(tmp_path / "off", s3_server, demo_pki, "move-done-off")
    assert dataclasses.replace(ctx2.settings).move_done is False
    record(GROUP, "DIGITIZE_MOVE_DONE=true", "ARCHIVED", None,
           "original moved to done/ after read-back; quarantined one left in place")
