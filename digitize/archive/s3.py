"""The archive: write-once storage of signed PDFs, sidecars and original scans, checked on read-back.

Two backends with one interface (:class:`Archive`): :class:`S3Archive` (AWS S3, MinIO, moto)
and :class:`LocalArchive` (a folder, ``file://`` URL) for single machines without S3.
:func:`open_archive` picks one from a URL or the settings.

Guarantees of ``put``:

- nothing is ever overwritten: S3 conditional put (``If-None-Match: *``), or ``link()`` (an atomic
  create-if-absent) for a folder;
- the SHA-256 of the bytes travels with the put (``x-amz-checksum-sha256``) and is stored in the
  user metadata ``sha256``; the object is then READ BACK and hashed, because an S3 server may
  store a checksum without verifying it (moto does), and a mismatching version is deleted;
- re-running a document is idempotent: same key and same bytes returns the stored object,
  same key and different bytes raises :class:`~digitize.errors.ArchiveIntegrityError`;
- failures that go away (connection refused, timeouts, 5xx, throttling, after botocore's own
  retries) raise :class:`~digitize.errors.ArchiveUnavailable` (retry the task); refusals
  (403, missing bucket, bad request) raise :class:`~digitize.errors.ArchiveRejected`.

User metadata values are percent-encoded UTF-8 (S3 headers are ASCII only), so Vietnamese
titles round-trip exactly; :meth:`S3Archive.head` decodes them.

Key layout (built only from a validated document code by :func:`document_keys`)::

    documents/<agency code>/<year>/<document code>/v<version>/<document code>.pdf    signed PDF/A
    documents/<agency code>/<year>/<document code>/v<version>/<document code>.json   JSON sidecar
    documents/<agency code>/<year>/<document code>/v<version>/originals/<NN><ext>    original scans

e.g. ``documents/000.00.00.H49/2021/000.00.00.H49.2021.KQ.000123/v1/originals/01.tif``, where
``NN`` is the file's position in the document (two digits or more). Codes that do not follow the
default template (``<agency>.<YYYY>.<KQ|TP>.<NNNNNN>``) go under ``documents/_custom/<code>/v<version>/``.
A corrected document gets a new version number, never an overwritten object.

Work in progress between two machines (OCR on one, signing on the token holder) is staged under
``staging/<document code>/v<version>/`` (:func:`staging_keys`): never object-locked, and the only
keys :meth:`S3Archive.delete` accepts, so the archive proper stays write-once.

Object Lock (WORM retention per document kind, COMPLIANCE or GOVERNANCE) and SSE-S3 encryption
are options (:class:`ArchiveOptions`, read from ``DIGITIZE_S3_*`` variables by
:meth:`ArchiveOptions.from_env`). Objects larger than ``multipart_threshold`` (64 MiB) are sent
as a multipart upload with a SHA-256 checksum per part.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote, urlparse
from urllib.request import url2pathname

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
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

AGENCY_CODE = r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}"
_DEFAULT_CODE_RE = re.compile(rf"^(?P<agency>{AGENCY_CODE})\.(?P<year>\d{{4}})\.(?:KQ|TP)\.\d{{6}}$")
_KIND_IN_KEY_RE = re.compile(
    rf"^documents/{AGENCY_CODE}/\d{{4}}/{AGENCY_CODE}\.\d{{4}}\.(?P<kind>KQ|TP)\.\d{{6}}/v\d+/"
)
_SAFE_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_KEY_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$")
_EXTENSION_RE = re.compile(r"^\.[a-z0-9]{1,8}$")
_METADATA_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Printable ASCII stays readable; '%' and everything else is escaped, so unquote() is exact.
_METADATA_SAFE = "!#$&'()*+,-./:;<=>?@[]^_`{|}~"
SHA256_METADATA = "sha256"
log = logging.getLogger(__name__)

STAGING_PREFIX = "staging/"
STAGING_RULE_ID = "digitize-staging-expiry"
"""ID of the bucket lifecycle rule :meth:`S3Archive.ensure_bucket` keeps on ``staging/``."""

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "OperationAborted",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchVersion"})


# --------------------------------------------------------------------------- values


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


def check_key(key: str) -> str:
    """Reject keys that could escape a folder or confuse tools: '..', empty or dot-leading segments, odd chars."""
    if not isinstance(key, str) or not key or len(key.encode("utf-8")) > 1024:
        raise ValueError(f"invalid archive key: {key!r}")
    if not all(_KEY_SEGMENT_RE.fullmatch(segment) for segment in key.split("/")):
        raise ValueError(
            f"invalid archive key {key!r}: segments must be [A-Za-z0-9._=+-], not empty, not starting with '.'"
        )
    return key


def encode_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata as S3 can carry it: names checked, values percent-encoded UTF-8 (``sha256`` is put's own)."""
    encoded: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not _METADATA_NAME_RE.fullmatch(name):
            raise ValueError(f"metadata name {name!r} must be lowercase [a-z0-9-], at most 64 characters")
        if name != SHA256_METADATA:
            encoded[name] = quote(str(value), safe=_METADATA_SAFE)
    return encoded


