"""Where batches come from: a local folder or an S3 prefix, behind one small ``BatchSource`` interface.

Workers may be different machines, so a batch is named by a string (its
``uri``: a folder path or ``s3://bucket/prefix/``) that travels through XCom,
and every worker reopens it with :func:`open_batch`. Files of an S3 batch are
fetched into the task's scratch folder when a document is processed; nothing
travels between tasks on local disk. S3 is reached only through
:class:`digitize.archive.s3.S3Archive` (the module that owns S3).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize.intake.pages import file_pixels

if TYPE_CHECKING:
    from digitize.archive import S3Archive

MANIFEST_NAME = "manifest.csv"
READY_MARKER = "_READY"
UNIT_FILE = "_UNIT"
"""A stack batch's scanning unit (see :mod:`digitize.intake.stacks`)."""
NOT_SCANS = frozenset({MANIFEST_NAME, READY_MARKER, UNIT_FILE})
_HASH_CHUNK = 1 << 20


class BatchSource(ABC):
    """The files of one batch: a manifest and the scans it names, by path relative to the batch."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Batch id: the folder's (or the prefix's last part's) name."""

    @property
    @abstractmethod
    def uri(self) -> str:
        """A string that :func:`open_batch` turns back into this source on any worker."""

    @abstractmethod
    def files(self) -> Iterator[str]:
        """Relative names of the scans (manifest, marker and hidden files excluded)."""

    @abstractmethod
    def exists(self, relative: str) -> bool:
        """Whether ``relative`` is a file of this batch (and does not lead outside it)."""

    @abstractmethod
    def size(self, relative: str) -> int:
        """Size in bytes of a file of the batch (checked before a manifest is read whole)."""

    @abstractmethod
    def read_bytes(self, relative: str) -> bytes:
        """Whole content of a small file (the manifest)."""

    @abstractmethod
    def digest(self, relative: str) -> tuple[str, int]:
        """SHA-256 (hex) and size of a scan, computed from its bytes."""

    def inspect(self, relative: str) -> tuple[str, int, int | None]:
        """What registration records of a scan: SHA-256 (hex), size, and pixels (:func:`file_pixels`).

        One read: the bytes are hashed in memory, and their headers read from a scratch copy (a file in S3 or
        the archive has no path to read them from).
        """
        data = self.read_bytes(relative)
        with tempfile.TemporaryDirectory(prefix="digitize-inspect-") as scratch:
            copy = _scratch_copy(Path(scratch), relative)
            copy.write_bytes(data)
            pixels = file_pixels(copy)
        return hashlib.sha256(data).hexdigest(), len(data), pixels

    @abstractmethod
    def fetch(self, relative: str, scratch: Path) -> tuple[Path, str]:
        """Copy a scan into ``scratch`` in one read, hashing the bytes copied: (the copy, its SHA-256 hex).

        Everything downstream (the hash check, decoding, OCR, the archived original) uses the copy, so
        the bytes checked are the bytes signed and archived, even if someone rewrites the original in
        the inbox meanwhile.
        """

    @abstractmethod
    def is_ready(self, *, quiet_seconds: int, now: float | None = None) -> bool:
        """Complete: ``_READY`` present, or (local) a manifest, or a stack batch's scans, and nothing changed for
        the quiet period."""


