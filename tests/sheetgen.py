"""Scanned stacks for the tests and the bench: cover sheets printed by ``python -m digitize coversheets`` itself,
rendered by poppler (``pdftoppm``) as a scanner would see them, degraded the ways scanning degrades paper, and
interleaved with document pages and duplex blank backsides into multi-page PDF and TIFF files.

Every page keeps its ground truth (:class:`StackPage`): what it is, and for a sheet its id and whether its codes
can still be read, so a test can say exactly which split was expected.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from imagegen import LINES, PARAGRAPH, render_page
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
A4_IN = (8.27, 11.69)

DEGRADATIONS = ("clean", "rot90", "rot180", "rot270", "skew", "noise", "dpi150", "dpi600", "bilevel", "photocopy",
                "colour", "smudge_big", "smudge_small")
"""Every way :func:`degrade` spoils a sheet whose id must still be read."""

UNREADABLE = "smudge_both"
"""Both codes destroyed: the page still looks like a sheet, but its id cannot be read."""


@dataclass(frozen=True)
class StackPage:
    """One page of a generated stack, with its ground truth."""

    image: Image.Image
    """The page as scanned (grey ``L``, ``RGB`` or bilevel ``1``)."""
    kind: str
    """``sheet``, ``document`` or ``blank`` (a duplex backside)."""
    sheet_id: str | None = None
    """For a sheet, the id printed on it."""
    readable: bool = True
    """For a sheet, whether its id can be read (False: both codes destroyed)."""
    degradation: str = "clean"
    """How the page was spoiled (:data:`DEGRADATIONS`, :data:`UNREADABLE`)."""
    dpi: int = 300
    """Resolution it was scanned at."""


# ------------------------------------------------------------------------------------------ printing


def print_with_command(catalog_url: str, out: Path, *selection: str) -> str:
    """Run ``python -m digitize coversheets --out OUT SELECTION…`` on the catalog; its standard output."""
    env = {**os.environ, "DIGITIZE_CATALOG_URL": catalog_url, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "digitize", "coversheets", "--out", str(out), *selection],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    if result.returncode != 0:
        raise AssertionError(f"coversheets failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def render_pdf(pdf: Path, *, dpi: int = 300, gray: bool = True, first: int | None = None,
               last: int | None = None) -> list[Image.Image]:
    """The pages of ``pdf`` (all, or ``first``..``last``, 1-based) as poppler renders them at ``dpi``: what a scan
    of the printed pages looks like."""
    pages_wanted = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    with tempfile.TemporaryDirectory() as scratch:
        prefix = Path(scratch) / "p"
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", *(["-gray"] if gray else []), *pages_wanted, str(pdf),
                        str(prefix)], check=True, timeout=900)
        pages = []
        for path in sorted(Path(scratch).glob("p-*.png"), key=lambda p: int(p.stem.split("-")[-1])):
            with Image.open(path) as image:
                pages.append(image.convert("L" if gray else "RGB"))
        return pages


def sheet_ids_of(pdf_pages: Sequence[Image.Image]) -> list[str]:
    """The ids printed on rendered sheets, read as the pipeline reads them (the tests' check of the renderer)."""
    from digitize.intake import detect_sheet

    found = [detect_sheet(page).sheet_id for page in pdf_pages]
    assert all(found), "a freshly printed sheet could not be read"
    return [f for f in found if f]


# ----------------------------------------------------------------------------------------- degrading


def degrade(page: Image.Image, how: str, *, seed: int = 0, dpi: int = 300) -> Image.Image:
    """``page`` (a grey sheet rendered at ``dpi``) spoiled as ``how`` says (:data:`DEGRADATIONS` or
    :data:`UNREADABLE`); the result is at ``dpi`` unless ``how`` changes it."""
    rng = np.random.default_rng(seed)
    gray = page.convert("L")
    if how == "clean":
        return gray
    if how in ("rot90", "rot180", "rot270"):
        return gray.rotate(int(how[3:]), expand=True)
    if how == "skew":
        angle = float(rng.choice([-1, 1]) * rng.uniform(7, 10))
        return gray.rotate(angle, expand=True, fillcolor=255, resample=Image.Resampling.BILINEAR)
    if how == "noise":
        return _noisy(gray, rng, sigma=28)
    if how in ("dpi150", "dpi600"):
        factor = (150 if how == "dpi150" else 600) / dpi
        return gray.resize((round(gray.width * factor), round(gray.height * factor)), Image.Resampling.LANCZOS)
    if how == "bilevel":
        return gray.point(lambda v: 255 if v > 150 else 0).convert("1", dither=Image.Dither.NONE)
    if how == "photocopy":
        return _photocopy(gray, rng)
    if how == "colour":
        return Image.merge("RGB", (gray.point(lambda v: min(255, v + 10)), gray, gray.point(lambda v: int(v * 0.9))))
    if how in ("smudge_big", "smudge_small", UNREADABLE):
        return _smudged(gray, how, rng, dpi)
    raise ValueError(f"unknown degradation {how!r}")


def _noisy(gray: Image.Image, rng: np.random.Generator, *, sigma: float) -> Image.Image:
    array = np.asarray(gray, dtype=np.float32) + rng.normal(0, sigma, (gray.height, gray.width))
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _photocopy(gray: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A copy of a copy: softened, toner-grey blacks, a grey cast, streaks and toner specks."""
    soft = gray.filter(ImageFilter.GaussianBlur(1.6))
    array = np.asarray(soft, dtype=np.float32) * 0.62 + 70  # blacks ~70, paper ~228
    array += np.linspace(0, 25, gray.width, dtype=np.float32)[None, :]  # uneven lamp
    specks = rng.random((gray.height, gray.width)) < 0.002
    array[specks] = 40
    array += rng.normal(0, 10, array.shape)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _smudged(gray: Image.Image, how: str, rng: np.random.Generator, dpi: int) -> Image.Image:
    """Ink or a torn corner over one code (the big one top left, the small one bottom right), or over both."""
    out = gray.copy()
    draw = ImageDraw.Draw(out)
    mm = dpi / 25.4
    big = (20 * mm, 55 * mm, 80 * mm, 120 * mm)  # the 40 mm code and its quiet zone
    small = (out.width - 65 * mm, out.height - 65 * mm, out.width - 15 * mm, out.height - 15 * mm)
    boxes = {"smudge_big": [big], "smudge_small": [small], UNREADABLE: [big, small]}[how]
    for x0, y0, x1, y1 in boxes:
        for _ in range(14):  # overlapping blots: ink, not a tidy rectangle
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            r = rng.uniform(0.25, 0.4) * (x1 - x0)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=int(rng.integers(0, 60)))
        draw.rectangle((x0 + 0.2 * (x1 - x0), y0 + 0.2 * (y1 - y0), x1 - 0.2 * (x1 - x0), y1 - 0.2 * (y1 - y0)),
                       fill=20)
    return out


# ----------------------------------------------------------------------------------- other pages


def document_page(seed: int, *, dpi: int = 300, with_qr: bool = False, border: bool = False) -> Image.Image:
    """An A4 page of Vietnamese text; ``with_qr`` adds a result's own QR code (Circular 01/2023, not a sheet's),
    ``border`` a certificate's thin double frame."""
    rng = np.random.default_rng(seed)
    lines = LINES + tuple(PARAGRAPH[int(i)] for i in rng.integers(0, len(PARAGRAPH), 14))
    page = Image.fromarray(render_page(lines, dpi=dpi, width_in=A4_IN[0], height_in=A4_IN[1], font_pt=12.0))
    draw = ImageDraw.Draw(page)
    mm = dpi / 25.4
    if border:
        for inset, width in ((8, 0.8), (10, 0.4)):
            draw.rectangle((inset * mm, inset * mm, page.width - inset * mm, page.height - inset * mm),
                           outline=0, width=max(1, round(width * mm)))
    if with_qr:
        import qrcode

        code = qrcode.make('{"ma_tai_lieu":"000.00.12.H99.2023.KQ.000001","ma_ho_so":"000.00.12.H99-230314-0007"}',
                           box_size=max(1, round(0.5 * mm)), border=4)
        page.paste(code.convert("L"), (round(15 * mm), round(200 * mm)))
    return page


def blank_backside(seed: int, *, dpi: int = 300) -> Image.Image:
    """The empty back of a page from a duplex scanner: paper grain, and a faint show-through."""
    rng = np.random.default_rng(seed)
    height, width = round(A4_IN[1] * dpi), round(A4_IN[0] * dpi)
    array = np.clip(rng.normal(246, 3, (height, width)), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


# ------------------------------------------------------------------------------------------ stacks


def build_stack(sheets: Sequence[tuple[str, Image.Image]], *, degradations: Sequence[str] = ("clean",),
                pages_per_document: Sequence[int] = (1, 2, 3), backsides: bool = True, dpi: int = 300,
                seed: int = 0) -> list[StackPage]:
    """A stack in scanning order: each sheet (degraded in turn by ``degradations``) followed by its document's
    pages (counts cycling through ``pages_per_document``, some with a QR code or a border), a blank backside
    after every other sheet when ``backsides``."""
    rng = np.random.default_rng(seed)
    out: list[StackPage] = []
    for n, (sheet_id, image) in enumerate(sheets):
        how = degradations[n % len(degradations)]
        page_dpi = {"dpi150": 150, "dpi600": 600}.get(how, dpi)
        out.append(StackPage(degrade(image, how, seed=seed + n, dpi=dpi), "sheet", sheet_id,
                             readable=how != UNREADABLE, degradation=how, dpi=page_dpi))
        if backsides and n % 2 == 0:
            out.append(StackPage(blank_backside(seed + n, dpi=dpi), "blank", dpi=dpi))
        for p in range(pages_per_document[n % len(pages_per_document)]):
            page = document_page(int(rng.integers(1 << 30)), dpi=dpi, with_qr=p == 0 and n % 3 == 1,
                                 border=p == 0 and n % 4 == 2)
            out.append(StackPage(page, "document", dpi=dpi))
    return out


def write_pdf(pages: Sequence[StackPage], path: Path) -> Path:
    """The stack as a scanner's multi-page PDF: one image per page (JPEG, or PNG for bilevel), at its dpi."""
    import img2pdf

    blobs = []
    for page in pages:
        buffer = io.BytesIO()
        if page.image.mode == "1":
            page.image.save(buffer, format="PNG", dpi=(page.dpi, page.dpi))
        else:
            page.image.save(buffer, format="JPEG", quality=85, dpi=(page.dpi, page.dpi))
        blobs.append(buffer.getvalue())
    path.write_bytes(img2pdf.convert(blobs))
    return path


def write_tiff(pages: Sequence[StackPage], path: Path) -> Path:
    """The stack as a scanner's multi-page TIFF: bilevel CCITT G4 (what high-speed scanners store)."""
    images = [page.image.convert("L").point(lambda v: 255 if v > 160 else 0).convert("1") for page in pages]
    images[0].save(path, format="TIFF", save_all=True, append_images=images[1:], compression="group4",
                   dpi=(pages[0].dpi, pages[0].dpi))
    return path


def as_bilevel(pages: Sequence[StackPage]) -> list[StackPage]:
    """The pages as a bilevel TIFF stores them (what detection sees after :func:`write_tiff`)."""
    return [replace(p, image=p.image.convert("L").point(lambda v: 255 if v > 160 else 0).convert("1"))
            for p in pages]
