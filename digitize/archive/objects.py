"""What both archive backends share: the :class:`Archive` interface, :class:`StoredObject`, and the rules for
user metadata and the SHA-256 that travels with every put.

User metadata values are percent-encoded UTF-8 (S3 headers are ASCII only), so Vietnamese titles
round-trip exactly; :func:`decode_metadata` restores them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, unquote

from digitize.checksums import sha256_bytes
from digitize.errors import ArchiveIntegrityError

_METADATA_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Printable ASCII stays readable; '%' and everything else is escaped, so unquote() is exact.
_METADATA_SAFE = "!#$&'()*+,-./:;<=>?@[]^_`{|}~"
SHA256_METADATA = "sha256"
"""User metadata name under which ``put`` records the object's hex SHA-256."""


@dataclass(frozen=True)
class StoredObject:
    """An object as the archive holds it (after a verified put, or from ``head``)."""

    key: str
    """Key of the object in the bucket (path under the root for a folder archive)."""

    sha256: str
    """Hex SHA-256 of the content (the ``sha256`` metadata written by ``put``; '' if unknown)."""

    size: int
    """Size in bytes."""

    version_id: str | None
    """S3 version id (versioned bucket); ``None`` for a folder or an unversioned bucket."""

    checksum_sha256: str | None = None
    """Checksum S3 reports (base64; ``…-N`` is a composite over N multipart parts)."""

    content_type: str | None = None
    """Content type stored with the object."""

    metadata: Mapping[str, str] = field(default_factory=dict)
    """Decoded user metadata, without ``sha256``."""

    lock_mode: str | None = None
    """Object Lock mode (COMPLIANCE / GOVERNANCE) if the version is locked."""

    retain_until: datetime | None = None
    """End of the Object Lock retention of this version."""


class Archive(Protocol):
    """What the pipeline needs from an archive; both backends implement it."""

    def ensure_bucket(self) -> None: ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> StoredObject: ...

    def get(self, key: str) -> bytes: ...

    def verify(self, key: str, expected_sha256: str | None = None) -> StoredObject: ...

    def head(self, key: str) -> StoredObject | None: ...

    def delete(self, key: str) -> int: ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def location(self, key: str) -> str: ...

    def presigned_url(self, key: str, *, expires_in: int = 3600) -> str: ...


def encode_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as S3 can carry it: names checked, values percent-encoded UTF-8 (``sha256`` is put's own)."""
    encoded: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not _METADATA_NAME_RE.fullmatch(name):
            raise ValueError(f"metadata name {name!r} must be lowercase [a-z0-9-], at most 64 characters")
        if name != SHA256_METADATA:
            encoded[name] = quote(str(value), safe=_METADATA_SAFE)
    return encoded


def checked_digest(key: str, data: bytes, metadata: Mapping[str, str] | None) -> str:
    """SHA-256 of ``data``; a ``sha256`` the caller expects (e.g. from registration) must match it."""
    digest = sha256_bytes(data)
    expected = (metadata or {}).get(SHA256_METADATA)
    if expected is not None and expected.lower() != digest:
        raise ArchiveIntegrityError(
            f"put {key}: the bytes to archive (sha256 {digest[:12]}…) differ from the expected {expected[:12]}…"
        )
    return digest


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Inverse of :func:`encode_metadata`."""
    return {name: unquote(value) for name, value in metadata.items()}

