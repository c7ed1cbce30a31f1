"""Stack batches: a whole pile scanned as one file (or one folder of numbered images), with no manifest.

What a stack batch is, where its scanning unit comes from, which files make one stack and in which
order its pages come, and the cheap blank-page test used on duplex backsides. Splitting at the cover
sheets is the pipeline's (:mod:`digitize.pipeline.stacks`): this module reads files, never the catalog.

- A batch without ``manifest.csv`` whose scans are PDF, TIFF, PNG or JPEG files is a stack batch.
- Each PDF file and each multi-page TIFF file is one stack. The PNG, JPEG and single-page TIFF files of one
  folder are together one stack, in scanner order: their names sorted by the numbers in them
  (``scan_2.png`` before ``scan_10.png``).
- Its scanning unit (``scanned_at``) is the agency code written in the batch's ``_UNIT`` file, else
  ``DIGITIZE_STACK_UNIT``; a stack batch with neither is refused (``STACK_NO_UNIT``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitize.errors import ConfigurationError, InputError
from digitize.intake.inbox import MANIFEST_NAME, UNIT_FILE, BatchSource

STACK_EXTENSIONS = frozenset({".pdf", ".tif", ".tiff", ".png", ".jpg", ".jpeg"})
"""Files a stack batch may hold (by name; their bytes are sniffed again when read)."""

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})
"""Single-page image files: pages of their folder's numbered-image stack."""

BLANK_INK_FRACTION = 0.00002
"""A page with less ink than this (share of its area, after binarisation and despeckling) is blank.

Measured on A4 pages seen at 1,200 pixels: one word of 9-point text is 0.004-0.015 %, one line of 10-point
text 0.01-0.02 %, a page of text about 1 %; gaussian scanner noise, specks of dust, a grey photocopy
background and a bilevel scan's noise 0 % (tests/test_stacks.py). A page wrongly found blank would lose its
content from the signed PDF, so the threshold sits well below one word: dust bigger than a millimetre
makes a blank page count as a page, which only costs one empty page in the PDF."""

_BLANK_SIDE = 1200
"""Pixels of the longest side the blank test looks at, at most (A4 at about 100 dpi; reduced by a whole factor)."""

_INK_LEVEL = 0.6
"""Darker than this share of the paper's level is ink (paper at 245: below 147)."""

AGENCY_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")
"""An agency code (QCVN 102), as the manifest's schema has it."""

_MARGIN = 0.04
"""Share of each edge left out of the blank test: scanner shadows and punched holes are not ink."""


class StackNoUnit(InputError):
    reason = "STACK_NO_UNIT"
    default_hint = ("Put a file named _UNIT in the batch holding the scanning unit's agency code "
                    "(e.g. 000.00.12.H99), or set DIGITIZE_STACK_UNIT for the inbox, and resubmit.")


@dataclass(frozen=True)
class StackFiles:
    """One stack of a batch: its file(s), relative to the batch, in page order."""

    name: str
    """How reports name it: the file's path, or ``<first>..<last>`` image of a numbered-image stack."""

    files: tuple[str, ...]
    """One PDF or TIFF, or the numbered images of one folder, in scanner order."""

    @property
    def images(self) -> bool:
        """A folder of single-page images (each file one page), not one multi-page file."""
        return len(self.files) > 1 or Path(self.files[0]).suffix.lower() in IMAGE_EXTENSIONS


def is_stack_batch(source: BatchSource) -> bool:
    """A batch with no manifest whose files are scans: its documents are found by their cover sheets."""
    if source.exists(MANIFEST_NAME):
        return False
    return any(Path(name).suffix.lower() in STACK_EXTENSIONS for name in source.files()
               if not name.startswith("done/"))  # a stack already moved there is no new work


