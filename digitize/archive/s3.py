"""The S3 archive: write-once storage of signed PDFs, sidecars and original scans, checked on read-back.

:class:`S3Archive` works with AWS S3, MinIO and moto; :class:`~digitize.archive.folder.LocalArchive`
keeps the same promises in a folder. Guarantees of ``put``:

- nothing is ever overwritten: S3 conditional put (``If-None-Match: *``), or ``link()`` (an atomic
  create-if-absent) for a folder;
- the SHA-256 of the bytes travels with the put (``x-amz-checksum-sha256``) and is stored in the
  user metadata ``sha256``; the object is then READ BACK and hashed, because an S3 server may
  store a checksum without verifying it (moto does), and a mismatching version is deleted;
- under Object Lock, nothing unverified is locked: the bytes go to ``staging/_uploads/`` first, are read
  back there, and are then copied server-side (conditionally, with the retention) to the final key;
- re-running a document is idempotent: same key and same bytes returns the stored object,
  same key and different bytes raises :class:`~digitize.errors.ArchiveIntegrityError`;
- failures that go away raise :class:`~digitize.errors.ArchiveUnavailable` (retry the task), refusals
  raise :class:`~digitize.errors.ArchiveRejected` (see :mod:`digitize.archive.client`).

Keys come from :mod:`digitize.archive.keys`. Staged work (``staging/``) is never object-locked and
is the only thing :meth:`S3Archive.delete` accepts, so the archive proper stays write-once.

Object Lock (WORM retention per document kind, COMPLIANCE or GOVERNANCE) and SSE-S3 encryption
are options (:class:`ArchiveOptions`, read from ``DIGITIZE_S3_*`` variables by
:meth:`ArchiveOptions.from_env`). Objects larger than ``multipart_threshold`` (64 MiB) are sent
as a multipart upload with a SHA-256 checksum per part.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from digitize.archive.client import (
    error_code,
    is_not_found,
    is_precondition_failed,
    make_s3_client,
    s3_errors,
    send_md5_with_locked_copies,
    translate_error,
)
from digitize.archive.keys import STAGING_PREFIX, check_key, kind_from_key
from digitize.archive.objects import (
    SHA256_METADATA,
    StoredObject,
    checked_digest,
    decode_metadata,
    encode_metadata,
)
from digitize.errors import (
    ArchiveIntegrityError,
    ArchiveNotFound,
    ArchiveRejected,
    ArchiveUnavailable,
    ConfigurationError,
)

if TYPE_CHECKING:
    from digitize.config import Settings

MIB = 1024 * 1024
READ_CHUNK = 1 * MIB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 limit
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
SSE_ALGORITHMS = ("AES256", "aws:kms")
log = logging.getLogger(__name__)

UPLOADS_PREFIX = f"{STAGING_PREFIX}_uploads/"
"""Where a put under Object Lock stages its bytes until they are verified (``_`` never starts a document code)."""

STAGING_RULE_ID = "digitize-staging-expiry"
"""ID of the bucket lifecycle rule :meth:`S3Archive.ensure_bucket` keeps on ``staging/``."""


@dataclass(frozen=True)
class ArchiveOptions:
    """How objects are written: retention, encryption, multipart."""

    object_lock_mode: str | None = None
    """COMPLIANCE (nobody can delete before the date) or GOVERNANCE (privileged users can); None = no lock."""

    retention_days: Mapping[str, int] = field(default_factory=dict)
    """Retention in days per document kind (e.g. {"KQ": 36500, "TP": 3650}); used with ``object_lock_mode``."""

    default_retention_days: int | None = None
    """Retention for kinds not in ``retention_days``; None makes such puts fail when locking is on."""

    server_side_encryption: str | None = None
    """``AES256`` (SSE-S3) or ``aws:kms`` asked for on every put; None leaves the bucket default."""

    multipart_threshold: int = 64 * MIB
    """Objects larger than this go up as multipart uploads."""

    part_size: int = 16 * MIB
    """Size of each multipart part (S3 needs at least 5 MiB except for the last one)."""

    staging_expiry_days: int = 30
    """Days after which the bucket's lifecycle rule removes a ``staging/`` object: the work of a document
    prepared but never signed (quarantined and not retried); 0 leaves the bucket's lifecycle alone."""

    def __post_init__(self) -> None:
        if self.object_lock_mode is not None and self.object_lock_mode not in LOCK_MODES:
            raise ConfigurationError(f"object lock mode must be one of {LOCK_MODES}, not {self.object_lock_mode!r}")
        if self.server_side_encryption is not None and self.server_side_encryption not in SSE_ALGORITHMS:
            raise ConfigurationError(f"server-side encryption must be one of {SSE_ALGORITHMS}")
        days = [*self.retention_days.values(), self.default_retention_days]
        if any(d is not None and d <= 0 for d in days):
            raise ConfigurationError("retention periods must be positive numbers of days")
        if self.part_size < 5 * MIB or self.multipart_threshold < 1:
            raise ConfigurationError("multipart part size must be at least 5 MiB")
        if self.staging_expiry_days < 0:
            raise ConfigurationError("DIGITIZE_S3_STAGING_EXPIRY_DAYS must be 0 (off) or a number of days")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ArchiveOptions:
        """Read ``DIGITIZE_S3_OBJECT_LOCK_MODE``, ``DIGITIZE_S3_RETENTION_DAYS`` (``KQ=36500,TP=3650,*=3650``),
        ``DIGITIZE_S3_SSE``, ``DIGITIZE_S3_MULTIPART_THRESHOLD_MB`` and ``DIGITIZE_S3_STAGING_EXPIRY_DAYS``."""
        env = os.environ if environ is None else environ
        retention: dict[str, int] = {}
        default_days: int | None = None
        for item in filter(None, (p.strip() for p in env.get("DIGITIZE_S3_RETENTION_DAYS", "").split(","))):
            kind, sep, days = item.partition("=")
            if not sep or not days.strip().isdigit():
                raise ConfigurationError(f"DIGITIZE_S3_RETENTION_DAYS: expected KIND=DAYS, got {item!r}")
            if kind.strip() == "*":
                default_days = int(days)
            else:
                retention[kind.strip()] = int(days)
        threshold = env.get("DIGITIZE_S3_MULTIPART_THRESHOLD_MB", "").strip()
        if threshold and not threshold.isdigit():
            raise ConfigurationError(f"DIGITIZE_S3_MULTIPART_THRESHOLD_MB must be a whole number, not {threshold!r}")
        expiry = env.get("DIGITIZE_S3_STAGING_EXPIRY_DAYS", "").strip()
        if expiry and not expiry.isdigit():
            raise ConfigurationError(f"DIGITIZE_S3_STAGING_EXPIRY_DAYS must be a whole number of days, not {expiry!r}")
        return cls(
            object_lock_mode=env.get("DIGITIZE_S3_OBJECT_LOCK_MODE", "").strip().upper() or None,
            retention_days=retention,
            default_retention_days=default_days,
            server_side_encryption=env.get("DIGITIZE_S3_SSE", "").strip() or None,
            multipart_threshold=int(threshold) * MIB if threshold else 64 * MIB,
            staging_expiry_days=int(expiry) if expiry else 30,
        )

    def retain_until(self, kind: str | None, now: datetime | None = None) -> datetime | None:
        """End of retention for a new object of this kind, or None when locking is off."""
        if self.object_lock_mode is None:
            return None
        days = self.retention_days.get(kind, self.default_retention_days) if kind else self.default_retention_days
        if days is None:
            raise ConfigurationError(
                f"Object Lock is on but no retention is configured for document kind {kind!r}",
                hint="Set DIGITIZE_S3_RETENTION_DAYS, e.g. KQ=36500,TP=3650,*=3650.",
            )
        until = (now or datetime.now(UTC)) + timedelta(days=days)
        # S3 keeps whole seconds: round up so retention is never shorter than configured.
        return until.replace(microsecond=0) + timedelta(seconds=1 if until.microsecond else 0)


