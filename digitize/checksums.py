"""SHA-256 of files and bytes: the digests the catalog, the archive's read-back and the fixity audits compare."""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHUNK = 1 << 20
"""Bytes read at a time when hashing a file."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed so a large scan is never read whole into memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
