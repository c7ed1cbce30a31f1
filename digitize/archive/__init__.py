"""Archive: the S3 and folder backends, write-once puts, read-back with SHA-256, the sidecar's schema.

S3 is spoken to here only. Inside: ``s3`` (the S3 backend and its options), ``client`` (the boto3
client and error mapping), ``folder`` (the ``file://`` backend and :func:`open_archive`), ``keys``
(the key layout), ``stacks`` (where scanned stacks go), ``objects`` (the interface both backends share),
``sidecar`` (the sidecar schema).
"""

from __future__ import annotations

from digitize.archive.client import make_s3_client, s3_client_version, warm_up
from digitize.archive.folder import open_archive
from digitize.archive.keys import StagingKeys, document_keys, ocr_cache_keys, staging_keys, validate_code
from digitize.archive.objects import Archive
from digitize.archive.s3 import ArchiveOptions, S3Archive
from digitize.archive.sidecar import SIDECAR_SCHEMA, sidecar_validator
from digitize.archive.stacks import longest_kept_kind, stack_key, stack_staging_prefix

__all__ = [
    "SIDECAR_SCHEMA",
    "Archive",
    "ArchiveOptions",
    "S3Archive",
    "StagingKeys",
    "document_keys",
    "longest_kept_kind",
    "make_s3_client",
    "ocr_cache_keys",
    "open_archive",
    "s3_client_version",
    "sidecar_validator",
    "stack_key",
    "stack_staging_prefix",
    "staging_keys",
    "validate_code",
    "warm_up",
]
