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

from digitize.errors import BatchNotFound
from digitize.intake.pages import file_pixels

if TYPE_CHECKING:
    from digitize.archive import S3Archive

MANIFEST_NAME = "manifest.csv"
READY_MARKER = "_READY"
UNIT_FILE = "_UNIT"
"""A stack batch's scanning unit (see :mod:`digitize.intake.stacks`)."""
NOT_SCANS = frozenset({MANIFEST_NAME, READY_MARKER, UNIT_FILE})
S3_NOT_READY = f"no {READY_MARKER} and no {MANIFEST_NAME}"
"""Why a sub-prefix is not a complete batch: on S3 only the marker or the manifest (uploaded last) say so."""
_NAMED = 5
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
    direct sub-folders/prefixes.

    A location that does not exist (a mistyped path, a bucket that is not there) raises :class:`BatchNotFound`
    rather than looking like an empty backlog; :func:`why_no_batches` says why one that exists holds none.
    """
    if location.startswith("s3://"):
        store, prefix = _s3_location(location, s3)
        if prefix and any(store.head(prefix + name) is not None for name in (MANIFEST_NAME, UNIT_FILE)):
            return [S3Batch(store, prefix)]
        found: list[BatchSource] = [S3Batch(store, prefix + child) for child in _s3_listing(store, prefix)[1]]
    else:
        root = _local_location(location)
        if (root / MANIFEST_NAME).is_file() or (root / UNIT_FILE).is_file():
            return [LocalBatch(root)]
        found = [LocalBatch(d) for d in batch_folders(root)]
    return [b for b in found if b.is_ready(quiet_seconds=quiet_seconds, now=now)]


def why_no_batches(location: str, *, s3: S3Factory | None = None, quiet_seconds: int = 0,
                   now: float | None = None) -> str:
    """Why :func:`find_batches` found no complete batch at ``location``, and what to do, for the officer who named it.

    An empty backlog is no error, so the run that finds nothing succeeds; this is the line of its log that tells a
    folder of scans without a manifest from an empty folder or batches still being copied. Call it once
    :func:`find_batches` found nothing (with the same arguments); a location that does not exist raises
    :class:`BatchNotFound` here too.
    """
    if location.startswith("s3://"):
        store, prefix = _s3_location(location, s3)
        files, children = _s3_listing(store, prefix)
        waiting = [(child, S3_NOT_READY) for child in children]
        top_of_bucket = not prefix  # open_batch refuses a whole bucket as one batch, manifest or not
    else:
        root = _local_location(location)
        files = sorted(p.name for p in root.iterdir() if p.is_file() and p.name not in NOT_SCANS
                       and not p.name.startswith("."))
        waiting = [(d.name, reason) for d in batch_folders(root)
                   if (reason := LocalBatch(d).waiting_for(quiet_seconds=quiet_seconds, now=now)) is not None]
        top_of_bucket = False
    if not files and not waiting:
        return (f"{location} is empty (no scans, no sub-folder): check the path, or put a batch there (its scans and "
                f"{MANIFEST_NAME}) or one sub-folder per batch.")
    said: list[str] = []
    if waiting:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in waiting[:_NAMED])
        more = f"; and {len(waiting) - _NAMED} more" if len(waiting) > _NAMED else ""
        said.append(f"None of the {len(waiting)} sub-folder(s) of {location} is a complete batch ({reasons}{more}).")
    if files and top_of_bucket:
        said.append(f"{location} holds {_counted(files)} at the top of the bucket, which is no batch: put each batch "
                    f"under its own prefix ({location.rstrip('/')}/<batch>/).")
    elif files:
        said.append(f"{location} holds {_counted(files)} but no {MANIFEST_NAME} and no {UNIT_FILE}, so it is no "
                    f'batch: add a {MANIFEST_NAME} listing the scans (README, "Batches and the manifest"), or, for '
                    f"scanned stacks with cover sheets, a one-line {UNIT_FILE} file with the scanning unit's agency "
                    'code (README, "Digitizing without typing"), or put each batch in its own sub-folder.')
    return " ".join(said)


def _local_location(location: str) -> Path:
    """The folder ``location`` names, or :class:`BatchNotFound` naming the nearest folder above it that exists."""
    root = Path(location)
    hint = ("Check the path: a folder that every worker mounts at the same path (names are case-sensitive), "
            "or s3://bucket/prefix/.")
    if root.is_dir():
        return root
    if root.exists():
        raise BatchNotFound(f"{location} is a file, not a folder of batches", hint=hint)
    nearest = next(parent for parent in root.absolute().parents if parent.is_dir())
    try:
        there = [d.name for d in batch_folders(nearest)]
    except OSError:  # not allowed to list it: the message still names it
        there = []
    listed = ", ".join(there[:10]) + (" …" if len(there) > 10 else "")
    raise BatchNotFound(f"no folder {location}; the nearest folder above it that exists is {nearest} "
                        f"(folders there: {listed or 'none'})", hint=hint)


def _s3_location(location: str, s3: S3Factory | None) -> tuple[S3Archive, str]:
    """The store and prefix ``location`` names, or :class:`BatchNotFound` when its bucket does not exist."""
    bucket, prefix = parse_s3_uri(location)
    store = (s3 or default_s3)(bucket)
    if not store.bucket_exists():
        raise BatchNotFound(f"no bucket {bucket!r} at the S3 endpoint ({location})",
                            hint="Check the bucket's name (case-sensitive) and that the S3 connection points at the "
                                 "endpoint that holds it.")
    return store, prefix


def _s3_listing(store: S3Archive, prefix: str) -> tuple[list[str], list[str]]:
    """Under ``prefix``: the scans directly there and the sub-prefixes, hidden ones left out, in name order."""
    files: list[str] = []
    children: set[str] = set()
    for key in store.list_keys(prefix):
        name, slash, _ = key[len(prefix):].partition("/")
        if not name or name.startswith("."):
            continue
        if slash:
            children.add(name)
        elif name not in NOT_SCANS:
            files.append(name)
    return files, sorted(children)


def batch_folders(root: Path) -> list[Path]:
    """The folders directly in ``root`` that may be batches (hidden ones are not), in name order; none if ``root``
    is no folder."""
    if not root.is_dir():
        return []
    return [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def _counted(files: list[str]) -> str:
    """``3 file(s) (a.png, b.png, c.png)``: the count and the first few names."""
    return f"{len(files)} file(s) ({', '.join(files[:3])}{' …' if len(files) > 3 else ''})"