def scanner_order(name: str) -> tuple[object, ...]:
    """Sort key of scanner-numbered names: the numbers compared as numbers (``2`` before ``10``)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def stack_files(names: Sequence[str], page_counts: dict[str, int]) -> tuple[list[StackFiles], list[str]]:
    """Group a stack batch's files into stacks; the other files (not scans) are returned apart.

    ``page_counts`` gives the pages of each TIFF file (a single-page TIFF is a numbered image).
    """
    stacks: list[StackFiles] = []
    folders: dict[str, list[str]] = {}
    others: list[str] = []
    for name in sorted(names, key=scanner_order):
        if name == UNIT_FILE:
            continue
        suffix = Path(name).suffix.lower()
        if suffix not in STACK_EXTENSIONS:
            others.append(name)
        elif suffix in IMAGE_EXTENSIONS or (suffix in (".tif", ".tiff") and page_counts.get(name, 1) == 1):
            folders.setdefault(str(Path(name).parent), []).append(name)
        else:
            stacks.append(StackFiles(name, (name,)))
    stacks += [StackFiles(f"{files[0]}..{files[-1]}" if len(files) > 1 else files[0], tuple(files))
               for files in folders.values()]
    return sorted(stacks, key=lambda s: scanner_order(s.files[0])), others


def stack_unit(source: BatchSource, configured: str | None) -> str:
    """The stack batch's scanning unit: its ``_UNIT`` file, else ``DIGITIZE_STACK_UNIT``; refused without either."""
    if source.exists(UNIT_FILE):
        raw = source.read_bytes(UNIT_FILE)[:200].decode("utf-8", "replace").strip().lstrip("\ufeff").strip()
        if not AGENCY_CODE.fullmatch(raw):
            raise StackNoUnit(f"the {UNIT_FILE} file of batch {source.name} does not hold an agency code",
                              hint="Write only the scanning unit's agency code (e.g. 000.00.12.H99) in _UNIT "
                                   "and resubmit.")
        return raw
    if configured:
        if not AGENCY_CODE.fullmatch(configured):
            raise ConfigurationError(f"DIGITIZE_STACK_UNIT {configured!r} is not an agency code",
                                     hint="Set it to the scanning unit's agency code, e.g. 000.00.12.H99.")
        return configured
    raise StackNoUnit(f"stack batch {source.name} names no scanning unit (no {UNIT_FILE} file, "
                      "DIGITIZE_STACK_UNIT not set)")


def ink_fraction(image: np.ndarray) -> float:
    """Share of the page (margins left out) that is ink: dark after binarisation, isolated specks removed.

    The threshold is relative to the paper's level (:data:`_INK_LEVEL`), so a grey photocopy background or
    a bilevel scan give the same answer; a 3 × 3 median filter removes scanner noise and specks first.
    """
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if gray.dtype != np.uint8:
        gray = gray.astype(np.uint8)
    factor = -(-max(gray.shape) // _BLANK_SIDE)  # a whole factor: OpenCV's fast path (8 ms, not 35, at 300 dpi)
    if factor > 1:
        gray = cv2.resize(gray, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    dy, dx = round(gray.shape[0] * _MARGIN), round(gray.shape[1] * _MARGIN)
    inner = gray[dy:gray.shape[0] - dy or None, dx:gray.shape[1] - dx or None]
    if inner.size == 0:
        return 0.0
    inner = cv2.medianBlur(np.ascontiguousarray(inner), 3)
    counts = np.bincount(inner.ravel(), minlength=256).cumsum()
    paper = float(np.searchsorted(counts, 0.9 * counts[-1]))  # the 90th percentile, without sorting
    if paper < 96:  # no paper to be seen: a dark page (a photo, a black scan) is never blank
        return 1.0
    ink = inner < paper * _INK_LEVEL
    return float(ink.mean())


def is_blank(image: np.ndarray) -> bool:
    """A blank page (a duplex backside): less ink than :data:`BLANK_INK_FRACTION`."""
    return ink_fraction(image) < BLANK_INK_FRACTION


def cut_pages(path: Path, indexes: Sequence[int], out: Path) -> Path:
    """Copy the pages ``indexes`` (0-based, in order) of a multi-page PDF or TIFF into a new file ``out``.

    A PDF's pages are copied as they are (the scanner's image streams, untouched); a TIFF's frames are
    written again losslessly (CCITT G4 when bilevel, else LZW) with their resolution. The suffix of
    ``out`` is set from the format.
    """
    from digitize.intake.pages import sniff_format

    fmt = sniff_format(path)
    if fmt == "pdf":
        import pikepdf

        target = out.with_suffix(".pdf")
        with pikepdf.open(path) as source, pikepdf.new() as cut:
            for index in indexes:
                cut.pages.append(source.pages[index])
            cut.save(target)
        return target
    from PIL import Image

    target = out.with_suffix(".tif")
    with Image.open(path) as source:
        frames = []
        for index in indexes:
            source.seek(index)
            frame = source.copy()
            frame.info["dpi"] = source.info.get("dpi", frame.info.get("dpi"))
            frames.append(frame)
    first, rest = frames[0], frames[1:]
    compression = "group4" if all(f.mode == "1" for f in frames) else "tiff_lzw"
    extra = {"dpi": first.info["dpi"]} if first.info.get("dpi") else {}
    first.save(target, format="TIFF", save_all=True, append_images=rest, compression=compression, **extra)
    return target
