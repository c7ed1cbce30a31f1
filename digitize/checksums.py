"""SHA-256 of files and bytes: the checksums every layer records and compares (a foundation module)."""

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


def content_key(data: bytes) -> bytes:
    """A short digest naming bytes held in memory (BLAKE2b, 16 bytes): decoded samples by the stream they decode."""
    return hashlib.blake2b(data, digest_size=16).digest()