class LocalBatch(BatchSource):
    """A batch folder on a disk every worker mounts at the same path."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __repr__(self) -> str:
        return f"LocalBatch({str(self.root)!r})"

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def uri(self) -> str:
        return str(self.root)

    def files(self) -> Iterator[str]:
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                rel = str((Path(dirpath) / name).relative_to(self.root))
                if rel not in NOT_SCANS and not name.startswith("."):
                    yield rel

    def inside(self, relative: str) -> Path | None:
        """The resolved file if it stays inside the batch (symlinks included), else ``None``."""
        candidate = (self.root / relative).resolve()
        try:
            candidate.relative_to(self.root)
        except ValueError:
            return None
        return candidate

    def exists(self, relative: str) -> bool:
        path = self.inside(relative)
        try:
            return path is not None and path.is_file()
        except OSError:  # e.g. a name longer than the file system allows: no such file can be there
            return False

    def size(self, relative: str) -> int:
        return (self.root / relative).stat().st_size

    def read_bytes(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def digest(self, relative: str) -> tuple[str, int]:
        path = self.root / relative
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest(), path.stat().st_size

    def inspect(self, relative: str) -> tuple[str, int, int | None]:
        return (*self.digest(relative), file_pixels(self.root / relative))

    def fetch(self, relative: str, scratch: Path) -> tuple[Path, str]:
        source = self.inside(relative)
        if source is None:
            raise ValueError(f"{relative!r} is not a path inside the batch")
        target = _scratch_copy(scratch, relative)
        digest = hashlib.sha256()
        with source.open("rb") as reader, target.open("wb") as writer:
            while chunk := reader.read(_HASH_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
        return target, digest.hexdigest()

    def is_ready(self, *, quiet_seconds: int, now: float | None = None) -> bool:
        return self.waiting_for(quiet_seconds=quiet_seconds, now=now) is None

    def waiting_for(self, *, quiet_seconds: int, now: float | None = None) -> str | None:
        """Why the batch is not complete yet, in words for the officer who copies it; ``None`` once it is."""
        if (self.root / READY_MARKER).exists():
            return None
        if not (self.root / MANIFEST_NAME).is_file() and not any(self.files()):
            return "it holds no scans and no manifest.csv yet"  # a stack batch (no manifest) waits too
        now = time.time() if now is None else now
        newest = max((p.stat().st_mtime for p in self.root.rglob("*") if p.is_file()), default=now)
        if now - newest >= quiet_seconds:
            return None
        return (f"it has no {READY_MARKER} file and its newest file changed {max(0.0, now - newest):.0f} s ago; "
                f"without {READY_MARKER} a batch is complete after {quiet_seconds} s without change")


class S3Batch(BatchSource):
    """A batch under an S3 prefix (``s3://bucket/inbox/<batch>/``), read through :class:`S3Archive`."""

    def __init__(self, store: S3Archive, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/") + "/"

    def __repr__(self) -> str:
        return f"S3Batch({self.uri!r})"

    @property
    def name(self) -> str:
        return self.prefix.rstrip("/").rsplit("/", 1)[-1]

    @property
    def uri(self) -> str:
        return f"s3://{self.store.bucket}/{self.prefix}"

    def _key(self, relative: str) -> str:
        parts = Path(relative).parts
        if not relative or Path(relative).is_absolute() or ".." in parts:
            raise ValueError(f"{relative!r} is not a path inside the batch")
        return self.prefix + "/".join(parts)

    def files(self) -> Iterator[str]:
        for key in self.store.list_keys(self.prefix):
            rel = key[len(self.prefix):]
            if rel and rel not in NOT_SCANS and not rel.rsplit("/", 1)[-1].startswith(".") and not rel.endswith("/"):
                yield rel

    def exists(self, relative: str) -> bool:
        try:
            return self.store.head(self._key(relative)) is not None
        except ValueError:
            return False

    def size(self, relative: str) -> int:
        stored = self.store.head(self._key(relative))
        return stored.size if stored is not None else 0

    def read_bytes(self, relative: str) -> bytes:
        return self.store.get(self._key(relative))

    def digest(self, relative: str) -> tuple[str, int]:
        data = self.read_bytes(relative)
        return hashlib.sha256(data).hexdigest(), len(data)

    def fetch(self, relative: str, scratch: Path) -> tuple[Path, str]:
        data = self.read_bytes(relative)
        target = _scratch_copy(scratch, relative)
        target.write_bytes(data)
        return target, hashlib.sha256(data).hexdigest()

    def is_ready(self, *, quiet_seconds: int, now: float | None = None) -> bool:
        """On S3 each object appears whole; the batch is complete once ``_READY`` (or else the manifest) is there.

        Uploaders put the manifest (or ``_READY``) last; a stack batch (no manifest) needs ``_READY``.
        """
        return self.exists(READY_MARKER) or self.exists(MANIFEST_NAME)


def _scratch_copy(scratch: Path, relative: str) -> Path:
    """Where a scan's copy goes in the document's scratch folder (its sub-folders kept)."""
    target = scratch / "originals" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → (bucket, ``some/prefix/``)."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix/ URI")
    return bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""


S3Factory = Callable[[str], "S3Archive"]


def default_s3(bucket: str) -> S3Archive:
    """An :class:`S3Archive` on ``bucket`` with the endpoint and region of the settings."""
    from digitize.archive import S3Archive, make_s3_client
    from digitize.config import load_settings

    settings = load_settings()
    return S3Archive(make_s3_client(settings.s3_endpoint_url, region=settings.s3_region), bucket)


def client_s3(client: Any) -> S3Factory:
    """A factory reusing one boto3 client (e.g. from Airflow's S3 connection) for any bucket."""
    from digitize.archive import S3Archive

    return lambda bucket: S3Archive(client, bucket)


def open_batch(uri: str, s3: S3Factory | None = None) -> BatchSource:
    """The batch named by ``uri`` (a folder path or ``s3://bucket/prefix/``)."""
    if uri.startswith("s3://"):
        bucket, prefix = parse_s3_uri(uri)
        if not prefix:
            raise ValueError(f"{uri!r}: a batch is a prefix inside the bucket")
        return S3Batch((s3 or default_s3)(bucket), prefix)
    return LocalBatch(Path(uri))


def find_batches(location: str, *, s3: S3Factory | None = None, quiet_seconds: int = 0,
                 now: float | None = None) -> list[BatchSource]:
    """Complete batches at ``location``: itself if it holds a manifest (or a stack batch's ``_UNIT``), else its
    direct sub-folders/prefixes."""
    if location.startswith("s3://"):
        bucket, prefix = parse_s3_uri(location)
        store = (s3 or default_s3)(bucket)
        if prefix and any(store.head(prefix + name) is not None for name in (MANIFEST_NAME, UNIT_FILE)):
            return [S3Batch(store, prefix)]
        children = sorted({key[len(prefix):].split("/", 1)[0] for key in store.list_keys(prefix)
                           if "/" in key[len(prefix):]})
        found: list[BatchSource] = [S3Batch(store, prefix + child) for child in children if not child.startswith(".")]
    else:
        root = Path(location)
        if (root / MANIFEST_NAME).is_file() or (root / UNIT_FILE).is_file():
            return [LocalBatch(root)]
        if not root.is_dir():
            return []
        found = [LocalBatch(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    return [b for b in found if b.is_ready(quiet_seconds=quiet_seconds, now=now)]
