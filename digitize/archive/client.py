"""The boto3 S3 client and what its failures mean.

:func:`make_s3_client` builds every S3 client of the project (path-style addressing, bounded
retries and timeouts, one service model per process). Failures are mapped to the digitize
family: those that go away (connection refused, timeouts, 5xx, throttling, after botocore's own
retries) become :class:`~digitize.errors.ArchiveUnavailable` (retry the task); refusals (403,
missing bucket, bad request) become :class:`~digitize.errors.ArchiveRejected`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from digitize.errors import ArchiveRejected, ArchiveUnavailable

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


_EMPTY_MD5 = base64.b64encode(hashlib.md5(b"", usedforsecurity=False).digest()).decode("ascii")


def send_md5_with_locked_copies(client: Any) -> None:
    """Make ``client`` (ours or the Amazon provider's) send the (correct) Content-MD5 of the empty body with
    a CopyObject that sets Object Lock retention: moto, like S3 for a PutObject, refuses a lock without
    Content-MD5 or a checksum header. Registered once per client, however many archives share it."""
    client.meta.events.register("before-call.s3.CopyObject", _md5_of_the_empty_body,
                                unique_id="digitize-locked-copy-md5")


def _md5_of_the_empty_body(params: dict[str, Any], **_: Any) -> None:
    headers = params["headers"]
    if "x-amz-object-lock-mode" in headers and "Content-MD5" not in headers:
        headers["Content-MD5"] = _EMPTY_MD5


@functools.cache
def _data_loader() -> Any:
    """botocore's loader of service models, shared by the process's clients (each session has its own
    credentials): parsing S3's model again costs ~0.15 s of CPU per client."""
    return botocore.loaders.create_loader()


def s3_client_version() -> str:
    """boto3's version, for the events and sidecars that name the tool that stored an object."""
    return str(boto3.__version__)


def warm_up() -> None:
    """Load S3's service model, so that processes forked afterwards (Airflow tasks) start with it.

    The throw-away client gets placeholder keys: no credential lookup (no instance-metadata call).
    """
    make_s3_client(None, credentials=("warm-up", "warm-up"))


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a refused request."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "")), status


def is_precondition_failed(exc: ClientError) -> bool:
    """A conditional put found the key taken."""
    code, status = error_code(exc)
    return code == "PreconditionFailed" or status == 412


def is_not_found(exc: ClientError) -> bool:
    """No such key or version."""
    code, status = error_code(exc)
    return code in _NOT_FOUND_CODES or status == 404


def translate_error(exc: BotoCoreError | ClientError, what: str) -> Exception:
    """Map a botocore failure to the digitize family: transient (retry) or rejected (stop)."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
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
def s3_errors(what: str) -> Iterator[None]:
    """Raise botocore failures inside the block as their digitize meaning (see :func:`translate_error`)."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise translate_error(exc, what) from exc
