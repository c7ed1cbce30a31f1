"""OCR kept between ``propose`` and ``process``, keyed by the SHA-256 of the original's bytes.

``propose`` OCRs every scan to read its evidence; ``process`` would OCR the same scan again minutes
later. The searchable PDF and the page results wait in the archive's staging area
(:func:`~digitize.archive.ocr_cache_keys`: never locked, expired by the staging lifecycle rule, and
shared by every worker) under the content's SHA-256, so they are found again only for the same
bytes: a re-scanned or edited file has another digest and is OCR'd afresh. The OCR options that
change the result are recorded with it; OCR made with other options is not reused either.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize.catalog import fingerprint_of
from digitize.checksums import sha256_bytes
from digitize.errors import ArchiveNotFound

if TYPE_CHECKING:
    from digitize.archive import Archive, StagingKeys
    from digitize.config import Settings
    from digitize.ocr import OcrOptions, OcrResult

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Version of the kept JSON; another version is not reused."""


def ocr_options(settings: Settings, work_dir: Path | None) -> OcrOptions:
    """The OCR options of a document, the same for ``propose`` and ``process`` (so the kept OCR fits)."""
    from digitize.intake import PageLimits
    from digitize.ocr import OcrOptions

    return OcrOptions(jobs=settings.ocr_jobs, min_dpi=settings.min_dpi, work_dir=work_dir,
                      page_timeout=settings.ocr_page_timeout, limits=PageLimits.from_settings(settings))


def options_key(options: OcrOptions) -> str:
    """The OCR options that change the text or the PDF (not jobs, time-outs or scratch folders)."""
    return repr((options.language, options.psm, options.min_dpi, options.low_confidence, options.preprocess))


def keep_ocr(archive: Archive, file_sha256s: Sequence[str], result: OcrResult, options: OcrOptions) -> None:
    """Keep ``result`` (its PDF, then the JSON that makes it usable) for the originals with these digests."""
    from digitize.archive import ocr_cache_keys

    keys = ocr_cache_keys(fingerprint_of(list(file_sha256s)))
    pdf = result.pdf_path.read_bytes()
    state = {"cache_version": CACHE_VERSION, "file_sha256s": list(file_sha256s), "options": options_key(options),
             "pdf_sha256": sha256_bytes(pdf), "tool_versions": dict(result.tool_versions),
             "pages": [dataclasses.asdict(p) for p in result.pages]}
    _drop(archive, keys)  # an older one, even a PDF whose record was never written (the puts refuse a taken key)
    archive.put(keys.pdf, pdf, content_type="application/pdf", metadata={})
    archive.put(keys.state, json.dumps(state, ensure_ascii=False).encode("utf-8"), content_type="application/json",
                metadata={})


def kept_ocr(archive: Archive, file_sha256s: Sequence[str], out_pdf: Path, options: OcrOptions) -> OcrResult | None:
    """The OCR kept for exactly these originals and options, its PDF written to ``out_pdf``; ``None`` otherwise.

    Anything that does not hold together (another digest, other options, a PDF that is not the one
    recorded) counts as nothing kept: the caller OCRs.
    """
    from digitize.archive import ocr_cache_keys
    from digitize.ocr import OcrResult, PageResult

    keys = ocr_cache_keys(fingerprint_of(list(file_sha256s)))
    try:
        state: Any = json.loads(archive.get(keys.state))
        if (not isinstance(state, dict) or state.get("cache_version") != CACHE_VERSION
                or state.get("file_sha256s") != list(file_sha256s) or state.get("options") != options_key(options)):
            return None
        pdf = archive.get(keys.pdf)
    except (ArchiveNotFound, ValueError):
        return None
    if sha256_bytes(pdf) != state["pdf_sha256"]:
        log.warning("kept OCR at %s does not match its record: OCR'd again", keys.pdf)
        return None
    out_pdf.write_bytes(pdf)
    pages = tuple(PageResult(**{**p, "flags": tuple(p["flags"]), "steps": tuple(p["steps"])}) for p in state["pages"])
    return OcrResult(pdf_path=out_pdf, pages=pages, tool_versions=state["tool_versions"])


def forget_ocr(archive: Archive, file_sha256s: Sequence[str]) -> None:
    """Drop the OCR kept for these originals (their document is archived: the text is in the catalog now).

    Every archived document passes here, and most had nothing kept. Dropping lists the versions of each
    key, which an S3-compatible store may answer in time that grows with the bucket (moto does: 2.2 s of
    its CPU for the first 22 documents, 14.8 s for the third 22, ``bench/s3_listing.py``), so one HEAD
    of the record first. A PDF left without its record is never reused, and the staging
    lifecycle rule expires it.
    """
    from digitize.archive import ocr_cache_keys

    keys = ocr_cache_keys(fingerprint_of(list(file_sha256s)))
    if archive.head(keys.state) is not None:
        _drop(archive, keys)


def _drop(archive: Archive, keys: StagingKeys) -> None:
    """The record first: never one that describes another PDF than the one beside it."""
    for key in (keys.state, keys.pdf):
        archive.delete(key)
