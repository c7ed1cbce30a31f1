"""Reference files kept like documents: each imported agencies, register, successors or reuse-events file is
archived with its SHA-256, and ``catalog rebuild`` replays them so the history of the reference data survives.

An import that would change the catalog stores, before the catalog changes:

* the file itself under ``reference/<kind>/<sha256><suffix>`` (content-addressed: the same file is kept once);
* an import record ``reference/imports/<recorded_at>-<kind>-<sha256 prefix>.json`` (kind, file name, SHA-256,
  key, recorded time).

then imports it with that recorded time, noting the file in the catalog's ``reference_files``. An import that
changes nothing stores nothing. :func:`replay_reference_imports` re-applies the import records in recorded
order with their original times, so reports (D, C) give the same figures after a rebuild. An import record
whose catalog import then failed is replayed too: it names a file the officer meant to import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitize.checksums import sha256_bytes
from digitize.errors import ArchiveIntegrityError, ImportFileError

if TYPE_CHECKING:
    from digitize.archive import Archive
    from digitize.catalog import Catalog, ImportSummary

REFERENCE_PREFIX = "reference/"
IMPORTS_PREFIX = "reference/imports/"
_SUFFIXES = (".csv", ".xlsx", ".xlsm")


@dataclass(frozen=True)
class ReplaySummary:
    """What :func:`replay_reference_imports` re-applied."""

    imports: int
    """Import records replayed."""

    skipped: tuple[str, ...]
    """Import records that could not be replayed, each with the reason."""


def _importer(catalog: Catalog, kind: str) -> Any:
    importers = {"agencies": catalog.import_agencies, "register": catalog.import_register,
                 "successors": catalog.import_successors, "reuse": catalog.import_reuse_events}
    if kind not in importers:
        raise ValueError(f"unknown reference kind {kind!r}")
    return importers[kind]


def import_reference(catalog: Catalog, archive: Archive | None, kind: str, path: Path) -> ImportSummary:
    """Import a reference file; when it changes the catalog, archive it and its import record first.

    ``archive`` None imports without keeping the file (tests, benchmarks); the CLI always passes one.
    """
    from digitize.catalog import ReferenceFile

    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    data = path.read_bytes()
    importer = _importer(catalog, kind)
    if archive is None:
        return importer(path, data=data, source=ReferenceFile(kind, path.name, sha256_bytes(data), None))
    at = datetime.now(UTC)
    preview = importer(path, data=data, recorded_at=at, dry_run=True)
    if not (preview.added or preview.changed):
        return preview
    digest = sha256_bytes(data)
    key = f"{REFERENCE_PREFIX}{kind}/{digest}{suffix if suffix in _SUFFIXES else '.bin'}"
    if archive.head(key) is None:
        archive.put(key, data, content_type=_media_type(suffix), metadata={"reference-kind": kind}, kind="KQ")
    record = {"kind": kind, "name": path.name, "sha256": digest, "key": key, "recorded_at": at.isoformat()}
    archive.put(f"{IMPORTS_PREFIX}{at:%Y%m%dT%H%M%S%fZ}-{kind}-{digest[:16]}.json",
                json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8"),
                content_type="application/json", kind="KQ")
    return importer(path, data=data, recorded_at=at, source=ReferenceFile(kind, path.name, digest, key))


def _media_type(suffix: str) -> str:
    if suffix == ".csv":
        return "text/csv"
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def replay_reference_imports(catalog: Catalog, archive: Archive) -> ReplaySummary:
    """Re-apply every archived import record, oldest first, with its original recorded time (catalog rebuild).

    Reuse events refer to documents, so call it after the documents are restored.
    """
    from digitize.catalog import ReferenceFile

    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    for key in archive.list_keys(IMPORTS_PREFIX):
        try:
            record = json.loads(archive.get(key))
            record["at"] = datetime.fromisoformat(record["recorded_at"])
            _importer(catalog, record["kind"])
        except (ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{key}: {str(exc).splitlines()[0]}")
            continue
        records.append(record)
    records.sort(key=lambda r: r["at"])
    known = {(r["kind"], r["sha256"], r["recorded_at"]) for r in catalog.reference_imports()}
    done = 0
    for record in records:
        if (record["kind"], record["sha256"], record["at"]) in known:
            continue  # replayed already (a rebuild run twice)
        data = archive.get(record["key"])
        if sha256_bytes(data) != record["sha256"]:
            raise ArchiveIntegrityError(f"{record['key']} does not have the SHA-256 its import record states")
        path = Path(record["name"])
        _importer(catalog, record["kind"])(path, data=data, recorded_at=record["at"],
                                           source=ReferenceFile(record["kind"], record["name"], record["sha256"],
                                                                record["key"]))
        done += 1
    return ReplaySummary(done, tuple(skipped))
