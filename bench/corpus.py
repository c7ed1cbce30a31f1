"""Read the benchmark corpus (manifest.json, page images, ground truth) without the pipeline's own loader.

The benchmark must not depend on the code it measures for reading its inputs, so pages are decoded here
with OpenCV/Pillow (and ``pdfimages`` for image-only PDFs, which gives the stored images as they are).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@dataclass(frozen=True)
class CorpusPage:
    """One page of the corpus with its ground truth."""

    page_id: str
    """Unique page id (names the ground-truth file)."""

    file: str
    """File name the page is in."""

    index_in_file: int
    """0-based page index inside the file."""

    tags: tuple[str, ...]
    """Degradation tags from the manifest."""

    truth: str
    """Ground-truth text (empty for a blank page)."""

    rotation_cw: int
    """True rotation of the stored image."""

    skew_deg: float
    """True skew (positive = counter-clockwise)."""


def load_manifest(corpus: Path) -> list[CorpusPage]:
    """Pages of the corpus in file order."""
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    pages = []
    for entry in manifest["files"]:
        for p in entry["pages"]:
            pages.append(CorpusPage(
                page_id=p["page_id"], file=entry["file"], index_in_file=int(p.get("index_in_file", 0)),
                tags=tuple(p.get("degradation_tags", [])), truth=(corpus / p["gt"]).read_text(encoding="utf-8"),
                rotation_cw=int(p.get("rotation_cw", 0)), skew_deg=float(p.get("skew_deg", 0.0))))
    return pages


def _pdf_images(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    ppis = [float(row.split()[12]) for row in listing.splitlines()[2:] if row.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdfimages", "-all", str(path), f"{tmp}/p"], check=True)
        files = sorted(Path(tmp).iterdir(), key=lambda f: int(re.sub(r"\D", "", f.stem)))
        for f, ppi in zip(files, ppis, strict=True):
            img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f"cannot read page image {f.name} of {path}")
            yield np.asarray(img, dtype=np.uint8), ppi


def load_images(path: Path) -> list[tuple[np.ndarray, float]]:
    """Decoded pages of one file (uint8 grey or BGR) with the resolution the file claims (0 if none)."""
    if path.suffix.lower() == ".pdf":
        return list(_pdf_images(path))
    with Image.open(path) as im:
        dpi = float(im.info.get("dpi", (0, 0))[0] or 0)
    if path.suffix.lower() in (".tif", ".tiff"):
        ok, imgs = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
        if not ok:
            raise ValueError(f"cannot read {path}")
        return [(i if i.dtype == np.uint8 else (i > 0).astype(np.uint8) * 255, dpi) for i in imgs]
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read {path}")
    return [(img, dpi)]
