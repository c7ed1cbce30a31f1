"""Archive: the S3 and folder backends, write-once puts, read-back with SHA-256.

S3 is spoken to here only.
"""

from __future__ import annotations

from digitize.archive.s3 import (
    Archive,
    ArchiveOptions,
    S3Archive,
    document_keys,
    make_s3_client,
    open_archive,
    staging_keys,
    validate_code,
    warm_up,
)
from digitize.archive.sidecar import SIDECAR_SCHEMA, sidecar_validator

__all__ = [
    "SIDECAR_SCHEMA",
    "Archive",
    "ArchiveOptions",
    "S3Archive",
    "document_keys",
    "make_s3_client",
    "open_archive",
    "sidecar_validator",
    "staging_keys",
    "validate_code",
    "warm_up",
]
