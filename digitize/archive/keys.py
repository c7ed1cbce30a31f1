"""Where things go in the archive: keys built only from validated document codes.

Key layout (:func:`document_keys`)::

    documents/<agency code>/<year>/<document code>/v<version>/<document code>.pdf    signed PDF/A
    documents/<agency code>/<year>/<document code>/v<version>/<document code>.json   JSON sidecar
    documents/<agency code>/<year>/<document code>/v<version>/originals/<NN><ext>    original scans

e.g. ``documents/000.00.00.H49/2021/000.00.00.H49.2021.KQ.000123/v1/originals/01.tif``, where
``NN`` is the file's position in the document (two digits or more). Codes that do not follow the
default template (``<agency>.<YYYY>.<KQ|TP>.<NNNNNN>``) go under ``documents/_custom/<code>/v<version>/``.
A corrected document gets a new version number, never an overwritten object.

Work in progress between two machines (OCR on one, signing on the token holder) is staged under
``staging/<document code>/v<version>/`` (:func:`staging_keys`): never object-locked, and the only
keys an archive deletes, so the archive proper stays write-once. OCR made before a document is
registered (``propose``) waits under ``staging/_ocr/<SHA-256 of the original>/`` (:func:`ocr_cache_keys`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AGENCY_CODE = r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}"
_DEFAULT_CODE_RE = re.compile(rf"^(?P<agency>{AGENCY_CODE})\.(?P<year>\d{{4}})\.(?:KQ|TP)\.\d{{6}}$")
_KIND_IN_KEY_RE = re.compile(
    rf"^documents/{AGENCY_CODE}/\d{{4}}/{AGENCY_CODE}\.\d{{4}}\.(?P<kind>KQ|TP)\.\d{{6}}/v\d+/"
)
_SAFE_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_KEY_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$")
_EXTENSION_RE = re.compile(r"^\.[a-z0-9]{1,8}$")

STAGING_PREFIX = "staging/"
"""Prefix of staged work: never locked, the only keys an archive deletes, expired by a lifecycle rule."""


@dataclass(frozen=True)
class DocumentKeys:
    """Keys of one version of one document in the archive (see the module docstring)."""

    pdf: str
    """Signed searchable PDF/A."""

    sidecar: str
    """JSON sidecar (schemas/sidecar)."""

    originals_prefix: str
    """Prefix (ending in '/') of the original scans."""

    def original(self, position: int, extension: str) -> str:
        """Key of the original scan at ``position`` (its order in the document), e.g. ``…/originals/01.tif``."""
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(f"position must be a non-negative integer, not {position!r}")
        ext = extension.lower()
        if not _EXTENSION_RE.fullmatch(ext):
            raise ValueError(f"extension must look like '.tif' (1-8 letters or digits), not {extension!r}")
        return f"{self.originals_prefix}{position:02d}{ext}"


def validate_code(code: str) -> str:
    """Return ``code`` if it is safe as a key segment: [A-Za-z0-9._-], no '..', no leading dot, ≤ 200 chars."""
    if not isinstance(code, str) or not _SAFE_CODE_RE.fullmatch(code) or ".." in code:
        raise ValueError(f"not a valid document code for an archive key: {code!r}")
    return code


def document_keys(code: str, version: int = 1) -> DocumentKeys:
    """Keys of a document version, built only from a validated code (no path tricks can get through)."""
    validate_code(code)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an integer >= 1, not {version!r}")
    match = _DEFAULT_CODE_RE.fullmatch(code)
    parent = f"documents/{match['agency']}/{match['year']}" if match else "documents/_custom"
    base = f"{parent}/{code}/v{version}/"
    return DocumentKeys(pdf=f"{base}{code}.pdf", sidecar=f"{base}{code}.json", originals_prefix=f"{base}originals/")


@dataclass(frozen=True)
class StagingKeys:
    """Keys of a prepared but not yet signed document version (see :func:`staging_keys`)."""

    pdf: str
    """The unsigned PDF/A."""

    state: str
    """JSON of what signing and the sidecar need; written last, so its presence means the stage is complete."""


def staging_keys(code: str, version: int = 1) -> StagingKeys:
    """Staging keys of a document version, built like :func:`document_keys` only from a validated code."""
    validate_code(code)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an integer >= 1, not {version!r}")
    base = f"{STAGING_PREFIX}{code}/v{version}/"
    return StagingKeys(pdf=f"{base}document.pdf", state=f"{base}prepared.json")


def ocr_cache_keys(content_sha256: str) -> StagingKeys:
    """Staging keys of OCR kept for the bytes whose SHA-256 is ``content_sha256`` (``_ocr`` is no code: codes
    start with a letter or digit)."""
    if not isinstance(content_sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", content_sha256):
        raise ValueError(f"not a lower-case hex SHA-256: {content_sha256!r}")
    base = f"{STAGING_PREFIX}_ocr/{content_sha256}/"
    return StagingKeys(pdf=f"{base}ocr.pdf", state=f"{base}ocr.json")


def check_key(key: str) -> str:
    """Reject keys that could escape a folder or confuse tools: '..', empty or dot-leading segments, odd chars."""
    if not isinstance(key, str) or not key or len(key.encode("utf-8")) > 1024:
        raise ValueError(f"invalid archive key: {key!r}")
    if not all(_KEY_SEGMENT_RE.fullmatch(segment) for segment in key.split("/")):
        raise ValueError(
            f"invalid archive key {key!r}: segments must be [A-Za-z0-9._=+-], not empty, not starting with '.'"
        )
    return key


def kind_from_key(key: str) -> str | None:
    """Document kind (KQ/TP) of a key built by :func:`document_keys` from a default-template code."""
    match = _KIND_IN_KEY_RE.search(key)
    return match["kind"] if match else None
