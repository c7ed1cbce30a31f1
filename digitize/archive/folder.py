"""The folder archive (``file://`` URL) for single machines without S3, and :func:`open_archive`, which
picks a backend from a URL or the settings (``DIGITIZE_ARCHIVE_URL``): the pipeline, the DAGs, the API,
``verify`` and the rebuilds all open the archive through it.

The folder is what ``make demo`` and ``make airflow`` use by default (``var/archive``): it survives
restarts, which an in-memory S3 stand-in does not, so the catalog never points at objects that are gone.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from digitize.archive.client import make_s3_client
from digitize.archive.keys import STAGING_PREFIX, check_key
from digitize.archive.objects import Archive, StoredObject, checked_digest, encode_metadata
from digitize.archive.s3 import ArchiveOptions, S3Archive
from digitize.checksums import sha256_bytes, sha256_file
from digitize.errors import (
    ArchiveIntegrityError,
    ArchiveNotFound,
    ArchiveRejected,
    ArchiveUnavailable,
    ConfigurationError,
)

if TYPE_CHECKING:
    from digitize.config import Settings


class LocalArchive:
    """Write-once archive in a local folder: same interface and checks as :class:`S3Archive`.

    Objects are plain files under ``root`` (read-only once written); their metadata lives in
    ``root/.meta/<key>.json``. No-overwrite comes from ``link()``, which fails if the name exists,
    after the bytes were written and fsync'ed under a temporary name: a reader never sees a
    partial file. There are no versions and no Object Lock (:func:`open_archive` refuses those settings);
    staged work (``staging/``) is the only thing :meth:`delete` removes, as on S3.
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
        digest = checked_digest(key, data, metadata)
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
        if stored is None or sha256_file(path) != digest:
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
        if current is None or current.sha256 != digest or sha256_file(self._path(key)) != digest:
            raise ArchiveIntegrityError(f"put {key}: the archive already holds different content; nothing overwritten")
        return current

    def verify(self, key: str, expected_sha256: str | None = None) -> StoredObject:
        """Audit one object: re-hash the file against ``expected_sha256`` or the sha256 recorded at put time."""
        current = self.head(key)
        if current is None:
            raise ArchiveNotFound(f"verify {key}: no such object")
        expected = (expected_sha256 or current.sha256).lower()
        actual = sha256_file(self._path(key))
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
        if stored is not None and stored.sha256 and sha256_bytes(data) != stored.sha256:
            raise ArchiveIntegrityError(f"get {key}: content does not match its recorded sha256")
        return data

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(self._meta_path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:  # crashed between link and metadata: the bytes are the truth
            record = {"sha256": sha256_file(path)}
        return StoredObject(
            key=key,
            sha256=str(record.get("sha256", "")),
            size=path.stat().st_size,
            version_id=None,
            checksum_sha256=base64.b64encode(bytes.fromhex(record["sha256"])).decode("ascii"),
            content_type=record.get("content_type"),
            metadata=dict(record.get("metadata") or {}),
        )

    def delete(self, key: str) -> int:
        """Remove a staging object (and its metadata); returns how many were removed (0 or 1).

        Only ``staging/`` keys: staged work is scratch space, the archive proper is write-once.
        """
        check_key(key)
        if not key.startswith(STAGING_PREFIX):
            raise ValueError(f"only staging objects can be deleted, not {key!r}")
        path = self._path(key)
        try:
            self._meta_path(key).unlink(missing_ok=True)  # metadata first: never a record without its file
            try:
                path.unlink()
            except FileNotFoundError:
                return 0
            _fsync_dir(path.parent)
        except OSError as exc:
            raise ArchiveUnavailable(f"delete {key}: cannot remove it from {self.root} ({exc.strerror})") from exc
        return 1

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order (as S3 lists them); walks only the prefix's folder."""
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*check_key(folder).split("/")) if folder else self.root
        if not start.is_dir():
            return
        for path in sorted(start.rglob("*"), key=lambda p: p.relative_to(self.root).as_posix()):
            relative = path.relative_to(self.root).as_posix()
            hidden = relative.startswith(".meta/") or path.name.startswith(".tmp-")
            if not hidden and relative.startswith(prefix) and path.is_file():
                yield relative

    def location(self, key: str) -> str:
        """Where a person finds the object: its path on this machine."""
        return str(self._path(key))

    def presigned_url(self, key: str, *, expires_in: int = 3600) -> str:
        """A ``file://`` URL (no expiry: local files have no signed links)."""
        return self._path(key).resolve().as_uri()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_archive(target: str | Settings, *, options: ArchiveOptions | None = None) -> Archive:
    """An archive from ``file:///path``, ``s3://bucket`` (default AWS endpoint) or the settings.

    With settings: ``DIGITIZE_ARCHIVE_URL`` (a folder, or a bucket on the configured endpoint), else S3
    with ``DIGITIZE_S3_BUCKET``. Options (Object Lock, SSE) default to the ``DIGITIZE_S3_*`` settings.
    """
    if isinstance(target, str):
        parsed = urlparse(target)
        if parsed.scheme == "file":
            return folder_archive(Path(url2pathname(parsed.path)), options)
        if parsed.scheme == "s3" and parsed.netloc:
            return S3Archive(make_s3_client(None), parsed.netloc, options or ArchiveOptions.from_env())
        raise ConfigurationError(f"archive URL must be file:///path or s3://bucket, not {target!r}")
    if (target.s3_endpoint_url or "").startswith("file://"):
        raise ConfigurationError(
            "DIGITIZE_S3_ENDPOINT_URL names a folder; the archive's place is DIGITIZE_ARCHIVE_URL",
            hint=f"Set DIGITIZE_ARCHIVE_URL={target.s3_endpoint_url} and unset DIGITIZE_S3_ENDPOINT_URL.")
    folder = target.archive_folder
    if folder is not None:
        return folder_archive(folder, options)
    return S3Archive.from_settings(target, options)


_S3_ONLY = (("DIGITIZE_S3_OBJECT_LOCK_MODE", "object_lock_mode"), ("DIGITIZE_S3_SSE", "server_side_encryption"),
            ("DIGITIZE_S3_RETENTION_DAYS", "retention_days"), ("DIGITIZE_S3_RETENTION_DAYS", "default_retention_days"))


def folder_archive(root: Path, options: ArchiveOptions | None = None) -> LocalArchive:
    """A :class:`LocalArchive`, refusing S3-only options: a folder cannot lock or encrypt, and saying
    nothing would let an operator believe the archive is WORM or encrypted."""
    options = options if options is not None else ArchiveOptions.from_env()
    for name, attribute in _S3_ONLY:
        if getattr(options, attribute):
            raise ConfigurationError(
                f"{name} is set, but the archive is the folder {root}: Object Lock, retention and "
                "server-side encryption exist only on S3",
                hint="Unset it, or archive to S3 (DIGITIZE_ARCHIVE_URL=s3://BUCKET) for WORM retention and encryption.")
    return LocalArchive(root)
