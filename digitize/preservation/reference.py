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
SNAPSHOTS_PREFIX = "reference/snapshots/"
_SUFFIXES = (".csv", ".xlsx", ".xlsm")


@dataclass(frozen=True)
class ReplaySummary:
    """What :func:`replay_reference_imports` re-applied."""

    imports: int
    """Import records replayed."""

    snapshot_rows: int
    """Rows restored from snapshots (:func:`archive_reference_snapshot`)."""

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


def archive_reference_snapshot(catalog: Catalog, archive: Archive, *, now: datetime | None = None
                               ) -> tuple[str | None, int]:
    """Keep in the archive the facts no archived file accounts for, recorded since the last snapshot; (key, rows).

    After the upgrade to 0007 these are the agencies, register and successors the catalog already held
    (importing the same files again changes nothing, so would archive nothing); later, the reuse events and
    papers supplied again that the reuse API recorded. Each snapshot takes what was recorded since the previous
    one up to a few minutes ago (``SNAPSHOT_SETTLE``); stored as ``reference/snapshots/<up to>-<sha256
    prefix>.json``; ``(None, 0)`` when there is nothing new. Run it after the upgrade, then regularly (daily)
    while the reuse API records events.
    """
    from digitize.catalog import SNAPSHOT_SETTLE

    upto = (now or datetime.now(UTC)) - SNAPSHOT_SETTLE
    snapshot = catalog.recorded_snapshot(upto)
    rows = sum(len(v) for v in snapshot["tables"].values())
    if not rows:
        return None, 0
    data = json.dumps(snapshot, ensure_ascii=False, sort_keys=True).encode("utf-8")
    digest = sha256_bytes(data)
    key = f"{SNAPSHOTS_PREFIX}{upto:%Y%m%dT%H%M%S%fZ}-{digest[:16]}.json"
    archive.put(key, data, content_type="application/json", kind="KQ")
    catalog.note_snapshot(sha256=digest, key=key, upto=upto, rows=rows)
    return key, rows


def _snapshots(archive: Archive, skipped: list[str]) -> list[tuple[str, datetime, dict[str, Any]]]:
    """Each archived snapshot: (key, recorded up to, content)."""
    out: list[tuple[str, datetime, dict[str, Any]]] = []
    for key in archive.list_keys(SNAPSHOTS_PREFIX):
        try:
            snapshot = json.loads(archive.get(key))
            out.append((key, datetime.fromisoformat(snapshot["upto"]), snapshot))
        except (ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{key}: {str(exc).splitlines()[0]}")
    return out


def replay_reference_imports(catalog: Catalog, archive: Archive) -> ReplaySummary:
    """Re-apply every archived import record, with the snapshots' rows in between, in the order the catalog
    learned them and with their original recorded times (catalog rebuild); a second run adds nothing.

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
    snapshots = _snapshots(archive, skipped)
    noted = catalog.reference_imports()
    known = {(r["kind"], r["sha256"], r["recorded_at"]) for r in noted}
    restored = done = 0
    bounds = [None, *(r["at"] for r in records), None]
    for index, upto in enumerate(bounds[1:]):  # the snapshots' rows recorded before each import, then the import
        for _key, _upto, snapshot in snapshots:
            restored += catalog.restore_snapshot(snapshot, after=bounds[index], upto=upto)
        if index == len(records):
            break
        record = records[index]
        if (record["kind"], record["sha256"], record["at"]) in known:
            continue  # replayed already (a rebuild run twice)
        data = archive.get(record["key"])
        if sha256_bytes(data) != record["sha256"]:
            raise ArchiveIntegrityError(f"{record['key']} does not have the SHA-256 its import record states")
        _importer(catalog, record["kind"])(Path(record["name"]), data=data, recorded_at=record["at"],
                                           source=ReferenceFile(record["kind"], record["name"], record["sha256"],
                                                                record["key"]))
        done += 1
    for key, upto, snapshot in snapshots:  # the next snapshot of this catalog starts after the last one
        digest = sha256_bytes(json.dumps(snapshot, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        if ("snapshot", digest, upto) not in known:
            catalog.note_snapshot(sha256=digest, key=key, upto=upto,
                                  rows=sum(len(v) for v in snapshot["tables"].values()))
    return ReplaySummary(done, restored, tuple(skipped))
