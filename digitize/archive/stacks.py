"""Where a scanned stack goes in the archive, and how long it is kept.

A stack (one scanned file holding many documents, see :mod:`digitize.pipeline.stacks`) is archived once,
under its own SHA-256, whatever the documents cut from it::

    stacks/<sha256>/stack<ext>              one multi-page PDF or TIFF
    stacks/<sha256>/pages/<NNNN><ext>       the numbered images of a folder stack, in scanner order

It is kept as long as the longest-kept document it holds (:func:`longest_kept_kind`). Staged pieces of
a stack (each document's pages, cut once by the split task for the chunk tasks) go under
``staging/stacks/<sha256>/`` (never locked, expired by the staging lifecycle rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from digitize.archive.keys import STAGING_PREFIX
from digitize.archive.objects import Archive

_SHA_RE = re.compile(r"[0-9a-f]{64}")
_EXT_RE = re.compile(r"\.[a-z0-9]{1,8}")
_LONGEST_FIRST = ("KQ", "TP")
"""Without retention settings: results (KQ, kept permanently) outlive dossier components (TP, 20 years)."""


def _checked(stack_sha256: str, extension: str) -> str:
    if not _SHA_RE.fullmatch(stack_sha256):
        raise ValueError(f"not a lower-case hex SHA-256: {stack_sha256!r}")
    ext = extension.lower()
    if not _EXT_RE.fullmatch(ext):
        raise ValueError(f"extension must look like '.tif', not {extension!r}")
    return ext


def stack_key(stack_sha256: str, extension: str, page: int | None = None) -> str:
    """Key of the archived stack file, or (``page``: 1-based) of one numbered image of a folder stack."""
    ext = _checked(stack_sha256, extension)
    if page is None:
        return f"stacks/{stack_sha256}/stack{ext}"
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be an integer >= 1, not {page!r}")
    return f"stacks/{stack_sha256}/pages/{page:04d}{ext}"


def stack_staging_prefix(stack_sha256: str) -> str:
    """Prefix of the staged pieces of one stack (ends in '/')."""
    _checked(stack_sha256, ".x")
    return f"{STAGING_PREFIX}stacks/{stack_sha256}/"


def longest_kept_kind(archive: Archive, kinds: Iterable[str]) -> str | None:
    """The document kind among ``kinds`` whose retention is longest in this archive's settings.

    With Object Lock retention per kind (``DIGITIZE_S3_RETENTION_DAYS``) the configured days decide;
    otherwise a result (KQ) outlives a dossier component (TP).
    """
    wanted = sorted(set(kinds), key=lambda k: (_LONGEST_FIRST.index(k) if k in _LONGEST_FIRST else 99, k))
    if not wanted:
        return None
    options = getattr(archive, "options", None)
    days = getattr(options, "retention_days", None) or {}
    default = getattr(options, "default_retention_days", None)
    if not days and default is None:
        return wanted[0]
    return max(wanted, key=lambda k: days.get(k, default) or 0)
