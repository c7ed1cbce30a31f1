"""The signed PDF keeps every scan's pixels: whatever encoding it stores, decoding gives the original's pixels.

Decree 30/2020 asks for the scan's colour mode and resolution; the archive may re-encode only
losslessly. Each kind of input is put through the real OCR path and the page's image is decoded
back out of the PDF (pikepdf, i.e. qpdf's Flate with PNG predictors, CCITT through Pillow, JPEG
through Pillow) and compared with Pillow's decoding of the original file.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import imagegen
import numpy as np
import pikepdf
import pytest
from PIL import Image

from digitize.ocr import OcrOptions, make_searchable_pdf


def _page(dpi: int) -> np.ndarray:
    return imagegen.render_page(imagegen.LINES[:3], dpi=dpi, width_in=4.0, height_in=1.6, font_pt=12.0)


def _colour(gray: np.ndarray) -> np.ndarray:
    """RGB with warm paper and a little noise, so every channel differs and no row is flat."""
    noise = np.random.default_rng(7).integers(0, 6, gray.shape, dtype=np.uint8)
    return np.stack([gray * 0.92, gray * 0.97, gray], axis=-1).astype(np.uint8) - noise[..., None]


def _write(kind: str, path: Path) -> Path:
    gray = _page(300)
    if kind == "jpeg-colour":
        Image.fromarray(_colour(gray)).save(path, format="JPEG", quality=85, dpi=(300, 300))
    elif kind == "png-gray":
        Image.fromarray(gray).save(path, format="PNG", dpi=(300, 300))
    elif kind == "tiff-g4":
        imagegen.save_tiff([gray], path, dpi=300)
    elif kind == "tiff-lzw-gray":  # not carried as it is: decoded, then Flate with PNG predictors
        Image.fromarray(gray).save(path, format="TIFF", compression="tiff_lzw", dpi=(300, 300))
    elif kind == "tiff-lzw-rgb":
        Image.fromarray(_colour(gray)).save(path, format="TIFF", compression="tiff_lzw", dpi=(300, 300))
    elif kind == "tiff-lzw-bilevel":  # 1-bit but LZW: re-encoded as CCITT G4
        Image.fromarray(gray).convert("1", dither=Image.Dither.NONE).save(path, format="TIFF",
                                                                           compression="tiff_lzw", dpi=(300, 300))
    elif kind == "png-rgb-200dpi":
        Image.fromarray(_colour(_page(200))).save(path, format="PNG", dpi=(200, 200))
    return path


def _jpeg_bytes(xobject: pikepdf.Object) -> bytes:
    """The JPEG inside a DCT image stream, deflated or not (qpdf does not undo Flate before DCT on its own)."""
    raw = xobject.read_raw_bytes()
    return zlib.decompress(raw) if isinstance(xobject.Filter, pikepdf.Array) else raw


def _decoded_from_pdf(pdf_path: Path) -> tuple[Image.Image, str]:
    with pikepdf.open(pdf_path) as pdf:
        (xobject,) = (v for v in pdf.pages[0].obj.Resources.XObject.values() if v.Subtype == pikepdf.Name.Image)
        filters = xobject.Filter
        names = [str(f) for f in filters] if isinstance(filters, pikepdf.Array) else [str(filters)]
        if names[-1] == "/DCTDecode":  # Flate (if any) undone, the JPEG decoded by Pillow
            jpeg = _jpeg_bytes(xobject)
            return Image.open(io.BytesIO(jpeg)), "+".join(names)
        return pikepdf.PdfImage(xobject).as_pil_image(), "+".join(names)


@pytest.mark.parametrize("kind", ["jpeg-colour", "png-gray", "tiff-g4", "tiff-lzw-gray", "tiff-lzw-rgb",
                                  "tiff-lzw-bilevel", "png-rgb-200dpi"])
def test_the_pdf_image_decodes_to_the_original_pixels(tmp_path: Path, kind: str) -> None:
    source = _write(kind, tmp_path / f"scan-{kind}")
    out = tmp_path / "out.pdf"
    make_searchable_pdf([source], out, OcrOptions(jobs=1))
    with Image.open(source) as original:
        mode = original.mode
        expected = np.asarray(original.convert("L" if mode == "1" else mode))
    image, filters = _decoded_from_pdf(out)
    assert image.mode == mode or (mode == "1" and image.mode in ("1", "L")), (image.mode, mode, filters)
    got = np.asarray(image.convert("L" if image.mode == "1" else image.mode))
    assert got.shape == expected.shape, filters
    assert np.array_equal(got, expected), f"{kind} stored as {filters}: pixels differ"


def test_deflated_jpeg_keeps_the_original_bytes_and_saves_space(tmp_path: Path) -> None:
    source = _write("jpeg-colour", tmp_path / "scan.jpg")
    out = tmp_path / "out.pdf"
    make_searchable_pdf([source], out, OcrOptions(jobs=1))
    with pikepdf.open(out) as pdf:
        (xobject,) = pdf.pages[0].obj.Resources.XObject.values()
        assert list(xobject.Filter) == [pikepdf.Name.FlateDecode, pikepdf.Name.DCTDecode]
        assert _jpeg_bytes(xobject) == source.read_bytes()
        assert len(xobject.read_raw_bytes()) < 0.99 * source.stat().st_size