def sha256_b64(data: bytes | memoryview) -> str:
    """Base64 SHA-256, the form S3's checksum headers take."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _stored_from_response(key: str, response: Mapping[str, Any]) -> StoredObject:
    metadata = decode_metadata(response.get("Metadata") or {})
    sha = metadata.pop(SHA256_METADATA, "")
    checksum = response.get("ChecksumSHA256")
    if not sha and checksum and "-" not in checksum:
        sha = base64.b64decode(checksum).hex()
    return StoredObject(
        key=key,
        sha256=sha,
        size=int(response.get("ContentLength", 0)),
        version_id=response.get("VersionId"),
        checksum_sha256=checksum,
        content_type=response.get("ContentType"),
        metadata=metadata,
        lock_mode=response.get("ObjectLockMode"),
        retain_until=response.get("ObjectLockRetainUntilDate"),
    )


class S3Archive:
    """Write-once archive in one S3 bucket (see the module docstring for the guarantees)."""

    def __init__(self, client: Any, bucket: str, options: ArchiveOptions | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.options = options or ArchiveOptions()
        send_md5_with_locked_copies(client)

    def __repr__(self) -> str:
        return f"S3Archive(bucket={self.bucket!r}, endpoint={self.client.meta.endpoint_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings, options: ArchiveOptions | None = None) -> S3Archive:
        """Client from the settings (endpoint, region) and credentials from boto3's default chain."""
        client = make_s3_client(settings.s3_endpoint_url, region=settings.s3_region)
        return cls(client, settings.s3_bucket, options if options is not None else ArchiveOptions.from_env())

    # -- bucket

    def ensure_bucket(self) -> None:
        """Create the bucket if missing, enable versioning, and check Object Lock when it is configured."""
        locking = self.options.object_lock_mode is not None
        with s3_errors(f"bucket {self.bucket}"):
            if not self.bucket_exists():
                args: dict[str, Any] = {"Bucket": self.bucket}
                region = self.client.meta.region_name
                if region and region != "us-east-1":
                    args["CreateBucketConfiguration"] = {"LocationConstraint": region}
                if locking:
                    args["ObjectLockEnabledForBucket"] = True
                try:
                    self.client.create_bucket(**args)
                except ClientError as exc:
                    if error_code(exc)[0] != "BucketAlreadyOwnedByYou":
                        raise
            if self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") != "Enabled":
                self.client.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
            if locking and not self._object_lock_enabled():
                raise ArchiveRejected(
                    f"bucket {self.bucket} exists without Object Lock, but a lock mode is configured",
                    hint="Use a new bucket (Object Lock is set at creation) or unset DIGITIZE_S3_OBJECT_LOCK_MODE.",
                )
            if self.options.staging_expiry_days:
                self._ensure_staging_expiry(self.options.staging_expiry_days)

    def _ensure_staging_expiry(self, days: int) -> None:
        """Add (or update) the lifecycle rule expiring ``staging/``, keeping every other rule of the bucket.

        Staged work is deleted once its document is archived; this rule removes what a document
        quarantined in the sign stage and never retried leaves behind. Without the permission to
        change the lifecycle, a warning says what to set by hand and the archive still works.
        """
        rule = {"ID": STAGING_RULE_ID, "Filter": {"Prefix": STAGING_PREFIX}, "Status": "Enabled",
                "Expiration": {"Days": days}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
        try:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
            except ClientError as exc:
                if error_code(exc)[0] != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if rule in rules:
                return
            others = [r for r in rules if r.get("ID") != STAGING_RULE_ID]
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                           LifecycleConfiguration={"Rules": [*others, rule]})
        except ClientError as exc:
            if error_code(exc)[0] not in ("AccessDenied", "NotImplemented"):
                raise
            log.warning("bucket %s: cannot set the lifecycle rule expiring %s after %d days (%s); set it by hand "
                        "or staged work of never-signed documents stays", self.bucket, STAGING_PREFIX, days,
                        error_code(exc)[0])

    def bucket_exists(self) -> bool:
        """Whether the bucket is there (a refusal or an outage raises, as every call here does)."""
        with s3_errors(f"bucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if is_not_found(exc) or error_code(exc)[0] == "NoSuchBucket":
                    return False
                raise
        return True

    def _object_lock_enabled(self) -> bool:
        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc)[0] == "ObjectLockConfigurationNotFoundError":
                return False
            raise
        return bool(config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    # -- write

    def _object_args(self, kind: str | None, *, staging: bool = False) -> dict[str, Any]:
        args: dict[str, Any] = {}
        retain_until = None if staging else self.options.retain_until(kind)
        if retain_until is not None:
            args["ObjectLockMode"] = self.options.object_lock_mode
            args["ObjectLockRetainUntilDate"] = retain_until
        if self.options.server_side_encryption:
            args["ServerSideEncryption"] = self.options.server_side_encryption
        return args

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> StoredObject:
        """Store ``data`` under ``key`` once, verified by read-back.

        ``kind`` picks the retention period (default: the KQ/TP of a :func:`document_keys` key; staging
        keys are never locked). A ``sha256`` in ``metadata`` is checked against ``data`` before anything is sent.
        """
        check_key(key)
        digest = checked_digest(key, data, metadata)
        meta = {**encode_metadata(metadata), SHA256_METADATA: digest}
        extra = self._object_args(kind or kind_from_key(key), staging=key.startswith(STAGING_PREFIX))
        if "ObjectLockMode" in extra:
            return self._put_locked(key, data, digest, content_type, metadata, meta, extra)
        what = f"put {key}"
        try:
            if len(data) > self.options.multipart_threshold:
                if self.head(key) is not None:  # do not send 64+ MiB only to be refused
                    return self._existing(key, digest)
                version_id = self._put_multipart(key, data, content_type, meta, extra)
            else:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    Metadata=meta,
                    ChecksumAlgorithm="SHA256",  # without it moto drops the checksum below
                    ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode("ascii"),
                    IfNoneMatch="*",
                    **extra,
                )
                version_id = response.get("VersionId")
        except ClientError as exc:
            if is_precondition_failed(exc):
                return self._existing(key, digest)
            raise translate_error(exc, what) from exc
        except BotoCoreError as exc:
            raise translate_error(exc, what) from exc
        return self._verify_written(key, version_id, digest)

    def _put_locked(
        self,
        key: str,
        data: bytes,
        digest: str,
        content_type: str,
        metadata: Mapping[str, str] | None,
        meta: dict[str, str],
        extra: dict[str, Any],
    ) -> StoredObject:
        """Put under Object Lock: the bytes go to an unlocked staging key, are read back and hashed there,
        and only then copied server-side to ``key`` with its retention, so bytes corrupted in transit are
        never locked in (a retry would otherwise meet them for the whole retention period)."""
        if self.head(key) is not None:  # a re-run: nothing to stage
            return self._existing(key, digest)
        staging = f"{UPLOADS_PREFIX}{uuid.uuid4().hex}/{key}"
        staged = self.put(staging, data, content_type=content_type, metadata=metadata)  # verified by read-back
        what = f"put {key}"
        try:
            source = {"Bucket": self.bucket, "Key": staging, **({"VersionId": v} if (v := staged.version_id) else {})}
            try:
                if len(data) > self.options.multipart_threshold:
                    version_id = self._copy_multipart(key, source, len(data), content_type, meta, extra)
                else:
                    response = self.client.copy_object(
                        Bucket=self.bucket,
                        Key=key,
                        CopySource=source,
                        ContentType=content_type,
                        Metadata=meta,
                        MetadataDirective="REPLACE",
                        ChecksumAlgorithm="SHA256",
                        IfNoneMatch="*",  # AWS refuses an existing key; moto ignores it (the head above)
                        **extra,
                    )
                    version_id = response.get("VersionId")
            except ClientError as exc:
                if is_precondition_failed(exc):
                    return self._existing(key, digest)
                raise translate_error(exc, what) from exc
            except BotoCoreError as exc:
                raise translate_error(exc, what) from exc
            return self._verify_written(key, version_id, digest)
        finally:
            try:
                self.delete(staging)
            except (ArchiveUnavailable, ArchiveRejected) as exc:  # the lifecycle rule removes it later
                log.warning("put %s: staged copy %s not deleted (%s)", key, staging, type(exc).__name__)

    def _copy_multipart(
        self, key: str, source: dict[str, str], size: int, content_type: str, meta: dict[str, str],
        extra: dict[str, Any],
    ) -> str | None:
        """Server-side copy in parts (CopyObject stops at 5 GiB), completed only if ``key`` is still free."""
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=meta, ChecksumAlgorithm="SHA256", **extra
        )
        upload_id = upload["UploadId"]

        def copy_parts() -> list[dict[str, Any]]:
            parts = []
            for number, offset in enumerate(range(0, size, self.options.part_size), start=1):
                last = min(offset + self.options.part_size, size) - 1
                result = self.client.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, CopySource=source,
                    CopySourceRange=f"bytes={offset}-{last}",
                )["CopyPartResult"]
                part = {"PartNumber": number, "ETag": result["ETag"]}
                if result.get("ChecksumSHA256"):  # AWS computes it; moto does not
                    part["ChecksumSHA256"] = result["ChecksumSHA256"]
                parts.append(part)
            return parts

        return self._complete_multipart(key, upload_id, copy_parts)

    def _put_multipart(
        self, key: str, data: bytes, content_type: str, meta: dict[str, str], extra: dict[str, Any]
    ) -> str | None:
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=meta, ChecksumAlgorithm="SHA256", **extra
        )
        upload_id = upload["UploadId"]

        def upload_parts() -> list[dict[str, Any]]:
            view = memoryview(data)
            parts = []
            for number, offset in enumerate(range(0, len(data), self.options.part_size), start=1):
                chunk = view[offset : offset + self.options.part_size]
                checksum = sha256_b64(chunk)
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk.tobytes(),
                    ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum})
            return parts

        return self._complete_multipart(key, upload_id, upload_parts)

    def _complete_multipart(self, key: str, upload_id: str, make_parts: Callable[[], list[dict[str, Any]]]
                            ) -> str | None:
        """Send the parts, then complete the upload only if ``key`` is still free; abort it on any failure."""
        try:
            parts = make_parts()
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        version: str | None = done.get("VersionId")
        return version

    def _existing(self, key: str, digest: str) -> StoredObject:
        """The key is taken: fine if it holds exactly our bytes (a re-run), an integrity error otherwise."""
        current = self.head(key)
        if current is None:
            raise ArchiveUnavailable(f"put {key}: refused as existing, but the object is gone; retry")
        if current.sha256 != digest:
            raise ArchiveIntegrityError(
                f"put {key}: the archive already holds different content (sha256 {current.sha256[:12]}…, "
                f"new {digest[:12]}…); nothing was overwritten"
            )
        return self._verify_written(key, current.version_id, digest, delete_on_mismatch=False)

    def _verify_written(
        self, key: str, version_id: str | None, digest: str, *, delete_on_mismatch: bool = True
    ) -> StoredObject:
        """Read the object back, hash it, and compare: the only check that does not trust the server."""
        what = f"read-back {key}"
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            args["VersionId"] = version_id
        hasher = hashlib.sha256()
        with s3_errors(what):
            response = self.client.get_object(**args)
            try:
                for chunk in response["Body"].iter_chunks(READ_CHUNK):
                    hasher.update(chunk)
                actual = hasher.hexdigest()
            except FlexibleChecksumError:  # body differs from the checksum S3 stored
                actual = "checksum-mismatch"
        stored = _stored_from_response(key, response)
        if actual == digest and stored.sha256 == digest:
            return stored
        deleted = ""
        if delete_on_mismatch:
            deleted = " (the bad version was deleted)" if self._delete_version(key, version_id) else ""
        raise ArchiveIntegrityError(
            f"{what}: stored bytes do not match what was sent (sha256 {actual[:12]}…, expected {digest[:12]}…){deleted}"
        )

    def _delete_version(self, key: str, version_id: str | None) -> bool:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            self.client.delete_object(**args)
        except (BotoCoreError, ClientError):  # e.g. locked: report the integrity error anyway
            return False
        return True

    def delete(self, key: str) -> int:
        """Remove every version (and delete marker) of a staging object; returns how many were removed.

        Only ``staging/`` keys: staged work is scratch space shared by machines, the archive is write-once.
        """
        check_key(key)
        if not key.startswith(STAGING_PREFIX):
            raise ValueError(f"only staging objects can be deleted, not {key!r}")
        removed = 0
        with s3_errors(f"delete {key}"):
            paginator = self.client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if item["Key"] == key:
                        self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=item["VersionId"])
                        removed += 1
        return removed

    # -- read

    def verify(self, key: str, expected_sha256: str | None = None) -> StoredObject:
        """Audit one object: stream and hash the current version against ``expected_sha256`` (e.g. the
        catalog's) or else the sha256 recorded at put time; raises ArchiveIntegrityError on any difference."""
        current = self.head(key)
        if current is None:
            raise ArchiveNotFound(f"verify {key}: no such object")
        expected = (expected_sha256 or current.sha256).lower()
        if not expected:
            raise ArchiveIntegrityError(f"verify {key}: no sha256 recorded to check against")
        if current.sha256 and current.sha256 != expected:
            raise ArchiveIntegrityError(
                f"verify {key}: recorded sha256 {current.sha256[:12]}… differs from the expected {expected[:12]}…"
            )
        return self._verify_written(key, current.version_id, expected, delete_on_mismatch=False)

    def get(self, key: str, version_id: str | None = None) -> bytes:
        """The object's bytes, checked against the SHA-256 stored with it."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            args["VersionId"] = version_id
        what = f"get {key}"
        with s3_errors(what):
            try:
                response = self.client.get_object(**args)
            except ClientError as exc:
                if is_not_found(exc):
                    raise ArchiveNotFound(f"{what}: no such object") from exc
                raise
            try:
                data: bytes = response["Body"].read()
            except FlexibleChecksumError as exc:
                raise ArchiveIntegrityError(f"{what}: content does not match its stored checksum") from exc
        expected = _stored_from_response(key, response).sha256
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise ArchiveIntegrityError(f"{what}: content does not match its recorded sha256 {expected[:12]}…")
        return data

    def head(self, key: str, version_id: str | None = None) -> StoredObject | None:
        """What the archive holds under ``key`` (current version unless asked), or None."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            args["VersionId"] = version_id
        with s3_errors(f"head {key}"):
            try:
                response = self.client.head_object(**args)
            except ClientError as exc:
                if is_not_found(exc) or error_code(exc)[1] == 405:  # 405: a delete marker
                    return None
                raise
        return _stored_from_response(key, response)

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in S3's (lexicographic) order, page by page."""
        with s3_errors(f"list {prefix}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def location(self, key: str) -> str:
        """Where a person finds the object: ``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    def presigned_url(self, key: str, *, expires_in: int = 3600, version_id: str | None = None) -> str:
        """A time-limited GET link for auditors (no credentials needed); treat it as a secret until it expires."""
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        with s3_errors(f"presign {key}"):
            url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url