def _checked_digest(key: str, data: bytes, metadata: Mapping[str, str] | None) -> str:
    """SHA-256 of ``data``; a ``sha256`` the caller expects (e.g. from registration) must match it."""
    digest = hashlib.sha256(data).hexdigest()
    expected = (metadata or {}).get(SHA256_METADATA)
    if expected is not None and expected.lower() != digest:
        raise ArchiveIntegrityError(
            f"put {key}: the bytes to archive (sha256 {digest[:12]}…) differ from the expected {expected[:12]}…"
        )
    return digest


def kind_from_key(key: str) -> str | None:
    """Document kind (KQ/TP) of a key built by :func:`document_keys` from a default-template code."""
    match = _KIND_IN_KEY_RE.search(key)
    return match["kind"] if match else None


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {name: unquote(value) for name, value in metadata.items()}


def sha256_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


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

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def presigned_url(self, key: str, *, expires_in: int = 3600) -> str: ...


# --------------------------------------------------------------------------- S3


def make_s3_client(
    endpoint_url: str | None,
    *,
    region: str = "us-east-1",
    max_attempts: int = 5,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    credentials: tuple[str, str] | None = None,
) -> Any:
    """A boto3 S3 client: path-style addressing, "standard" retries, bounded timeouts.

    ``credentials`` (access key id, secret): an Airflow connection's key or a test's; without them
    boto3's default chain (environment, shared file, instance role). ``max_attempts`` counts
    the first try (botocore's ``total_max_attempts``).
    """
    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    core = botocore.session.get_session()
    core.register_component("data_loader", _data_loader())
    session = boto3.session.Session(botocore_session=core)
    keys: dict[str, str] = {}
    if credentials is not None:
        keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}
    return session.client("s3", endpoint_url=endpoint_url, config=config, **keys)


@functools.cache
def _data_loader() -> Any:
    """botocore's loader of service models, shared by the process's clients (each session has its own
    credentials): parsing S3's model again costs ~0.15 s of CPU per client."""
    return botocore.loaders.create_loader()


def warm_up() -> None:
    """Load S3's service model, so that processes forked afterwards (Airflow tasks) start with it.

    The throw-away client gets placeholder keys: no credential lookup (no instance-metadata call).
    """
    make_s3_client(None, credentials=("warm-up", "warm-up"))


def _error_code(exc: ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "")), status


def _is_precondition_failed(exc: ClientError) -> bool:
    code, status = _error_code(exc)
    return code == "PreconditionFailed" or status == 412


def _is_not_found(exc: ClientError) -> bool:
    code, status = _error_code(exc)
    return code in _NOT_FOUND_CODES or status == 404


def _translate(exc: BotoCoreError | ClientError, what: str) -> Exception:
    """Map a botocore failure to the digitize family: transient (retry) or rejected (stop)."""
    if isinstance(exc, ClientError):
        code, status = _error_code(exc)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return ArchiveUnavailable(f"{what}: S3 is unavailable ({code or 'HTTP'} {status}) after retries")
        if code == "NoSuchBucket":
            return ArchiveRejected(f"{what}: the bucket does not exist", hint="Run ensure_bucket() / `make s3-up`.")
        return ArchiveRejected(f"{what}: S3 refused the request ({code or 'HTTP'} {status})")
    if isinstance(exc, NoCredentialsError):
        return ArchiveRejected(f"{what}: no S3 credentials found", hint="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.")
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return ArchiveUnavailable(f"{what}: S3 endpoint unreachable ({type(exc).__name__}) after retries")
    return ArchiveRejected(f"{what}: S3 client error ({type(exc).__name__}: {exc})")


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise _translate(exc, what) from exc


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
        with _s3_errors(f"bucket {self.bucket}"):
            if not self._bucket_exists():
                args: dict[str, Any] = {"Bucket": self.bucket}
                region = self.client.meta.region_name
                if region and region != "us-east-1":
                    args["CreateBucketConfiguration"] = {"LocationConstraint": region}
                if locking:
                    args["ObjectLockEnabledForBucket"] = True
                try:
                    self.client.create_bucket(**args)
                except ClientError as exc:
                    if _error_code(exc)[0] != "BucketAlreadyOwnedByYou":
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
                if _error_code(exc)[0] != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if rule in rules:
                return
            others = [r for r in rules if r.get("ID") != STAGING_RULE_ID]
            self.client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                           LifecycleConfiguration={"Rules": [*others, rule]})
        except ClientError as exc:
            if _error_code(exc)[0] not in ("AccessDenied", "NotImplemented"):
                raise
            log.warning("bucket %s: cannot set the lifecycle rule expiring %s after %d days (%s); set it by hand "
                        "or staged work of never-signed documents stays", self.bucket, STAGING_PREFIX, days,
                        _error_code(exc)[0])

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _is_not_found(exc) or _error_code(exc)[0] == "NoSuchBucket":
                return False
            raise
        return True

    def _object_lock_enabled(self) -> bool:
        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc)[0] == "ObjectLockConfigurationNotFoundError":
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
        digest = _checked_digest(key, data, metadata)
        meta = {**encode_metadata(metadata), SHA256_METADATA: digest}
        extra = self._object_args(kind or kind_from_key(key), staging=key.startswith(STAGING_PREFIX))
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
            if _is_precondition_failed(exc):
                return self._existing(key, digest)
            raise _translate(exc, what) from exc
        except BotoCoreError as exc:
            raise _translate(exc, what) from exc
        return self._verify_written(key, version_id, digest)

    def _put_multipart(
        self, key: str, data: bytes, content_type: str, meta: dict[str, str], extra: dict[str, Any]
    ) -> str | None:
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=meta, ChecksumAlgorithm="SHA256", **extra
        )
        upload_id = upload["UploadId"]
        try:
            view = memoryview(data)
            parts = []
            for number, offset in enumerate(range(0, len(data), self.options.part_size), start=1):
                chunk = view[offset : offset + self.options.part_size]
                checksum = sha256_b64(chunk)
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk.tobytes(),
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum})
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
        with _s3_errors(what):
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
        with _s3_errors(f"delete {key}"):
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
        with _s3_errors(what):
            try:
                response = self.client.get_object(**args)
            except ClientError as exc:
                if _is_not_found(exc):
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
        with _s3_errors(f"head {key}"):
            try:
                response = self.client.head_object(**args)
            except ClientError as exc:
                if _is_not_found(exc) or _error_code(exc)[1] == 405:  # 405: a delete marker
                    return None
                raise
        return _stored_from_response(key, response)

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in S3's (lexicographic) order, page by page."""
        with _s3_errors(f"list {prefix}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def presigned_url(self, key: str, *, expires_in: int = 3600, version_id: str | None = None) -> str:
        """A time-limited GET link for auditors (no credentials needed); treat it as a secret until it expires."""
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_in must be between 1 and {MAX_PRESIGN_SECONDS} seconds")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        with _s3_errors(f"presign {key}"):
            url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url


# --------------------------------------------------------------------------- folder


class LocalArchive:
    """Write-once archive in a local folder: same interface and checks as :class:`S3Archive`.

    Objects are plain files under ``root`` (read-only once written); their metadata lives in
    ``root/.meta/<key>.json``. No-overwrite comes from ``link()``, which fails if the name exists,
    after the bytes were written and fsync'ed under a temporary name: a reader never sees a
    partial file. There are no versions and no Object Lock.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalArchive({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _meta_path(self, key: str) -> Path:
        return self.root.joinpath(".meta", *check_key(key).split("/")).with_name(key.rsplit("/", 1)[-1] + ".json")

    def ensure_bucket(self) -> None:
        """Create the folder (the analogue of the bucket)."""
        try:
            (self.root / ".meta").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveRejected(f"cannot create archive folder {self.root}: {exc.strerror}") from exc

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        kind: str | None = None,
    ) -> StoredObject:
        """Store once, verified by read-back; ``kind`` is accepted for interface parity (no retention here)."""
        path = self._path(key)
        digest = _checked_digest(key, data, metadata)
        encode_metadata(metadata)  # same name rules as S3
        record = {
            "sha256": digest,
            "size": len(data),
            "content_type": content_type,
            "metadata": dict(metadata or {}),
            "created": datetime.now(UTC).isoformat(),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o444)
                try:
                    os.link(tmp, path)  # atomic; fails if the key exists
                except FileExistsError:
                    return self._existing(key, digest)
            finally:
                tmp.unlink(missing_ok=True)
            self._write_meta(key, record)
            _fsync_dir(path.parent)
        except PermissionError as exc:
            raise ArchiveRejected(f"put {key}: no permission to write under {self.root}") from exc
        except OSError as exc:  # disk full, NFS hiccup: may go away
            raise ArchiveUnavailable(f"put {key}: cannot write to {self.root} ({exc.strerror})") from exc
        stored = self.head(key)
        if stored is None or _file_sha256(path) != digest:
            path.unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
            raise ArchiveIntegrityError(f"read-back {key}: stored bytes do not match what was written (deleted)")
        return stored

    def _write_meta(self, key: str, record: Mapping[str, Any]) -> None:
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=meta.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, meta)

    def _existing(self, key: str, digest: str) -> StoredObject:
        current = self.head(key)
        if current is None or current.sha256 != digest or _file_sha256(self._path(key)) != digest:
            raise ArchiveIntegrityError(f"put {key}: the archive already holds different content; nothing overwritten")
        return current

    def verify(self, key: str, expected_sha256: str | None = None) -> StoredObject:
        """Audit one object: re-hash the file against ``expected_sha256`` or the sha256 recorded at put time."""
        current = self.head(key)
        if current is None:
            raise ArchiveNotFound(f"verify {key}: no such object")
        expected = (expected_sha256 or current.sha256).lower()
        actual = _file_sha256(self._path(key))
        if actual != expected or current.sha256 != expected:
            raise ArchiveIntegrityError(f"verify {key}: sha256 {actual[:12]}… differs from expected {expected[:12]}…")
        return current

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArchiveNotFound(f"get {key}: no such object") from exc
        except OSError as exc:
            raise ArchiveUnavailable(f"get {key}: cannot read ({exc.strerror})") from exc
        stored = self.head(key)
        if stored is not None and stored.sha256 and hashlib.sha256(data).hexdigest() != stored.sha256:
            raise ArchiveIntegrityError(f"get {key}: content does not match its recorded sha256")
        return data

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(self._meta_path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:  # crashed between link and metadata: the bytes are the truth
            record = {"sha256": _file_sha256(path)}
        return StoredObject(
            key=key,
            sha256=str(record.get("sha256", "")),
            size=path.stat().st_size,
            version_id=None,
            checksum_sha256=base64.b64encode(bytes.fromhex(record["sha256"])).decode("ascii"),
            content_type=record.get("content_type"),
            metadata=dict(record.get("metadata") or {}),
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            hidden = relative.startswith(".meta/") or path.name.startswith(".tmp-")
            if not hidden and relative.startswith(prefix) and path.is_file():
                yield relative

    def presigned_url(self, key: str, *, expires_in: int = 3600) -> str:
        """A ``file://`` URL (no expiry: local files have no signed links)."""
        return self._path(key).resolve().as_uri()


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_archive(target: str | Settings, *, options: ArchiveOptions | None = None) -> Archive:
    """An archive from ``file:///path``, ``s3://bucket`` (default AWS endpoint) or the settings.

    With settings, an endpoint URL starting with ``file://`` selects a folder archive.
    """
    if isinstance(target, str):
        parsed = urlparse(target)
        if parsed.scheme == "file":
            return LocalArchive(Path(url2pathname(parsed.path)))
        if parsed.scheme == "s3" and parsed.netloc:
            return S3Archive(make_s3_client(None), parsed.netloc, options or ArchiveOptions.from_env())
        raise ConfigurationError(f"archive URL must be file:///path or s3://bucket, not {target!r}")
    endpoint = target.s3_endpoint_url or ""
    if endpoint.startswith("file://"):
        return LocalArchive(Path(url2pathname(urlparse(endpoint).path)))
    return S3Archive.from_settings(target, options)
